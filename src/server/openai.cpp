#include "server/openai.h"

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace skv::server {
namespace {

const Json* field(const Json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const Json& body, const char* name, double def, double lo, double hi) {
  const Json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) fail(quote_bounded(name), " must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) fail(quote_bounded(name), " must be in [", lo, ", ", hi, "], got ", x);
  return x;
}

int64_t integer(const Json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const Json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number_integer()) fail(quote_bounded(name), " must be an integer");
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) fail(quote_bounded(name), " must be in [", lo, ", ", hi, "], got ", x);
  return x;
}

bool boolean(const Json& body, const char* name, bool def) {
  const Json* v = field(body, name);
  if (!v) return def;
  if (!v->is_boolean()) fail(quote_bounded(name), " must be true or false");
  return v->get<bool>();
}

std::vector<int32_t> id_list(const Json& v, const char* name, int64_t vocab) {
  std::vector<int32_t> ids;
  for (const Json& x : v) {
    if (!x.is_number_integer()) fail(quote_bounded(name), " must hold token ids (integers)");
    const int64_t id = x.get<int64_t>();
    if (id < 0 || id >= vocab) fail(quote_bounded(name), ": token id ", id, " is outside the vocabulary (", vocab, ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

// Fields both endpoints share (vLLM's sampling parameters).
engine::Request sampling_fields(const Json& body, const ApiContext& ctx) {
  engine::Request r;
  const int64_t vocab = ctx.tok ? ctx.tok->vocab_size() : std::numeric_limits<int32_t>::max();
  engine::SamplingParams& s = r.sampling;
  s.temperature = static_cast<float>(number(body, "temperature", 1.0, 0.0, 1e6));
  s.top_p = static_cast<float>(number(body, "top_p", 1.0, 0.0, 1.0));
  if (s.top_p <= 0) fail("'top_p' must be in (0, 1], got 0");
  s.top_k = static_cast<int>(integer(body, "top_k", 0, -1, std::numeric_limits<int32_t>::max()));
  s.min_p = static_cast<float>(number(body, "min_p", 0.0, 0.0, 1.0));
  s.presence_penalty = static_cast<float>(number(body, "presence_penalty", 0.0, -2.0, 2.0));
  s.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", 0.0, -2.0, 2.0));
  s.repetition_penalty = static_cast<float>(number(body, "repetition_penalty", 1.0, 1e-6, 1e6));
  if (const Json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) fail("'seed' must be an integer");
    s.seed = static_cast<uint64_t>(seed->get<int64_t>());
    s.has_seed = true;
  }
  if (const Json* bias = field(body, "logit_bias")) {
    if (!bias->is_object()) fail("'logit_bias' must be an object of token id -> bias");
    for (const auto& [k, v] : bias->items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(k, &used);
        if (used != k.size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      if (id < 0 || id >= vocab) fail("'logit_bias': ", quote_bounded(k, 40), " is not a token id of this model");
      if (!v.is_number()) fail("'logit_bias': the bias of ", id, " must be a number");
      const double b = v.get<double>();
      if (!(b >= -100 && b <= 100)) fail("'logit_bias': the bias of ", id, " must be in [-100, 100]");
      s.logit_bias[static_cast<int32_t>(id)] = static_cast<float>(b);
    }
  }
  if (const Json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const Json& x : *stop) {
        if (!x.is_string()) fail("'stop' must be a string or a list of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      fail("'stop' must be a string or a list of strings");
    }
    for (const std::string& x : r.stop)
      if (x.empty()) fail("'stop' holds an empty string");
  }
  if (const Json* ids = field(body, "stop_token_ids")) {
    if (!ids->is_array()) fail("'stop_token_ids' must be a list of token ids");
    r.stop_token_ids = id_list(*ids, "stop_token_ids", vocab);
  }
  r.ignore_eos = boolean(body, "ignore_eos", false);
  // The end-of-turn tokens are EOS in all but name: ignore_eos ignores them too, as vLLM
  // ignores every eos_token_id of the generation config.
  if (!r.ignore_eos)
    r.stop_token_ids.insert(r.stop_token_ids.end(), ctx.extra_stop_ids.begin(), ctx.extra_stop_ids.end());
  r.min_tokens = integer(body, "min_tokens", 0, 0, std::numeric_limits<int32_t>::max());
  r.n = static_cast<int>(integer(body, "n", 1, 1, 128));
  r.sampling.validate();
  return r;
}

std::string token_string(const ApiContext& ctx, int32_t id) {
  return ctx.tok ? ctx.tok->decode({id}) : std::to_string(id);
}

Json usage_json(int64_t prompt, int64_t completion, int64_t cached) {
  return Json{{"prompt_tokens", prompt},
              {"total_tokens", prompt + completion},
              {"completion_tokens", completion},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

Json top_map(const ApiContext& ctx, const engine::TokenLogprob& lp) {
  Json m = Json::object();
  for (const auto& [id, v] : lp.top) m[token_string(ctx, id)] = v;
  m[token_string(ctx, lp.id)] = lp.logprob;  // the chosen token is always listed (vLLM)
  return m;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// Logprobs of completion tokens in the legacy completions shape; `lps[k]` may be null (the
// first prompt token has none).
Json completion_logprobs(const ApiContext& ctx, const std::vector<int32_t>& ids,
                         const std::vector<const engine::TokenLogprob*>& lps, int64_t offset) {
  Json tokens = Json::array(), values = Json::array(), tops = Json::array(), offsets = Json::array();
  for (size_t k = 0; k < ids.size(); ++k) {
    const std::string t = token_string(ctx, ids[k]);
    tokens.push_back(t);
    values.push_back(lps[k] ? Json(lps[k]->logprob) : Json(nullptr));
    tops.push_back(lps[k] ? top_map(ctx, *lps[k]) : Json(nullptr));
    offsets.push_back(offset);
    offset += static_cast<int64_t>(t.size());
  }
  return {{"text_offset", offsets}, {"token_logprobs", values}, {"tokens", tokens}, {"top_logprobs", tops}};
}

Json chat_logprobs(const ApiContext& ctx, const std::vector<int32_t>& ids,
                   const std::vector<engine::TokenLogprob>& lps) {
  Json content = Json::array();
  for (size_t k = 0; k < ids.size() && k < lps.size(); ++k) {
    const engine::TokenLogprob& lp = lps[k];
    Json top = Json::array();
    for (const auto& [tid, v] : lp.top) {
      const std::string t = token_string(ctx, tid);
      top.push_back({{"token", t}, {"logprob", v}, {"bytes", bytes_of(t)}});
    }
    const std::string t = token_string(ctx, ids[k]);
    content.push_back({{"token", t}, {"logprob", lp.logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

// Fields of OpenAI's or vLLM's API that change what a request means and that we do not
// implement. Null, false, empty or default values are accepted (clients send them).
void reject_unsupported(Endpoint endpoint, const Json& body, int n) {
  auto set = [&](const char* name) {
    const Json* v = field(body, name);
    return v && !(v->is_boolean() && !v->get<bool>()) && !(v->is_array() && v->empty()) &&
           !(v->is_object() && v->empty()) && !(v->is_string() && v->get<std::string>().empty());
  };
  for (const char* name : {"tools", "tool_choice", "functions", "function_call", "guided_json", "guided_regex",
                           "guided_choice", "guided_grammar", "structured_outputs", "prompt_embeds", "audio",
                           "prediction", "suffix", "logits_processors", "lora_request", "mm_processor_kwargs"})
    if (set(name)) fail(quote_bounded(name), " is not supported");
  if (const Json* rf = field(body, "response_format")) {
    if (!rf->is_object() || rf->value("type", "") != "text")
      fail("'response_format' is not supported (only {\"type\": \"text\"})");
  }
  if (const Json* m = field(body, "modalities")) {
    if (!m->is_array() || m->size() != 1 || (*m)[0] != "text")
      fail("'modalities' other than [\"text\"] is not supported");
  }
  if (const Json* b = field(body, "best_of")) {
    if (!b->is_number_integer() || b->get<int64_t>() != n) fail("'best_of' other than n is not supported");
  }
  if (endpoint == Endpoint::ChatCompletions && set("echo")) fail("'echo' is not supported for chat completions");
  if (set("use_beam_search")) fail("'use_beam_search' is not supported");
}

}  // namespace

std::string random_hex(size_t n) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* digits = "0123456789abcdef";
  std::string s(n, '0');
  for (char& c : s) c = digits[rng() & 15];
  return s;
}

std::vector<int32_t> end_of_turn_ids(const tokenizer::Tokenizer& tok) {
  std::vector<int32_t> ids;
  for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"})
    if (auto id = tok.token_id(t); id && tok.is_special(*id)) ids.push_back(*id);
  return ids;
}

Endpoint endpoint_from_url(const std::string& url) {
  if (url == "/v1/completions") return Endpoint::Completions;
  if (url == "/v1/chat/completions") return Endpoint::ChatCompletions;
  fail("unsupported url ", quote_bounded(url, 60), " (expected /v1/completions or /v1/chat/completions)");
}

ApiRequest parse_batch_request(const Json& line, const ApiContext& ctx) {
  // Not line.value("method", ""), which throws json's type_error for a method that is not a string.
  if (!line.contains("method") || line["method"] != "POST") fail("'method' must be \"POST\"");
  if (!line.contains("url") || !line["url"].is_string()) fail("'url' (a string) is required");
  const Endpoint ep = endpoint_from_url(line["url"].get<std::string>());
  if (!line.contains("body")) fail("'body' is required");
  ApiRequest api = parse_request(ep, line["body"], ctx);
  if (api.stream) fail("'stream' is not supported in a batch");
  return api;
}

ApiRequest parse_request(Endpoint endpoint, const Json& body, const ApiContext& ctx) {
  if (!body.is_object()) fail("the request body must be a JSON object");
  ApiRequest a;
  a.endpoint = endpoint;
  if (const Json* m = field(body, "model")) {
    if (!m->is_string()) fail("'model' must be a string");
    a.model = m->get<std::string>();
  }
  a.stream = boolean(body, "stream", false);
  if (const Json* so = field(body, "stream_options")) {
    if (!so->is_object()) fail("'stream_options' must be an object");
    a.include_usage = boolean(*so, "include_usage", false);
  }
  engine::Request base = sampling_fields(body, ctx);
  a.n = base.n;
  reject_unsupported(endpoint, body, a.n);
  const int64_t vocab = ctx.tok ? ctx.tok->vocab_size() : std::numeric_limits<int32_t>::max();

  std::vector<std::vector<int32_t>> prompts;
  if (endpoint == Endpoint::Completions) {
    const Json* p = field(body, "prompt");
    if (!p) fail("'prompt' is required");
    auto encode = [&](const std::string& text) {
      if (!ctx.tok) fail("this model has no tokenizer: send 'prompt' as token ids");
      return ctx.tok->encode(text, true, true);
    };
    if (p->is_string()) {
      prompts.push_back(encode(p->get<std::string>()));
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
      prompts.push_back(id_list(*p, "prompt", vocab));
    } else if (p->is_array() && !p->empty()) {
      for (const Json& x : *p) {
        if (x.is_string())
          prompts.push_back(encode(x.get<std::string>()));
        else if (x.is_array())
          prompts.push_back(id_list(x, "prompt", vocab));
        else
          fail("'prompt' must be a string, a list of token ids, or a list of either");
      }
    } else {
      fail("'prompt' must be a string, a list of token ids, or a list of either");
    }
    a.echo = boolean(body, "echo", false);
    if (const Json* lp = field(body, "logprobs")) {
      if (!lp->is_number_integer()) fail("'logprobs' must be an integer (alternatives per token)");
      a.logprobs = static_cast<int>(integer(body, "logprobs", 0, 0, 20));
    }
    base.max_tokens = integer(body, "max_tokens", 16, 0, std::numeric_limits<int32_t>::max());
  } else {
    const Json* msgs = field(body, "messages");
    if (!msgs || !msgs->is_array() || msgs->empty()) fail("'messages' must be a non-empty list");
    if (!ctx.tok) fail("chat completions need the model's tokenizer");
    if (ctx.chat_template.empty()) fail("the model has no chat template (serve it with --chat-template FILE)");
    Json rendered = Json::array();
    for (const Json& m : *msgs) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) fail("each message needs a 'role' string");
      Json out = m;
      const Json* c = field(m, "content");
      if (c && c->is_array()) {  // a list of parts: the text parts, joined
        std::string text;
        for (const Json& part : *c) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
              !part["text"].is_string())
            fail("message content parts must be {\"type\": \"text\", \"text\": ...} (only text is supported)");
          if (!text.empty()) text += "\n";
          text += part["text"].get<std::string>();
        }
        out["content"] = text;
      } else if (c && !c->is_string()) {
        fail("message 'content' must be a string or a list of text parts");
      }
      rendered.push_back(out);
    }
    const bool add_generation_prompt = boolean(body, "add_generation_prompt", true);
    auto tok_str = [&](std::optional<int32_t> id) { return id ? ctx.tok->token_text(*id) : std::string(); };
    const std::string text = tokenizer::apply_chat_template_json(
        ctx.chat_template, rendered, add_generation_prompt, tok_str(ctx.tok->bos_id()), tok_str(ctx.tok->eos_id()));
    prompts.push_back(ctx.tok->encode(text, false, true));
    if (boolean(body, "logprobs", false))
      a.logprobs = static_cast<int>(integer(body, "top_logprobs", 0, 0, 20));
    else if (field(body, "top_logprobs"))
      fail("'top_logprobs' needs 'logprobs': true");
    const int64_t def = -1;  // until the model length
    base.max_tokens = integer(body, "max_completion_tokens", def, 0, std::numeric_limits<int32_t>::max());
    if (field(body, "max_tokens"))
      base.max_tokens = integer(body, "max_tokens", def, 0, std::numeric_limits<int32_t>::max());
  }
  base.logprobs = a.logprobs;
  if (a.echo) base.prompt_logprobs = a.logprobs >= 0 ? a.logprobs : -1;
  for (auto& ids : prompts) {
    if (ids.empty()) fail("'prompt' is empty");
    if (ctx.max_model_len > 0 && static_cast<int64_t>(ids.size()) >= ctx.max_model_len)
      fail("the prompt has ", ids.size(), " tokens; this model's maximum context length is ", ctx.max_model_len,
           " tokens, and the answer needs at least one");
    if (base.max_tokens == 0 && !a.echo) fail("'max_tokens' must be at least 1");
    engine::Request r = base;
    r.prompt = std::move(ids);
    if (r.max_tokens == 0) r.prompt_logprobs = std::max(r.prompt_logprobs, 0);  // echo only
    a.prompts.push_back(std::move(r));
  }
  return a;
}

Json error_body(const std::string& message, int code) {
  const char* type = code == 404 ? "NotFoundError" : code >= 500 ? "InternalServerError" : "BadRequestError";
  return Json{{"object", "error"}, {"message", message}, {"type", type}, {"param", nullptr}, {"code", code}};
}

Json api_error(const std::string& message, int status) {
  const char* type = status == 401   ? "authentication_error"
                     : status == 503 ? "service_unavailable"
                     : status >= 500 ? "internal_error"
                                     : "invalid_request_error";
  return Json{{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", status}}}};
}

Json stream_chunk(const ApiRequest& req, const ApiContext& ctx, const std::string& id, int64_t created,
                  const StreamDelta& d) {
  Json c;
  c["index"] = d.index;
  if (req.endpoint == Endpoint::Completions) {
    std::string text = d.text;
    std::vector<int32_t> ids;
    std::vector<const engine::TokenLogprob*> lps;
    if (d.first && req.echo && d.prompt) {
      text = (ctx.tok ? ctx.tok->decode(d.prompt->prompt) : std::string()) + text;
      for (size_t k = 0; k < d.prompt->prompt.size(); ++k) {
        ids.push_back(d.prompt->prompt[k]);
        lps.push_back(k == 0 || k - 1 >= d.prompt->prompt_logprobs.size() ? nullptr
                                                                          : &d.prompt->prompt_logprobs[k - 1]);
      }
    }
    for (size_t k = 0; k < d.tokens.size(); ++k) {
      ids.push_back(d.tokens[k]);
      lps.push_back(k < d.logprobs.size() ? &d.logprobs[k] : nullptr);
    }
    c["text"] = text;
    c["logprobs"] = req.logprobs >= 0 ? completion_logprobs(ctx, ids, lps, 0) : Json(nullptr);
  } else {
    Json delta = Json::object();
    if (d.first) delta["role"] = "assistant";
    if (!d.text.empty() || d.first) delta["content"] = d.text;
    c["delta"] = delta;
    c["logprobs"] = req.logprobs >= 0 && !d.tokens.empty() ? chat_logprobs(ctx, d.tokens, d.logprobs) : Json(nullptr);
  }
  c["finish_reason"] = d.finish_reason.empty() ? Json(nullptr) : Json(d.finish_reason);
  c["stop_reason"] = nullptr;
  Json body;
  body["id"] = id;
  body["object"] = req.endpoint == Endpoint::Completions ? "text_completion" : "chat.completion.chunk";
  body["created"] = created;
  body["model"] = ctx.model_name;
  body["choices"] = Json::array({c});
  return body;
}

Json usage_chunk(const ApiRequest& req, const ApiContext& ctx, const std::string& id, int64_t created,
                 int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  Json body;
  body["id"] = id;
  body["object"] = req.endpoint == Endpoint::Completions ? "text_completion" : "chat.completion.chunk";
  body["created"] = created;
  body["model"] = ctx.model_name;
  body["choices"] = Json::array();
  body["usage"] = usage_json(prompt_tokens, completion_tokens, cached_tokens);
  return body;
}

Json response_body(const ApiRequest& req, const std::vector<PromptResult>& results, const ApiContext& ctx,
                   const std::string& id, int64_t created) {
  Json choices = Json::array();
  int64_t prompt_tokens = 0, completion_tokens = 0, cached = 0;
  for (size_t p = 0; p < results.size(); ++p) {
    const PromptResult& pr = results[p];
    prompt_tokens += static_cast<int64_t>(pr.prompt.size());
    cached += pr.cached_tokens;
    const std::string prompt_text = req.echo && ctx.tok ? ctx.tok->decode(pr.prompt) : std::string();
    for (size_t i = 0; i < pr.samples.size(); ++i) {
      const SampleResult& s = pr.samples[i];
      completion_tokens += static_cast<int64_t>(s.tokens.size());
      Json c;
      c["index"] = static_cast<int64_t>(p * pr.samples.size() + i);
      if (req.endpoint == Endpoint::Completions) {
        c["text"] = prompt_text + s.text;
        if (req.logprobs >= 0) {
          std::vector<int32_t> ids;
          std::vector<const engine::TokenLogprob*> lps;
          if (req.echo) {
            for (size_t k = 0; k < pr.prompt.size(); ++k) {
              ids.push_back(pr.prompt[k]);
              lps.push_back(k == 0 || k - 1 >= pr.prompt_logprobs.size() ? nullptr : &pr.prompt_logprobs[k - 1]);
            }
          }
          for (size_t k = 0; k < s.tokens.size(); ++k) {
            ids.push_back(s.tokens[k]);
            lps.push_back(k < s.logprobs.size() ? &s.logprobs[k] : nullptr);
          }
          c["logprobs"] = completion_logprobs(ctx, ids, lps, 0);
        } else {
          c["logprobs"] = nullptr;
        }
      } else {
        c["message"] = {{"role", "assistant"}, {"content", s.text}};
        c["logprobs"] = req.logprobs >= 0 ? chat_logprobs(ctx, s.tokens, s.logprobs) : Json(nullptr);
      }
      c["finish_reason"] = s.finish_reason;
      c["stop_reason"] = nullptr;
      choices.push_back(c);
    }
  }
  Json body;
  body["id"] = id;
  body["object"] = req.endpoint == Endpoint::Completions ? "text_completion" : "chat.completion";
  body["created"] = created;
  body["model"] = ctx.model_name;
  body["choices"] = choices;
  body["usage"] = usage_json(prompt_tokens, completion_tokens, cached);
  return body;
}

}  // namespace skv::server
