#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/progress.h"
#include "engine/session.h"
#include "io/atomic_file.h"
#include "io/read_file.h"
#include "tokenizer/chat_template.h"
#include "train/data.h"

namespace skv::cli {
namespace {

using Json = nlohmann::ordered_json;  // messages keep role before content, as chat data is written

constexpr const char* kGenerateDataHelp =
    "usage: swiftkv generate-data --model PATH --prompts FILE --out OUT.jsonl [--max-tokens 256]\n"
    "                             [--temperature 0.7] [--top-p 0.9] [--top-k 0] [--seed S]\n"
    "                             [--samples-per-prompt 1] [--system TEXT] [--resume] [-t N]\n"
    "\n"
    "Writes self-distillation data: the teacher's own sampled answers to a prompt file, one chat\n"
    "JSON line per answer, in the format distillation reads (docs/distill.md):\n"
    "  {\"messages\": [{\"role\": \"user\", \"content\": ...}, {\"role\": \"assistant\", \"content\": ...}],\n"
    "   \"finish_reason\": \"stop\" | \"length\"}\n"
    "The teacher is the model itself, or a SwiftKV checkpoint's teacher path (every layer computes\n"
    "its own K/V). Each prompt is rendered with the model's chat template and a generation prompt;\n"
    "an answer ends at EOS / the end-of-turn token or after --max-tokens.\n"
    "\n"
    "  -m, --model PATH          HF model directory or .gguf file (needs a chat template)\n"
    "      --prompts FILE        .txt: one prompt per non-empty line; .jsonl: {\"prompt\": TEXT} or\n"
    "                            {\"messages\": [{\"role\", \"content\"}, ...]} per line\n"
    "      --out FILE            output JSON Lines; each answer is appended and flushed as it is done\n"
    "      --resume              continue OUT: keep its complete lines (they must answer the first\n"
    "                            prompts), drop a trailing partial line, answer the rest. Without it\n"
    "                            an existing non-empty OUT is an error\n"
    "      --samples-per-prompt K  answers per prompt (default 1), written one after another\n"
    "      --system TEXT         a system message before each prompt that has none\n"
    "  -n, --max-tokens N        most tokens per answer (default 256)\n"
    "      --temperature, --temp T (0.7)  --top-p P (0.9)  --top-k K (0 = off)  --min-p P (0)\n"
    "  -s, --seed S              answer i samples with a generator seeded from (S, i), default S = 0,\n"
    "                            so a resumed run writes what an uninterrupted one would (same model,\n"
    "                            flags and -t)\n"
    "      --repetition-penalty R  --presence-penalty P  --frequency-penalty F\n"
    "      --stop STR (repeatable)  --stop-token-ids LIST\n"
    "  -t, --threads N           CPU threads (default: all cores)\n"
    "\n"
    "Answers are generated concurrently on the engine core (continuous batching):\n";

struct Prompt {
  Json messages;      // the conversation before the answer
  std::string where;  // file:line
};

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Lines of text with their 1-based numbers; a final line without '\n' counts.
std::vector<std::pair<int64_t, std::string>> lines_of(const std::string& text) {
  std::vector<std::pair<int64_t, std::string>> out;
  size_t pos = 0;
  for (int64_t no = 1; pos < text.size(); ++no) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    out.emplace_back(no, text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

void check_messages(const Json& m, const std::string& where) {
  if (!m.is_array() || m.empty()) fail(where, ": messages must be a non-empty list of {role, content}");
  for (size_t i = 0; i < m.size(); ++i)
    if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string() || !m[i].contains("content") ||
        !m[i]["content"].is_string())
      fail(where, ": messages[", i, "] must be an object with string role and content");
}

std::vector<Prompt> read_prompts(const std::string& path, const std::optional<std::string>& system) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext != ".txt" && ext != ".jsonl")
    fail("--prompts ", path, ": unknown extension ", quote_bounded(ext), " (expected .txt or .jsonl)");
  const std::string content = io::read_file(path, "--prompts file");
  std::vector<Prompt> out;
  for (const auto& [no, raw] : lines_of(content)) {
    const std::string line = trim(raw);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(no);
    Json messages;
    if (ext == ".txt") {
      messages = Json::array({{{"role", "user"}, {"content", line}}});
    } else {
      Json j;
      try {
        j = Json::parse(line);
      } catch (const Json::exception& e) {
        fail(where, ": invalid JSON (", bound_message(e.what(), 300), ")");
      }
      if (!j.is_object()) fail(where, ": expected a JSON object with prompt or messages");
      if (j.contains("prompt") == j.contains("messages")) fail(where, ": give exactly one of prompt and messages");
      if (j.contains("prompt")) {
        if (!j["prompt"].is_string()) fail(where, ": prompt must be a string");
        if (trim(j["prompt"].get<std::string>()).empty()) fail(where, ": empty prompt");
        messages = Json::array({{{"role", "user"}, {"content", j["prompt"]}}});
      } else {
        messages = j["messages"];
        check_messages(messages, where);
      }
    }
    if (system && messages[0]["role"] != "system")
      messages.insert(messages.begin(), Json{{"role", "system"}, {"content", *system}});
    out.push_back({std::move(messages), where});
  }
  if (out.empty()) fail("--prompts ", path, " holds no prompts");
  return out;
}

// The number of answers already in OUT (its complete lines), after checking that line i answers
// answer i's prompt, and cutting a partial last line left by an interrupted run.
int64_t resume_point(const std::string& out_path, const std::vector<Prompt>& prompts, int64_t per_prompt) {
  std::error_code ec;
  if (!std::filesystem::exists(out_path, ec)) return 0;
  const std::string content = io::read_file(out_path, "--out file");
  const size_t complete = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
  const int64_t total = static_cast<int64_t>(prompts.size()) * per_prompt;
  int64_t done = 0;
  for (const auto& [no, line] : lines_of(content.substr(0, complete))) {
    const std::string where = out_path + ":" + std::to_string(no);
    if (done >= total) fail(where, ": --out holds more answers than the ", total, " asked for");
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::exception& e) {
      fail(where, ": invalid JSON (", bound_message(e.what(), 300), "); cannot resume this file");
    }
    const Prompt& p = prompts[done / per_prompt];
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array() ||
        j["messages"].size() != p.messages.size() + 1 ||
        !std::equal(p.messages.begin(), p.messages.end(), j["messages"].begin()))
      fail(where, ": does not answer the prompt at ", p.where,
           " (was --out written from another prompt file, --system or --samples-per-prompt?)");
    ++done;
  }
  if (complete < content.size()) {
    std::filesystem::resize_file(out_path, complete, ec);
    if (ec) fail("cannot truncate the partial last line of ", out_path, ": ", ec.message());
    std::fprintf(stderr, "generate-data: dropped a partial last line of %s\n", out_path.c_str());
  }
  return done;
}

}  // namespace

