#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "backend/ops.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace skv::cli {
namespace {

struct Stat {
  double mean = 0, sd = 0;
};

Stat stats(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0;
  return s;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

// llama-bench semantics: pp = one batch of N prompt tokens from an empty cache; tg = N tokens
// decoded one at a time from an empty cache; each repeated -r times after one warm-up run.
int cmd_bench(int argc, char** argv) {
  Args args(argc, argv, join({kModelFlags, {"--n-prompt", "--n-gen", "--repetitions"}}), {"--help", "--json"},
            {{"-m", "--model"},
             {"-t", "--threads"},
             {"-p", "--n-prompt"},
             {"-n", "--n-gen"},
             {"-r", "--repetitions"},
             {"-b", "--batch-size"}});
  if (args.flag("--help")) {
    std::puts("usage: swiftkv bench --model PATH [-p 512] [-n 128] [-r 5] [-t N] [-b 512] [--json]");
    return 0;
  }
  const int64_t n_prompt = args.integer("--n-prompt", 512), n_gen = args.integer("--n-gen", 128);
  const int64_t reps = args.integer("--repetitions", 5);
  if (n_prompt < 0 || n_gen < 0 || reps < 1) fail("-p and -n must be >= 0 and -r >= 1");
  LoadedModel m = load_model(args, false);
  LlamaModel& model = *m.model;
  const int64_t vocab = model.config().vocab_size;
  std::mt19937 rng(42);
  std::vector<int32_t> ids(std::max<int64_t>(n_prompt, 1));
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  KVCache cache(model.config(), std::max<int64_t>(n_prompt, n_gen) + 1);

  auto run_pp = [&] {
    double t0 = now();
    for (int64_t s = 0; s < n_prompt; s += m.batch_size)
      model.forward(cache, ids.data() + s, std::min<int64_t>(m.batch_size, n_prompt - s), s, Logits::Last);
    return n_prompt / (now() - t0);
  };
  auto run_tg = [&] {
    int32_t tok = ids[0];
    double t0 = now();
    for (int64_t i = 0; i < n_gen; ++i) {
      Tensor logits = model.forward(cache, &tok, 1, i, Logits::Last);
      tok = static_cast<int32_t>(std::max_element(logits.as<float>(), logits.as<float>() + vocab) - logits.as<float>());
    }
    return n_gen / (now() - t0);
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
  std::string name = model.files().path;
  if (auto slash = name.find_last_of('/'); slash != std::string::npos && slash + 1 < name.size())
    name = name.substr(slash + 1);
  if (name.size() > 28) name = name.substr(0, 28);
  for (int which = 0; which < 2; ++which) {
    const int64_t n = which == 0 ? n_prompt : n_gen;
    if (n == 0) continue;
    auto run = which == 0 ? std::function<double()>(run_pp) : std::function<double()>(run_tg);
    run();  // warm-up
    std::vector<double> samples;
    for (int64_t r = 0; r < reps; ++r) samples.push_back(run());
    Stat s = stats(samples);
    const std::string test = (which == 0 ? "pp" : "tg") + std::to_string(n);
    if (args.flag("--json")) {
      results.push_back({{"test", test},
                         {"tokens_per_second", s.mean},
                         {"stddev", s.sd},
                         {"samples", samples},
                         {"threads", ops::num_threads()}});
    } else {
      std::printf(fmt, name.c_str(), model.weight_bytes() / 1048576.0, model.parameter_count() / 1e6, "CPU",
                  ops::num_threads(), test.c_str(), s.mean, s.sd);
      std::fflush(stdout);
    }
  }
  if (args.flag("--json"))
    std::cout << nlohmann::json{{"model", model.files().path}, {"results", results}}.dump(2) << "\n";
  return 0;
}

}  // namespace skv::cli
