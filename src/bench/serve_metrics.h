#pragma once
// The serving benchmark's figures with `vllm bench serve`'s definitions (vllm/benchmarks/serve.py,
// calculate_metrics), so numbers measured here and there compare directly:
//   TTFT  send -> the first chunk that carries choices (a token)
//   ITL   the gaps between successive such chunks (several tokens in one chunk count as one gap)
//   TPOT  (E2EL - TTFT) / (output tokens - 1), only for requests with more than one output token
//   E2EL  send -> the last chunk that carries choices
// Statistics as numpy computes them: mean, median, population std (ddof 0) and percentiles by
// linear interpolation; an empty sample gives 0 for each, as vLLM's `np.mean(x or 0)` does.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace skv::bench {

// One request as the client saw it. Times in seconds.
struct RequestOutput {
  bool success = false;
  std::string error;      // why it failed; empty on success
  int http_status = 0;    // 0: no response (connection failed)
  double start_time = 0;  // when it was sent, from the start of the run
  double ttft = 0;        // from start_time
  double latency = 0;     // E2EL, from start_time
  std::vector<double> itl;
  int64_t prompt_len = 0;  // the usage's prompt_tokens if the server sent one, else the data set's
  // The usage's completion_tokens; resolve_output_tokens() fills it from the text when absent.
  std::optional<int64_t> output_tokens;
  std::string generated_text;
};

// Service-level objectives for goodput, in milliseconds; a request is good when it meets all.
struct Slo {
  std::optional<double> ttft_ms, tpot_ms, e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
};

// Statistics of one metric, in milliseconds.
struct Summary {
  double mean = 0, median = 0, std = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value)
};

struct Metrics {
  int64_t completed = 0, failed = 0, good = 0;
  int64_t total_input = 0, total_output = 0;
  double duration = 0;
  double request_throughput = 0, request_goodput = 0, output_throughput = 0, total_token_throughput = 0;
  Summary ttft, tpot, itl, e2el;
  std::vector<int64_t> output_lens;  // per request, 0 for failed ones
};

// numpy.percentile(values, p) with its default (linear) interpolation; 0 for an empty sample.
double percentile(std::vector<double> values, double p);
// values in seconds -> statistics in milliseconds.
Summary summarise(const std::vector<double>& seconds, const std::vector<double>& percentiles);

// Fills output_tokens of the successful outputs as vLLM does: the usage's completion_tokens when
// non-zero, else the generated text's tokens under `count` (when given), else the usage's 0. A
// request with neither usage nor `count` becomes a failure that says so, rather than a guess.
void resolve_output_tokens(std::vector<RequestOutput>& outputs,
                           const std::function<int64_t(const std::string&)>& count);

// Requires output_tokens on every successful output (see resolve_output_tokens).
Metrics calculate_metrics(const std::vector<RequestOutput>& outputs, double duration,
                          const std::vector<double>& percentiles, const Slo& slo);

// "ttft:500 tpot:50" items (vLLM's --goodput KEY:MS pairs) -> Slo; throws naming a bad item.
Slo parse_goodput(const std::vector<std::string>& items);
// "ttft,tpot,itl" -> the list, each checked against ttft / tpot / itl / e2el.
std::vector<std::string> parse_metric_names(const std::string& list);
// "25,50,99" -> percentiles, each in [0, 100].
std::vector<double> parse_percentiles(const std::string& list);

// How Python prints a float (repr): "inf", "2.0", "0.25", "99.9"; vLLM's file names and its
// "P99.9" labels are made that way.
std::string py_float(double x);
// "99" for 99.0, else py_float: the key vLLM writes (p99_ttft_ms, p99.9_ttft_ms).
std::string percentile_word(double p);

}  // namespace skv::bench