int cmd_generate_data(int argc, char** argv) {
  // The teacher is always the full model: --no-swiftkv is implied (and accepted, as a no-op).
  std::vector<char*> argv_teacher(argv, argv + argc);
  static char no_swiftkv[] = "--no-swiftkv";
  argv_teacher.push_back(no_swiftkv);
  Args args(
      static_cast<int>(argv_teacher.size()), argv_teacher.data(),
      join({kModelFlags, kSamplingFlags, kEngineFlags, {"--prompts", "--out", "--samples-per-prompt", "--system"}}),
      join({kSamplingBoolFlags, kModelBoolFlags, kEngineBoolFlags, {"--help", "--resume"}}), kAliases);
  if (args.flag("--help")) {
    std::fputs(kGenerateDataHelp, stdout);
    std::fputs(kEngineHelp, stdout);
    std::fputs("\nProgress (answers done/total, generated tokens/s, ETA) goes to stderr.\n", stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  if (!args.has("--model")) fail("missing required flag --model (see --help)");
  if (!args.has("--prompts")) fail("missing required flag --prompts (see --help)");
  if (!args.has("--out")) fail("missing required flag --out (see --help)");
  const std::string prompts_path = args.required("--prompts"), out_path = args.required("--out");

  engine::GenerationOptions opts = generation_options(args, 0.7);
  // Sampling defaults for data: plain nucleus sampling, no top-k / min-p cut unless asked.
  if (!args.has("--top-p")) opts.sampling.top_p = 0.9f;
  if (!args.has("--top-k")) opts.sampling.top_k = 0;
  if (!args.has("--min-p")) opts.sampling.min_p = 0.0f;
  opts.sampling.validate();
  if (opts.max_tokens < 1) fail("--max-tokens must be at least 1, got ", opts.max_tokens);
  const int64_t per_prompt = args.integer("--samples-per-prompt", 1);
  if (per_prompt < 1) fail("--samples-per-prompt must be at least 1, got ", per_prompt);
  const uint64_t seed = opts.sampling.has_seed ? opts.sampling.seed : 0;
  const engine::EngineOptions eopts = engine_options(args);

  const std::vector<Prompt> prompts = read_prompts(prompts_path, args.opt("--system"));
  const int64_t total = static_cast<int64_t>(prompts.size()) * per_prompt;
  std::error_code ec;
  const bool resume = args.flag("--resume");
  if (std::filesystem::is_directory(out_path, ec)) fail("--out ", out_path, " is a directory");
  if (!resume && std::filesystem::exists(out_path, ec) &&
      !(std::filesystem::is_regular_file(out_path, ec) && std::filesystem::file_size(out_path, ec) == 0))
    fail("--out ", out_path, " already exists and is not empty (--resume continues it)");
  const std::filesystem::path dir = std::filesystem::path(out_path).parent_path();
  if (access(dir.empty() ? "." : dir.c_str(), W_OK) != 0) fail("cannot write --out file ", out_path);
  const int64_t done_before = resume ? resume_point(out_path, prompts, per_prompt) : 0;
  if (done_before == total) {
    std::fprintf(stderr, "generate-data: %s already holds all %lld answers\n", out_path.c_str(), (long long)total);
    return 0;
  }

  LoadedModel m = load_model(args, true);
  const tokenizer::Tokenizer& tok = *m.tokenizer;
  const std::string tmpl = tok.chat_template();
  if (tmpl.empty()) fail("the model has no chat template, which generate-data needs to render prompts");
  auto tok_str = [&](std::optional<int32_t> id) { return id ? tok.token_text(*id) : std::string(); };
  const std::string bos = tok_str(tok.bos_id()), eos = tok_str(tok.eos_id());
  // Chat models end a turn with their own token, which need not be the tokenizer's EOS.
  for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"})
    if (auto id = tok.token_id(t); id && tok.is_special(*id)) opts.stop_token_ids.push_back(*id);

  // Every prompt is rendered and measured before the first answer, so a prompt too long for the
  // context fails now and not hours into the run.
  std::vector<std::vector<int32_t>> prompt_ids;
  for (const Prompt& p : prompts) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(tokenizer::apply_chat_template_json(tmpl, p.messages, true, bos, eos), false, true);
    } catch (const Error& e) {
      fail_like(e, p.where, ": chat template: ", e.what());
    }
    prompt_ids.push_back(std::move(ids));
  }
  engine::Engine eng(*m.model, &tok, eopts);
  for (size_t p = 0; p < prompt_ids.size(); ++p)
    if (static_cast<int64_t>(prompt_ids[p].size()) >= eng.max_model_len())
      fail_resource(prompts[p].where, ": the prompt has ", prompt_ids[p].size(),
                    " tokens, no room left in the model length ", eng.max_model_len(), " (raise --max-model-len)");
  std::fprintf(stderr, "generate-data: %s\n", eng.describe().c_str());

  // Answers go out whole or not at all (a full disk cuts a partial one off again), so --resume
  // finds complete lines.
  io::AppendFile out(out_path);
  Progress progress("generate-data", "answers", total, done_before);
  progress.rate_in("tokens");
  int64_t truncated = 0;
  // Every answer is a request of its own with its own seed, all answered concurrently; they are
  // written in order as soon as all before them are done, so --resume finds a clean prefix.
  // Quantised weights compute each row alone, so an answer does not depend on what else shares
  // its steps (float weights through sgemm may differ in the last bits, and at near-ties).
  std::map<engine::RequestId, int64_t> answer_of;
  std::map<int64_t, std::pair<std::string, std::string>> finished;  // answer -> (text, finish reason)
  std::map<int64_t, std::string> text;
  std::map<int64_t, int64_t> tokens;
  for (int64_t a = done_before; a < total; ++a) {
    engine::GenerationOptions o = opts;
    o.sampling.seed = train::splitmix64(seed ^ train::splitmix64(static_cast<uint64_t>(a)));
    o.sampling.has_seed = true;
    answer_of[eng.add(engine::make_request(prompt_ids[a / per_prompt], o))] = a;
  }
  int64_t next = done_before;
  while (eng.has_work()) {
    for (const engine::Event& e : eng.step()) {
      const int64_t a = answer_of.at(e.request);
      text[a] += e.text;
      tokens[a] += static_cast<int64_t>(e.tokens.size());
      if (e.finished) finished[a] = {std::move(text[a]), e.finish_reason};
    }
    for (auto it = finished.find(next); it != finished.end(); it = finished.find(next)) {
      const int64_t p = next / per_prompt;
      truncated += it->second.second == "length";
      Json line;
      line["messages"] = prompts[p].messages;
      line["messages"].push_back({{"role", "assistant"}, {"content", it->second.first}});
      line["finish_reason"] = it->second.second;
      out.append(line.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
      progress.advance(1, "", tokens[next]);
      finished.erase(it);
      text.erase(next);
      tokens.erase(next);
      ++next;
    }
  }
  const double secs = progress.seconds();
  std::fprintf(stderr,
               "generate-data: wrote %lld answers to %s (%lld were there already) in %.1f s: %lld tokens, %.1f "
               "tokens/s; %lld stopped at --max-tokens\n",
               (long long)(total - done_before), out_path.c_str(), (long long)done_before, secs,
               (long long)progress.amount(), secs > 0 ? progress.amount() / secs : 0.0, (long long)truncated);
  return 0;
}

}  // namespace skv::cli
