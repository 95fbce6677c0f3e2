#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "eval/datasets.h"
#include "eval/lm.h"
#include "eval/paired.h"
#include "eval/report.h"
#include "eval/runner.h"
#include "io/atomic_file.h"
#include "skv_git_commit.h"  // generated at build time (cmake/git_commit.cmake)
#include "tokenizer/chat_template.h"

namespace skv::cli {
namespace {

constexpr const char* kEvalHelp =
    "usage: swiftkv eval --model PATH --tasks LIST [--limit N] [--num-fewshot K] [--chat-template]\n"
    "                    [--no-swiftkv] [--batch-tokens B] [--output results.json] [--log-samples s.jsonl]\n"
    "                    [--seed S] [--data-dir DIR] [--label NAME] [--no-bos] [-t N] [-c N]\n"
    "       swiftkv eval --compare [--paired] [--tasks LIST] a.json b.json ...\n"
    "\n"
    "Scores a model on benchmarks with lm-evaluation-harness (0.4.x) prompts, tokenisation and\n"
    "metrics, and prints a summary table (stdout). Tasks (comma-separated):\n"
    "  arc_easy, arc_challenge   acc, acc_norm (test split, 0-shot; few-shot examples from Dev)\n"
    "  piqa                      acc, acc_norm (validation)\n"
    "  boolq                     acc (validation)\n"
    "  mmlu                      acc over all 57 subjects + per subject (5-shot from dev);\n"
    "                            mmlu_<subject> runs one subject\n"
    "  truthfulqa_mc1            acc;  truthfulqa_mc2: mc2 (6-shot QA preamble in the prompt)\n"
    "  wikitext2                 word_perplexity, byte_perplexity, bits_per_byte, token_perplexity\n"
    "                            (rolling windows of the context size over each document)\n"
    "  lambada_openai            perplexity, acc (lambada is an alias)\n"
    "  gsm8k_cot                 exact_match (strict), exact_match_flexible: 8-shot chain of\n"
    "                            thought, greedy, until \"Q:\" / EOS, 256 tokens (gsm8k is an alias)\n"
    "  mc:PATH[,fewshot=PATH]    JSON Lines {\"context\", \"choices\": [...], \"label\": k}; choices\n"
    "                            are scored verbatim after the context; few-shot examples (context +\n"
    "                            correct choice, \"\\n\\n\" between) come from the fewshot= file, else\n"
    "                            from the task's other items. acc, acc_norm\n"
    "\n"
    "  --limit N            first N items per task (per subject for mmlu); 0 < N < 1: that fraction\n"
    "  --num-fewshot K      override every task's default (0; mmlu 5; gsm8k_cot 8)\n"
    "  --seed S             few-shot draws (default 1234); an item is never its own example\n"
    "  --chat-template      each prompt becomes one user turn of the model's chat template\n"
    "                       (mmlu's description a system turn) with the generation prompt;\n"
    "                       multiple-choice answers then follow without the leading space\n"
    "  --batch-tokens B     most tokens (rows) per forward call (default 512; -b/--batch-size too):\n"
    "                       the engine's --max-num-batched-tokens. Log-likelihood tasks submit\n"
    "                       blocks of consecutive items together; the engine's prefix cache gives\n"
    "                       an item's choices (and the next items' few-shot preamble) its context.\n"
    "                       The KV pool holds 16 x B positions (more only for an input that needs\n"
    "                       it). Results do not depend on B beyond float rounding; gsm8k generates\n"
    "                       one item at a time\n"
    "  -c, --ctx-size N     lm-eval's max_length: inputs are left-truncated to it and wikitext\n"
    "                       windows are this long (default: the model's max positions)\n"
    "  --no-bos             never add the BOS token the tokenizer adds by default (lm-eval 0.4.13\n"
    "                       keeps the tokenizer's default, as we do; earlier 0.4.x added none)\n"
    "  --no-swiftkv         a SwiftKV checkpoint's teacher path\n"
    "  --kv-cache-dtype T   the KV cache's form: auto (= f32), f32, f16, bf16, q8_0 or fp8 (MXFP8)\n"
    "  --output FILE        results JSON: per task metrics, *_stderr, n, settings, timings\n"
    "  --log-samples FILE   one JSON line per item (prompt, log-likelihoods, predictions)\n"
    "  --data-dir DIR       the shared data sets (default $SKV_DATA, else ../shared/data next to\n"
    "                       the source tree)\n"
    "  --label NAME         the column name --compare shows for this results file\n"
    "  --compare FILES...   markdown table of the main metric per task, one column per file, and\n"
    "                       the average of the accuracy-type metrics (--tasks: only these rows)\n"
    "  --paired             with --compare: each model minus the first, item by item on the items\n"
    "                       both scored, ± the standard error of the mean paired difference, and\n"
    "                       the average over tasks; needs each results file's --log-samples file\n"
    "                       (recorded in it, or NAME.samples.jsonl next to NAME.json)\n"
    "\n"
    "Progress (items done/total, items/s, ETA) goes to stderr.\n";

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print_summary(const std::vector<eval::TaskResult>& groups, const std::vector<eval::TaskResult>& tasks) {
  std::printf("| Task | n | shots | Metric | Value | Stderr |\n|---|---:|---:|---|---:|---:|\n");
  auto rows = [](const eval::TaskResult& t) {
    for (size_t i = 0; i < t.metrics.size(); ++i) {
      const auto& [name, value] = t.metrics[i];
      if (name.size() > 7 && name.compare(name.size() - 7, 7, "_stderr") == 0) continue;
      std::string se = "";
      if (i + 1 < t.metrics.size() && t.metrics[i + 1].first == name + "_stderr" &&
          std::isfinite(t.metrics[i + 1].second)) {
        char b[32];
        std::snprintf(b, sizeof b, t.metrics[i + 1].second < 1e6 ? "%.4f" : "%.4e", t.metrics[i + 1].second);
        se = b;
      }
      std::printf(
          std::fabs(value) < 1e6 ? "| %s | %lld | %d | %s | %.4f | %s |\n" : "| %s | %lld | %d | %s | %.4e | %s |\n",
          t.name.c_str(), (long long)t.n, t.num_fewshot, name.c_str(), value, se.c_str());
    }
  };
  for (const auto& g : groups) rows(g);
  for (const auto& t : tasks) rows(t);
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args args(argc, argv,
            join({kModelFlags,
                  {"--tasks", "--limit", "--num-fewshot", "--output", "--log-samples", "--seed", "--batch-tokens",
                   "--data-dir", "--label", "--kv-cache-dtype"}}),
            join({kModelBoolFlags, {"--help", "--chat-template", "--compare", "--paired", "--no-bos"}}), kAliases);
  if (args.flag("--help")) {
    std::fputs(kEvalHelp, stdout);
    return 0;
  }
  if (args.flag("--compare")) {
    std::vector<std::string> only;
    if (auto t = args.opt("--tasks"))
      for (const auto& req : eval::parse_task_list(*t)) only.push_back(req.name);
    const std::string table = args.flag("--paired") ? eval::paired_table(args.positional(), only)
                                                    : eval::compare_table(args.positional(), only);
    std::fputs(table.c_str(), stdout);
    return 0;
  }
  if (args.flag("--paired")) fail("--paired goes with --compare: swiftkv eval --compare --paired a.json b.json");
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  if (!args.has("--tasks")) fail("missing required flag --tasks (see --help)");
  const auto t_start = std::chrono::steady_clock::now();

  eval::RunOptions run;
  if (auto l = args.opt("--limit")) {
    const double v = args.real("--limit", 0);
    if (!(v > 0)) fail("--limit must be positive, got ", *l);
    if (v < 1) {
      run.limit_fraction = v;
    } else {
      if (v != std::floor(v)) fail("--limit must be a whole number of items or a fraction below 1, got ", *l);
      run.limit = static_cast<int64_t>(v);
    }
  }
  run.num_fewshot = static_cast<int>(args.integer("--num-fewshot", -1));
  if (args.has("--num-fewshot") && run.num_fewshot < 0) fail("--num-fewshot must be >= 0, got ", run.num_fewshot);
  const int64_t seed = args.integer("--seed", 1234);
  if (seed < 0) fail("--seed must be >= 0, got ", seed);
  run.seed = static_cast<uint64_t>(seed);
  if (args.has("--batch-tokens") && args.has("--batch-size")) fail("give only one of --batch-tokens and --batch-size");
  const int64_t batch_tokens = args.integer("--batch-tokens", args.integer("--batch-size", 512));
  if (batch_tokens <= 0) fail("--batch-tokens must be positive, got ", batch_tokens);

  // Tasks (and their data) are read before the model, so a bad file fails fast.
  const std::string data_dir = args.str("--data-dir", shared_data_dir());
  std::vector<eval::Task> tasks;
  for (const auto& req : eval::parse_task_list(args.required("--tasks")))
    for (auto& t : eval::load_task(req.name, data_dir, req.fewshot_path)) tasks.push_back(std::move(t));

  // Outputs are opened before the run so a bad path does not waste it. The samples file appears
  // only when the run completes (an aborted or failed one leaves the previous file, or none).
  std::unique_ptr<io::AtomicFile> samples_file;
  std::unique_ptr<io::AtomicFileBuf> samples_buf;
  std::unique_ptr<std::ostream> samples;
  if (auto p = args.opt("--log-samples")) {
    samples_file = std::make_unique<io::AtomicFile>(*p);
    samples_buf = std::make_unique<io::AtomicFileBuf>(*samples_file);
    samples = std::make_unique<std::ostream>(samples_buf.get());
    samples->exceptions(std::ios::badbit);  // a failed write throws the error naming the file
    run.samples = samples.get();
  }
  // The results file is written at the end (an aborted run leaves none behind), so only its
  // directory is checked now.
  if (auto p = args.opt("--output")) {
    const std::filesystem::path dir = std::filesystem::path(*p).parent_path();
    if (access(dir.empty() ? "." : dir.c_str(), W_OK) != 0) fail("cannot write --output file ", *p);
  }

  LoadedModel m = load_model(args, true);
  const int64_t max_pos = m.model->config().max_position_embeddings;
  const int64_t max_length = args.has("--ctx-size") ? m.context_size : max_pos;
  eval::EvalModelOptions lm_opts;
  lm_opts.max_length = max_length;
  lm_opts.batch_tokens = batch_tokens;
  if (auto t = args.opt("--kv-cache-dtype")) lm_opts.kv_dtype = engine::parse_kv_dtype(*t);
  const bool chat = args.flag("--chat-template");
  lm_opts.add_bos = !args.flag("--no-bos");
  if (chat) {
    const std::string tmpl = m.tokenizer->chat_template();
    if (tmpl.empty()) fail("--chat-template: the model has no chat template");
    auto tok_str = [&](std::optional<int32_t> id) { return id ? m.tokenizer->token_text(*id) : std::string(); };
    const std::string bos = tok_str(m.tokenizer->bos_id()), eos = tok_str(m.tokenizer->eos_id());
    run.chat = [tmpl, bos, eos](const std::string& system, const std::string& user) {
      std::vector<tokenizer::ChatMessage> messages;
      if (!system.empty()) messages.push_back({"system", system});
      messages.push_back({"user", user});
      return tokenizer::apply_chat_template(tmpl, messages, true, bos, eos);
    };
  }
  eval::EvalModel lm(*m.model, *m.tokenizer, lm_opts);
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  int64_t total = 0;
  for (const auto& t : tasks) total += eval::items_to_run(t, run);
  Progress progress("eval", "items", total);
  std::vector<eval::TaskResult> results;
  for (const auto& t : tasks) results.push_back(eval::run_task(lm, t, run, progress));
  progress.finish();
  std::vector<eval::TaskResult> groups;
  std::vector<std::string> group_names;
  for (const auto& r : results)
    if (!r.group.empty() && std::find(group_names.begin(), group_names.end(), r.group) == group_names.end())
      group_names.push_back(r.group);
  for (const auto& g : group_names) {
    std::vector<eval::TaskResult> members;
    for (const auto& r : results)
      if (r.group == g) members.push_back(r);
    groups.push_back(eval::aggregate_group(g, members));
  }
  const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  print_summary(groups, results);
  // Before the results file, which names the samples file as its companion.
  if (samples_buf) samples_buf->commit();
  if (auto out_path = args.opt("--output")) {
    nlohmann::ordered_json j;
    if (auto l = args.opt("--label")) j["label"] = *l;
    nlohmann::ordered_json body = eval::results_json(results, groups);
    j["results"] = body["results"];
    j["groups"] = body["groups"];
    const io::ModelConfig& c = m.model->config();
    nlohmann::ordered_json cfg;
    cfg["model"] = args.required("--model");
    cfg["architecture"] = c.model_type();
    cfg["path"] = m.model->swiftkv_active() ? "swiftkv" : c.swiftkv_checkpoint ? "teacher" : "base";
    cfg["tasks"] = args.required("--tasks");
    if (run.limit >= 0) {
      cfg["limit"] = run.limit;
    } else {
      cfg["limit"] = run.limit_fraction > 0 ? nlohmann::ordered_json(run.limit_fraction) : nullptr;
    }
    cfg["num_fewshot"] = run.num_fewshot >= 0 ? nlohmann::ordered_json(run.num_fewshot) : nullptr;
    cfg["seed"] = run.seed;
    cfg["chat_template"] = chat;
    cfg["kv_cache_dtype"] = dtype_name(lm_opts.kv_dtype);
    cfg["tokenizer_adds_bos"] = lm_opts.add_bos && m.tokenizer->adds_bos();
    cfg["max_length"] = max_length;
    cfg["batch_tokens"] = batch_tokens;
    cfg["threads"] = m.threads;
    cfg["data_dir"] = data_dir;
    if (auto p = args.opt("--log-samples")) cfg["log_samples"] = *p;
    cfg["swiftkv_commit"] = SKV_GIT_COMMIT;  // HEAD when this binary was built ("-dirty": uncommitted changes)
    cfg["date"] = utc_now();
    j["config"] = cfg;
    j["timings"] = {{"load_seconds", load_seconds},
                    {"eval_seconds", total_seconds - load_seconds},
                    {"total_seconds", total_seconds},
                    {"tokens_computed", lm.tokens_computed()}};
    io::write_file_atomic(*out_path, j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
  }
  std::fprintf(stderr, "eval: %lld items in %.1f s (%.2f items/s), %lld tokens computed\n", (long long)total,
               total_seconds - load_seconds, total / std::max(1e-9, total_seconds - load_seconds),
               (long long)lm.tokens_computed());
  return 0;
}

}  // namespace skv::cli
