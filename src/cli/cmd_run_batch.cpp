// `swiftkv run-batch`: vLLM's offline batch format on the engine core. Every valid line becomes
// engine requests at once (continuous batching does the rest); each result line is appended and
// flushed as soon as its request is done, so an interrupted run loses nothing and --resume
// skips what is already there.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/progress.h"
#include "engine/engine.h"
#include "io/atomic_file.h"
#include "io/read_file.h"
#include "server/openai.h"

namespace skv::cli {
namespace {

using server::Json;

const char* kRunBatchHelp =
    "usage: swiftkv run-batch --model PATH -i requests.jsonl -o results.jsonl [flags]\n"
    "\n"
    "Runs a file of OpenAI requests offline (vLLM's run-batch format). Each input line:\n"
    "  {\"custom_id\": ID, \"method\": \"POST\", \"url\": \"/v1/completions\" | \"/v1/chat/completions\",\n"
    "   \"body\": {...OpenAI request...}}\n"
    "Each output line:\n"
    "  {\"id\", \"custom_id\", \"response\": {\"status_code\", \"request_id\", \"body\": {...OpenAI response...}},\n"
    "   \"error\": null | {\"line\": N, \"message\": ...}}\n"
    "A malformed or invalid line gets an error record with its line number (status 400, or 404 for\n"
    "an unknown model); every other request still runs. Results are appended as they finish (not\n"
    "in input order); match them by custom_id.\n"
    "\n"
    "  -m, --model PATH          HF model directory or .gguf file\n"
    "  -i, --input-file FILE     requests, one JSON object per line\n"
    "  -o, --output-file FILE    results (JSON Lines)\n"
    "      --resume              keep OUT's records and run only the requests not in it (by\n"
    "                            custom_id; error records by line number)\n"
    "      --served-model-name NAME  the name responses carry and requests may give (default: the\n"
    "                            model path's last component)\n"
    "      --chat-template FILE  a Jinja chat template instead of the model's\n"
    "  -t, --threads N           CPU threads (default: all cores)\n"
    "      --no-swiftkv          run a SwiftKV checkpoint's teacher path\n";

struct Pending {
  int64_t line = 0;
  std::string custom_id;
  server::ApiRequest api;
  std::vector<server::PromptResult> results;
  int64_t open = 0;  // engine requests (prompts x samples) still running
  std::string failure;
};

Json record(const std::string* custom_id, int status, const Json& body, const Json& error) {
  Json r;
  r["id"] = "batch_req_" + server::random_hex(32);
  r["custom_id"] = custom_id ? Json(*custom_id) : Json(nullptr);
  r["response"] = {{"status_code", status}, {"request_id", "vllm-batch-" + server::random_hex(32)}, {"body", body}};
  r["error"] = error;
  return r;
}

Json error_record(const std::string* custom_id, int64_t line, int status, const std::string& message) {
  return record(custom_id, status, server::error_body(message, status), Json{{"line", line}, {"message", message}});
}

}  // namespace

int cmd_run_batch(int argc, char** argv) {
  std::map<std::string, std::string> aliases = kAliases;
  aliases["-i"] = "--input-file";
  aliases["-o"] = "--output-file";
  Args args(
      argc, argv,
      join({kModelFlags, kEngineFlags, {"--input-file", "--output-file", "--served-model-name", "--chat-template"}}),
      join({kModelBoolFlags, kEngineBoolFlags, {"--help", "--resume"}}), aliases);
  if (args.flag("--help")) {
    std::fputs(kRunBatchHelp, stdout);
    std::fputs(kEngineHelp, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  for (const char* f : {"--model", "--input-file", "--output-file"})
    if (!args.has(f)) fail("missing required flag ", f, " (see --help)");
  const std::string in_path = args.required("--input-file"), out_path = args.required("--output-file");
  const engine::EngineOptions eopts = engine_options(args);
  const std::string input = io::read_file(in_path);

  std::error_code ec;
  const bool resume = args.flag("--resume");
  if (std::filesystem::is_directory(out_path, ec)) fail("--output-file ", quote_bounded(out_path), " is a directory");
  if (!resume && std::filesystem::exists(out_path, ec) && std::filesystem::file_size(out_path, ec) > 0)
    fail("--output-file ", quote_bounded(out_path), " already exists and is not empty (--resume continues it)");
  std::set<std::string> done_ids;
  std::set<int64_t> done_lines;
  if (resume && std::filesystem::exists(out_path, ec)) {
    const std::string prev = io::read_file(out_path);
    size_t complete = 0;
    for (size_t pos = 0; pos < prev.size();) {
      const size_t nl = prev.find('\n', pos);
      if (nl == std::string::npos) break;  // a partial last line: dropped below
      const std::string line = prev.substr(pos, nl - pos);
      pos = nl + 1;
      Json j = Json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        fail(quote_bounded(out_path), ": a line is not a result record; is it the output of run-batch?");
      if (j.contains("custom_id") && j["custom_id"].is_string()) done_ids.insert(j["custom_id"].get<std::string>());
      if (j.contains("error") && j["error"].is_object() && j["error"].contains("line") &&
          j["error"]["line"].is_number_integer())
        done_lines.insert(j["error"]["line"].get<int64_t>());
      complete = pos;
    }
    if (complete < prev.size()) {
      std::filesystem::resize_file(out_path, complete, ec);
      if (ec) fail("cannot truncate the partial last line of ", quote_bounded(out_path), ": ", ec.message());
    }
  }
  const std::filesystem::path dir = std::filesystem::path(out_path).parent_path();
  if (access(dir.empty() ? "." : dir.c_str(), W_OK) != 0) fail("cannot write --output-file ", quote_bounded(out_path));

  LoadedModel m = load_model(args, true);
  const tokenizer::Tokenizer& tok = *m.tokenizer;
  engine::Engine eng(*m.model, &tok, eopts);
  std::fprintf(stderr, "run-batch: %s\n", eng.describe().c_str());
  server::ApiContext ctx;
  ctx.tok = &tok;
  ctx.model_name = args.str("--served-model-name", std::filesystem::path(args.required("--model")).filename().string());
  ctx.chat_template =
      args.has("--chat-template") ? io::read_file(args.required("--chat-template")) : tok.chat_template();
  ctx.max_model_len = eng.max_model_len();
  ctx.extra_stop_ids = server::end_of_turn_ids(tok);

  // Records go out whole or not at all (a full disk cuts a partial one off again), so --resume
  // finds complete lines.
  io::AppendFile out(out_path);
  auto write = [&](const Json& j) { out.append(j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"); };

  // Parse every line first: bad lines are answered at once, good ones queued.
  std::vector<std::unique_ptr<Pending>> pending;
  std::map<engine::RequestId, std::pair<Pending*, size_t>> owner;  // engine request -> (line, prompt)
  int64_t errors = 0, skipped = 0, lines = 0;
  std::set<std::string> seen_ids;
  for (size_t pos = 0; pos < input.size();) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string::npos) nl = input.size();
    const std::string text = input.substr(pos, nl - pos);
    pos = nl + 1;
    ++lines;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const int64_t line = lines;
    if (done_lines.count(line)) {  // answered by an error record already
      ++skipped;
      continue;
    }
    const Json j = Json::parse(text, nullptr, false);
    std::string custom_id;
    const std::string* cid = nullptr;
    try {
      if (j.is_discarded()) fail("line ", line, ": not valid JSON");
      if (!j.is_object()) fail("line ", line, ": not a JSON object");
      if (j.contains("custom_id") && j["custom_id"].is_string()) {
        custom_id = j["custom_id"].get<std::string>();
        cid = &custom_id;
      }
      if (cid && done_ids.count(custom_id)) {
        ++skipped;
        continue;
      }
      if (!cid) fail("line ", line, ": 'custom_id' (a string) is required");
      if (!seen_ids.insert(custom_id).second)
        fail("line ", line, ": custom_id ", quote_bounded(custom_id, 60), " repeats an earlier line");
      auto p = std::make_unique<Pending>();
      p->line = line;
      p->custom_id = custom_id;
      p->api = server::parse_batch_request(j, ctx);
      if (!p->api.model.empty() && p->api.model != ctx.model_name) {
        write(error_record(cid, line, 404, "The model " + quote_bounded(p->api.model, 60) + " does not exist."));
        ++errors;
        continue;
      }
      p->results.resize(p->api.prompts.size());
      for (size_t k = 0; k < p->api.prompts.size(); ++k) {
        p->results[k].prompt = p->api.prompts[k].prompt;
        p->results[k].samples.resize(p->api.n);
        owner[eng.add(p->api.prompts[k])] = {p.get(), k};
        p->open += p->api.n;
      }
      pending.push_back(std::move(p));
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Internal) throw;
      const std::string msg = e.what();
      write(
          error_record(cid, line, 400, msg.rfind("line ", 0) == 0 ? msg : "line " + std::to_string(line) + ": " + msg));
      ++errors;
    }
  }

  Progress progress("run-batch", "requests", static_cast<int64_t>(pending.size()));
  progress.rate_in("tokens");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  int64_t written = 0;
  while (eng.has_work()) {
    for (const engine::Event& e : eng.step()) {
      auto [p, k] = owner.at(e.request);
      server::SampleResult& s = p->results[k].samples.at(e.index);
      s.tokens.insert(s.tokens.end(), e.tokens.begin(), e.tokens.end());
      s.text += e.text;
      s.logprobs.insert(s.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      if (!e.prompt_logprobs.empty()) p->results[k].prompt_logprobs = e.prompt_logprobs;
      if (!e.finished) continue;
      s.finish_reason = e.finish_reason;
      p->results[k].cached_tokens = e.usage.cached_tokens;
      if (!e.error.empty()) p->failure = e.error;
      if (--p->open > 0) continue;
      if (!p->failure.empty()) {
        write(error_record(&p->custom_id, p->line, 500, p->failure));
      } else {
        const std::string id =
            (p->api.endpoint == server::Endpoint::Completions ? "cmpl-" : "chatcmpl-") + server::random_hex(32);
        write(record(&p->custom_id, 200, server::response_body(p->api, p->results, ctx, id, created), nullptr));
      }
      int64_t toks = 0;
      for (const auto& r : p->results)
        for (const auto& smp : r.samples) toks += static_cast<int64_t>(smp.tokens.size());
      progress.advance(1, "", toks);
      ++written;
      p->results.clear();
    }
  }
  progress.finish();
  const double secs = progress.seconds();
  std::fprintf(stderr,
               "run-batch: %lld requests in %.1f s (%.2f requests/s, %.1f generated tokens/s); %lld error records; "
               "%lld already in the output; %lld preemptions\n",
               (long long)written, secs, secs > 0 ? written / secs : 0.0, secs > 0 ? progress.amount() / secs : 0.0,
               (long long)errors, (long long)skipped, (long long)eng.counters().preemptions);
  return 0;
}

}  // namespace skv::cli
