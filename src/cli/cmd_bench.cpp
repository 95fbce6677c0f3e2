#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "backend/cpu/threads.h"
#include "backend/ops.h"
#include "cli/bench_swiftkv.h"
#include "cli/bench_util.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "engine/engine.h"

namespace skv::cli {

static const char* kBenchHelp =
    R"(usage: swiftkv bench --model PATH [-p 512] [-n 128] [-r 5] [-t N] [-b 512] [--json] [--no-swiftkv]
       swiftkv bench --model PATH --swiftkv-compare [--swiftkv-fractions 0.25,0.5] [--key-value-group-size G]
                     [-p 512,1024,2048] [-n 64] [-r 3] [-t N] [-b 512] [--json]

llama-bench semantics: ppN = one prompt of N tokens from an empty cache, tgN = N tokens decoded
one at a time from an empty cache; each repeated -r times after a warm-up. -p and -n take lists.
Everything runs through the engine core (one sequence, prefix caching off).

--parallel B1,B2,... (llama-batched-bench's -npl): B sequences at once, each a prompt of -p
tokens then -n generated tokens, on the engine with continuous batching; reports the prompt
throughput (all B prompts) and the aggregate decode throughput (B x (n - 1) tokens over the
decode steps), per B.

--swiftkv-compare runs the same prompts through the baseline (the teacher path of the same
weights) and SwiftKV variants, interleaved: for a base model, one variant per fraction of layers
skipped (converted in memory as `swiftkv convert` does, default 0.25,0.5); for a SwiftKV
checkpoint, its own SwiftKV path. Per prompt length it prints the executed prefill FLOPs, the
FLOP ratio (the speed-up limit), the measured prefill time and speed-up, and the decode speed
of -n tokens generated after that prompt.

`swiftkv bench serve` benchmarks a running server instead (vLLM's `bench serve`; see
`swiftkv bench serve --help`).
)";

int cmd_bench(int argc, char** argv) {
  if (argc > 0 && std::string(argv[0]) == "serve") return cmd_bench_serve(argc - 1, argv + 1);
  Args args(
      argc, argv,
      join({kModelFlags,
            {"--n-prompt", "--n-gen", "--repetitions", "--swiftkv-fractions", "--key-value-group-size", "--parallel"}}),
      join({kModelBoolFlags, {"--help", "--json", "--swiftkv-compare"}}),
      {{"-m", "--model"},
       {"-t", "--threads"},
       {"-p", "--n-prompt"},
       {"-n", "--n-gen"},
       {"-r", "--repetitions"},
       {"-b", "--batch-size"},
       {"--swiftkv-fraction", "--swiftkv-fractions"}});
  if (args.flag("--help")) {
    std::fputs(kBenchHelp, stdout);
    return 0;
  }
  if (args.flag("--swiftkv-compare")) {
    if (args.flag("--no-swiftkv")) fail("--no-swiftkv and --swiftkv-compare exclude each other");
    return bench_swiftkv_compare(args);
  }
  if (args.has("--swiftkv-fractions") || args.has("--key-value-group-size"))
    fail("--swiftkv-fractions and --key-value-group-size need --swiftkv-compare");
  auto lengths = [&](const char* flag, const char* def) {
    std::vector<int64_t> v;
    for (int32_t x : parse_id_list(args.str(flag, def), flag)) v.push_back(x);
    return v;
  };
  const std::vector<int64_t> prompts = lengths("--n-prompt", "512"), gens = lengths("--n-gen", "128");
  const int64_t reps = args.integer("--repetitions", 5);
  if (reps < 1) fail("-r must be >= 1");
  LoadedModel m = load_model(args, false);
  model::LlamaModel& model = *m.model;
  const int64_t vocab = model.config().vocab_size;
  const int64_t longest =
      std::max(*std::max_element(prompts.begin(), prompts.end()), *std::max_element(gens.begin(), gens.end()));
  const std::vector<int32_t> ids = random_prompt(longest + 1, vocab);
  const std::vector<int64_t> parallel = args.has("--parallel") ? lengths("--parallel", "1") : std::vector<int64_t>{};
  for (int64_t b : parallel)
    if (b < 1) fail("--parallel: sequence counts must be >= 1");
  int64_t most = 1;
  for (int64_t b : parallel) most = std::max(most, b);
  engine::EngineOptions eo;
  eo.max_num_seqs = most;
  eo.max_num_batched_tokens = m.batch_size;
  eo.enable_prefix_caching = false;  // every run computes its prompt
  // Room for the longest test per sequence: a pp or tg run alone, or a --parallel prompt and its
  // generation together.
  const int64_t max_p = *std::max_element(prompts.begin(), prompts.end());
  const int64_t max_g = *std::max_element(gens.begin(), gens.end());
  if (!parallel.empty() && max_p + max_g > model.config().max_position_embeddings)
    fail_resource("--parallel: prompt ", max_p, " + ", max_g, " generated tokens exceed the model's ",
                  model.config().max_position_embeddings, " positions");
  const int64_t per_seq = std::max(longest, parallel.empty() ? int64_t{0} : max_p + max_g) + 1;
  eo.num_kv_blocks = most * ((per_seq + eo.block_size - 1) / eo.block_size + 1);
  // ppN draws one token after the prompt, as llama-bench's ppN evaluates N positions: a prompt
  // as long as the model's context (pp8192 on an 8192-position model) needs one more position
  // in the length limit, never in the cache or the rotary table.
  if (per_seq > model.config().max_position_embeddings) eo.max_model_len = per_seq;
  engine::Engine eng(model, nullptr, eo);
  auto request = [&](const std::vector<int32_t>& prompt, int64_t max_tokens) {
    engine::Request r;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.detokenize = false;
    return r;
  };
  auto drain = [&] {
    while (eng.has_work()) eng.step();
  };

  auto run_pp = [&](int64_t n_prompt) {
    double t0 = now_seconds();
    eng.add(request({ids.begin(), ids.begin() + n_prompt}, 1));
    drain();
    return n_prompt / (now_seconds() - t0);
  };
  // n_gen forward passes: the one-token prompt, then n_gen - 1 decodes (the last token drawn
  // needs none), as llama-bench's tgN.
  auto run_tg = [&](int64_t n_gen) {
    double t0 = now_seconds();
    eng.add(request({ids[0]}, n_gen));
    drain();
    return n_gen / (now_seconds() - t0);
  };

  nlohmann::json results = nlohmann::json::array();
  const char* fmt = "| %-28s | %9.2f MiB | %8.2f M | %-7s | %7d | %6s | %9.2f ± %6.2f |\n";
  if (!args.flag("--json")) {
    std::printf("| %-28s | %13s | %10s | %-7s | %7s | %6s | %18s |\n", "model", "size", "params", "backend", "threads",
                "test", "t/s");
    std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(30, '-').c_str(), std::string(15, '-').c_str(),
                std::string(12, '-').c_str(), std::string(9, '-').c_str(), std::string(9, '-').c_str(),
                std::string(8, '-').c_str(), std::string(20, '-').c_str());
  }
  std::string name = base_name(model.files().path);
  if (name.size() > 28) name = name.substr(0, 28);
  std::vector<std::pair<std::string, std::function<double()>>> tests;
  for (int64_t p : prompts)
    if (p > 0) tests.emplace_back("pp" + std::to_string(p), [&run_pp, p] { return run_pp(p); });
  for (int64_t g : gens)
    if (g > 0) tests.emplace_back("tg" + std::to_string(g), [&run_tg, g] { return run_tg(g); });
  // --parallel: B prompts, then their decodes together. Returns {prompt t/s, decode t/s}.
  auto run_parallel = [&](int64_t b, int64_t p, int64_t n) {
    const double t0 = now_seconds();
    for (int64_t i = 0; i < b; ++i) {
      std::vector<int32_t> prompt = random_prompt(std::max<int64_t>(p, 1), vocab, 1000 + i);
      eng.add(request(prompt, n));
    }
    std::set<engine::RequestId> started;  // the decode phase begins when every prompt has its first token
    double t1 = 0;
    while (eng.has_work()) {
      for (const engine::Event& e : eng.step())
        if (!e.tokens.empty() && started.insert(e.request).second && static_cast<int64_t>(started.size()) == b)
          t1 = now_seconds();
    }
    const double t2 = now_seconds();
    return std::pair<double, double>{b * std::max<int64_t>(p, 1) / (t1 - t0), b * (n - 1) / (t2 - t1)};
  };
  for (int64_t b : parallel) {
    for (int64_t p : prompts) {
      for (int64_t g : gens) {
        if (g < 2) fail("--parallel needs -n >= 2");
        const std::string suffix = " x" + std::to_string(b);
        run_parallel(b, p, g);  // warm-up
        std::vector<double> pp, tg;
        for (int64_t r = 0; r < reps; ++r) {
          const auto [a, d] = run_parallel(b, p, g);
          pp.push_back(a);
          tg.push_back(d);
        }
        for (const auto& [test, samples] :
             {std::pair{"pp" + std::to_string(p) + suffix, pp}, std::pair{"tg" + std::to_string(g) + suffix, tg}}) {
          const Stat s = stats(samples);
          if (args.flag("--json")) {
            results.push_back({{"test", test},
                               {"parallel", b},
                               {"tokens_per_second", s.mean},
                               {"stddev", s.sd},
                               {"samples", samples},
                               {"threads", backend::cpu::num_threads()}});
          } else {
            std::printf(fmt, name.c_str(), model.weight_bytes() / 1048576.0, model.parameter_count() / 1e6, "CPU",
                        backend::cpu::num_threads(), test.c_str(), s.mean, s.sd);
            std::fflush(stdout);
          }
        }
      }
    }
  }
  if (!parallel.empty()) tests.clear();
  for (const auto& [test, run] : tests) {
    run();  // warm-up
    std::vector<double> samples;
    for (int64_t r = 0; r < reps; ++r) samples.push_back(run());
    Stat s = stats(samples);
    if (args.flag("--json")) {
      results.push_back({{"test", test},
                         {"tokens_per_second", s.mean},
                         {"stddev", s.sd},
                         {"samples", samples},
                         {"threads", backend::cpu::num_threads()}});
    } else {
      std::printf(fmt, name.c_str(), model.weight_bytes() / 1048576.0, model.parameter_count() / 1e6, "CPU",
                  backend::cpu::num_threads(), test.c_str(), s.mean, s.sd);
      std::fflush(stdout);
    }
  }
  if (args.flag("--json"))
    std::cout << nlohmann::json{{"model", model.files().path}, {"results", results}}.dump(2) << "\n";
  return 0;
}

}  // namespace skv::cli
