#include "cli/bench_swiftkv.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "backend/cpu/threads.h"
#include "backend/ops.h"
#include "cli/bench_util.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/llama.h"
#include "model/swiftkv.h"

namespace skv::cli {
namespace {

struct Variant {
  std::string label;
  std::unique_ptr<model::LlamaModel> model;
};

// The baseline is always the teacher path of the same weights, so every ratio compares the
// same model run two ways.
std::vector<Variant> make_variants(const std::string& path, const std::vector<double>& fractions, int64_t group) {
  std::vector<Variant> v;
  io::ModelFiles files = io::open_model_files(path);
  const io::ModelConfig c = files.config;
  const bool is_swiftkv = c.swiftkv_checkpoint;
  if (is_swiftkv && !fractions.empty())
    fail("--swiftkv-fractions: ", path, " is already a SwiftKV model; it is compared with its own teacher path");
  v.push_back({"baseline",
               std::make_unique<model::LlamaModel>(io::open_model_files(path), model::ModelOptions{.swiftkv = false})});
  if (is_swiftkv) {
    if (!c.swiftkv) fail(path, ": config has swiftkv = false; nothing to compare");
    v.push_back(
        {"SwiftKV M=" + std::to_string(c.num_key_value_layers), std::make_unique<model::LlamaModel>(std::move(files))});
    return v;
  }
  for (double f : fractions) {
    const int64_t m = model::num_key_value_layers_for_fraction(c.num_layers, f);
    io::ModelFiles fm = io::open_model_files(path);
    model::add_swiftkv_tensors(fm, m, group);
    char label[64];
    std::snprintf(label, sizeof label, "SwiftKV %g%% M=%lld", f * 100, static_cast<long long>(m));
    v.push_back({label, std::make_unique<model::LlamaModel>(std::move(fm))});
  }
  return v;
}

}  // namespace

int bench_swiftkv_compare(const Args& args) {
  const std::vector<int32_t> prompts = parse_id_list(args.str("--n-prompt", "512,1024,2048"), "--n-prompt");
  const int64_t n_gen = args.integer("--n-gen", 64);
  const int64_t reps = args.integer("--repetitions", 3);
  const int64_t batch = args.integer("--batch-size", 512);
  const int64_t group = args.integer("--key-value-group-size", 1);
  if (n_gen < 0 || reps < 1 || batch < 1) fail("-n must be >= 0, -r >= 1 and -b >= 1");
  for (int32_t p : prompts)
    if (p < 1) fail("--n-prompt: prompt lengths must be >= 1");
  std::vector<double> fractions;
  if (args.has("--swiftkv-fractions") || args.has("--swiftkv-fraction"))
    fractions =
        parse_real_list(args.required(args.has("--swiftkv-fractions") ? "--swiftkv-fractions" : "--swiftkv-fraction"),
                        "--swiftkv-fractions");
  const std::string path = args.required("--model");
  const int threads = static_cast<int>(args.integer("--threads", 0));
  if (threads < 0) fail("--threads must be >= 0 (0 = all cores), got ", threads);
  backend::cpu::set_num_threads(threads);
  if (fractions.empty() && !io::open_model_files(path).config.swiftkv_checkpoint) fractions = {0.25, 0.5};
  std::vector<Variant> variants = make_variants(path, fractions, group);
  const io::ModelConfig& c = variants.front().model->config();
  const int64_t max_p = *std::max_element(prompts.begin(), prompts.end());
  if (max_p + n_gen > c.max_position_embeddings)
    fail_resource("prompt ", max_p, " + ", n_gen, " generated tokens exceed the model's ", c.max_position_embeddings,
                  " positions");
  const std::vector<int32_t> ids = random_prompt(max_p + n_gen, c.vocab_size);

  // One timed request per (variant, prompt) on the engine core: prefill in -b chunks (logits for
  // the last token only, as generation does), then n_gen greedy decode steps on the same cache.
  struct Sample {
    std::vector<double> prefill_s, decode_tps;
    double flops = 0;
  };
  std::vector<std::vector<Sample>> samples(variants.size(), std::vector<Sample>(prompts.size()));
  auto run = [&](size_t vi, size_t pi, bool record) {
    model::LlamaModel& model = *variants[vi].model;
    const int64_t p = prompts[pi];
    engine::EngineOptions eo;
    eo.max_num_seqs = 1;
    eo.max_num_batched_tokens = batch;
    eo.enable_prefix_caching = false;
    eo.num_kv_blocks = (p + n_gen + 1 + eo.block_size - 1) / eo.block_size;
    eo.max_model_len = eo.num_kv_blocks * eo.block_size;
    engine::Engine eng(model, nullptr, eo);
    engine::Request r;
    r.prompt.assign(ids.begin(), ids.begin() + p);
    r.max_tokens = n_gen + 1;  // the prompt's token, then one per decode step
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.detokenize = false;
    double t0 = now_seconds(), prefill = 0, flops = 0;
    eng.add(r);
    bool first = true;
    while (eng.has_work()) {
      eng.step();
      if (first && eng.counters().prompt_rows >= p) {  // the prompt's last step drew the first token
        first = false;
        prefill = now_seconds() - t0;
        flops = eng.flops().total();
        t0 = now_seconds();
      }
    }
    const double decode = now_seconds() - t0;
    if (!record) return;
    Sample& s = samples[vi][pi];
    s.prefill_s.push_back(prefill);
    if (n_gen > 0) s.decode_tps.push_back(n_gen / decode);
    s.flops = flops;
  };
  const bool progress = isatty(fileno(stderr));
  for (size_t vi = 0; vi < variants.size(); ++vi) run(vi, 0, false);  // warm-up
  // Interleave variants within each repetition so drifting machine load hits all alike.
  for (int64_t r = 0; r < reps; ++r)
    for (size_t pi = 0; pi < prompts.size(); ++pi)
      for (size_t vi = 0; vi < variants.size(); ++vi) {
        run(vi, pi, true);
        if (progress)
          std::fprintf(stderr, "\rbench: repetition %lld/%lld, prompt %d, %s          ", (long long)r + 1,
                       (long long)reps, prompts[pi], variants[vi].label.c_str());
      }
  if (progress) std::fprintf(stderr, "\r%80s\r", "");

  nlohmann::json rows = nlohmann::json::array();
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const Sample& base = samples[0][pi];
    const Stat bp = stats(base.prefill_s), bd = stats(base.decode_tps);
    for (size_t vi = 0; vi < variants.size(); ++vi) {
      const Sample& s = samples[vi][pi];
      const Stat sp = stats(s.prefill_s), sd = stats(s.decode_tps);
      const model::KVLayout& layout = variants[vi].model->kv_layout();
      rows.push_back({{"prompt_tokens", prompts[pi]},
                      {"variant", variants[vi].label},
                      {"num_key_value_layers", layout.first_skip},
                      {"kv_cache_layers", layout.cache_layers()},
                      {"prefill_gflop", s.flops / 1e9},
                      {"flop_ratio", base.flops / s.flops},
                      {"prefill_seconds", sp.mean},
                      {"prefill_seconds_sd", sp.sd},
                      {"prefill_speedup", bp.mean / sp.mean},
                      {"prefill_tokens_per_second", prompts[pi] / sp.mean},
                      {"decode_tokens_per_second", sd.mean},
                      {"decode_tokens_per_second_sd", sd.sd},
                      {"decode_ratio", n_gen > 0 ? sd.mean / bd.mean : 0.0},
                      {"prefill_samples", s.prefill_s},
                      {"decode_samples", s.decode_tps}});
    }
  }
  if (args.flag("--json")) {
    std::cout << nlohmann::json{{"model", path},       {"threads", backend::cpu::num_threads()},
                                {"batch_size", batch}, {"n_gen", n_gen},
                                {"repetitions", reps}, {"results", rows}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("model %s, %d threads, -b %lld, %lld repetitions, decode %lld tokens after each prompt\n\n",
              base_name(path).c_str(), backend::cpu::num_threads(), (long long)batch, (long long)reps,
              (long long)n_gen);
  std::printf(
      "| prompt | path | KV layers | prefill GFLOP | FLOP ratio | prefill s | prefill t/s | speed-up | "
      "decode t/s | decode vs base |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    std::printf("| %lld | %s | %lld | %.2f | %.3fx | %.3f ± %.3f | %.1f | **%.3fx** | %.2f ± %.2f | %+.1f%% |\n",
                r["prompt_tokens"].get<long long>(), r["variant"].get<std::string>().c_str(),
                r["kv_cache_layers"].get<long long>(), r["prefill_gflop"].get<double>(), r["flop_ratio"].get<double>(),
                r["prefill_seconds"].get<double>(), r["prefill_seconds_sd"].get<double>(),
                r["prefill_tokens_per_second"].get<double>(), r["prefill_speedup"].get<double>(),
                r["decode_tokens_per_second"].get<double>(), r["decode_tokens_per_second_sd"].get<double>(),
                (r["decode_ratio"].get<double>() - 1) * 100);
  }
  return 0;
}

}  // namespace skv::cli
