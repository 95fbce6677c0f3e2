#pragma once
// The serving benchmark's result: vLLM's table on stdout and its result JSON (the keys
// `vllm bench serve --save-result` writes), plus the parameter-normalised throughput of the
// SwiftKV paper and the machine's CPU.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/serve_metrics.h"

namespace skv::bench {

struct RunInfo {
  std::string backend = "openai";  // openai (completions) or openai-chat
  std::string label;               // the file name's prefix; default the backend
  std::string model_id;
  std::optional<std::string> tokenizer_id;
  int64_t num_prompts = 0;
  double request_rate = 0;  // inf: all at once
  double burstiness = 1.0;
  int64_t max_concurrency = 0;                  // 0: none
  std::vector<std::string> percentile_metrics;  // printed ones: of ttft, tpot, itl, e2el
  std::vector<double> percentiles;
  Slo slo;
  std::optional<int64_t> parameters;  // for the normalised figure
  std::string cpu_model;
  std::string date;            // %Y%m%d-%H%M%S, local time
  bool save_detailed = false;  // also the generated texts
};

// (input + output tokens/s) x 2 x parameters: the FLOP/s the unmodified model would need for
// that throughput (the paper's "TFLOPs/GPU" figure, on one device).
double normalised_flops(const Metrics& m, int64_t parameters);

// vLLM's "Serving Benchmark Result" table.
std::string format_table(const Metrics& m, const RunInfo& info);

// vLLM's result keys (date, backend, model_id, ..., mean_/median_/std_/pP_ x ttft/tpot/itl/e2el
// in ms; ttfts, itls, latencies, start_times in seconds) plus ours: percentile metrics, the
// parameter count and normalised FLOP/s, cpu_model.
nlohmann::json result_json(const Metrics& m, const std::vector<RequestOutput>& outputs, const RunInfo& info);

// vLLM's default file name: {label}-{rate}qps[-concurrency{N}]-{model's last path part}-{date}.json
std::string default_result_filename(const RunInfo& info);

// /proc/cpuinfo's first "model name", or "" where there is none.
std::string cpu_model_name();

}  // namespace skv::bench
