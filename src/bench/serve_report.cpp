#include "bench/serve_report.h"

#include <cmath>
#include <cstdio>
#include <fstream>

namespace skv::bench {
namespace {

// Python's "{:<40} {:<10}" rows and "{s:{c}^{n}}" headings, so the table reads as vLLM's.
std::string row(const std::string& label, const std::string& value) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-40s %-10s\n", label.c_str(), value.c_str());
  return buf;
}

std::string fixed2(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return buf;
}

std::string heading(const std::string& title, char fill) {
  const size_t width = 50;
  if (title.size() >= width) return title + "\n";
  const size_t pad = width - title.size(), left = pad / 2;
  return std::string(left, fill) + title + std::string(pad - left, fill) + "\n";
}

struct MetricName {
  const char* key;
  const char* name;
  const char* header;
  const Summary Metrics::*summary;
};

const MetricName kMetrics[] = {
    {"ttft", "TTFT", "Time to First Token", &Metrics::ttft},
    {"tpot", "TPOT", "Time per Output Token (excl. 1st token)", &Metrics::tpot},
    {"itl", "ITL", "Inter-token Latency", &Metrics::itl},
    {"e2el", "E2EL", "End-to-end Latency", &Metrics::e2el},
};

}  // namespace

double normalised_flops(const Metrics& m, int64_t parameters) {
  return m.total_token_throughput * 2.0 * static_cast<double>(parameters);
}

std::string format_table(const Metrics& m, const RunInfo& info) {
  std::string s = heading(" Serving Benchmark Result ", '=');
  s += row("Successful requests:", std::to_string(m.completed));
  s += row("Failed requests:", std::to_string(m.failed));
  if (info.max_concurrency > 0) s += row("Maximum request concurrency:", std::to_string(info.max_concurrency));
  if (!std::isinf(info.request_rate)) s += row("Request rate configured (RPS):", fixed2(info.request_rate));
  s += row("Benchmark duration (s):", fixed2(m.duration));
  s += row("Total input tokens:", std::to_string(m.total_input));
  s += row("Total generated tokens:", std::to_string(m.total_output));
  s += row("Request throughput (req/s):", fixed2(m.request_throughput));
  if (!info.slo.empty()) s += row("Request goodput (req/s):", fixed2(m.request_goodput));
  s += row("Output token throughput (tok/s):", fixed2(m.output_throughput));
  s += row("Total Token throughput (tok/s):", fixed2(m.total_token_throughput));
  if (info.parameters) {
    s += row("Model parameters:", std::to_string(*info.parameters));
    s += row("Normalised throughput (GFLOP/s):", fixed2(normalised_flops(m, *info.parameters) / 1e9));
  }
  for (const MetricName& k : kMetrics) {
    bool shown = false;
    for (const std::string& name : info.percentile_metrics) shown = shown || name == k.key;
    if (!shown) continue;
    const Summary& v = m.*k.summary;
    s += heading(k.header, '-');
    s += row(std::string("Mean ") + k.name + " (ms):", fixed2(v.mean));
    s += row(std::string("Median ") + k.name + " (ms):", fixed2(v.median));
    for (const auto& [p, value] : v.percentiles)
      s += row(std::string("P").append(percentile_word(p)) + " " + k.name + " (ms):", fixed2(value));
  }
  s += std::string(50, '=') + "\n";
  return s;
}

nlohmann::json result_json(const Metrics& m, const std::vector<RequestOutput>& outputs, const RunInfo& info) {
  using Json = nlohmann::json;
  Json j;
  j["date"] = info.date;
  j["backend"] = info.backend;
  j["label"] = info.label.empty() ? info.backend : info.label;
  j["model_id"] = info.model_id;
  j["tokenizer_id"] = info.tokenizer_id ? Json(*info.tokenizer_id) : Json(nullptr);
  j["num_prompts"] = info.num_prompts;
  j["request_rate"] = std::isinf(info.request_rate) ? Json("inf") : Json(info.request_rate);
  j["burstiness"] = info.burstiness;
  j["max_concurrency"] = info.max_concurrency > 0 ? Json(info.max_concurrency) : Json(nullptr);
  j["duration"] = m.duration;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] = info.slo.empty() ? Json(nullptr) : Json(m.request_goodput);
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  Json input_lens = Json::array(), ttfts = Json::array(), itls = Json::array(), latencies = Json::array(),
       start_times = Json::array(), errors = Json::array(), texts = Json::array();
  for (const RequestOutput& o : outputs) {
    input_lens.push_back(o.prompt_len);
    ttfts.push_back(o.ttft);
    itls.push_back(o.itl);
    latencies.push_back(o.latency);
    start_times.push_back(o.start_time);
    errors.push_back(o.error);
    texts.push_back(o.generated_text);
  }
  j["input_lens"] = input_lens;
  j["output_lens"] = m.output_lens;
  j["ttfts"] = ttfts;
  j["itls"] = itls;
  j["latencies"] = latencies;
  j["start_times"] = start_times;
  j["errors"] = errors;
  if (info.save_detailed) j["generated_texts"] = texts;
  for (const MetricName& k : kMetrics) {
    const Summary& v = m.*k.summary;
    const std::string suffix = std::string(k.key) + "_ms";
    j["mean_" + suffix] = v.mean;
    j["median_" + suffix] = v.median;
    j["std_" + suffix] = v.std;
    for (const auto& [p, value] : v.percentiles) j[std::string("p").append(percentile_word(p)) + "_" + suffix] = value;
  }
  j["percentile_metrics"] = info.percentile_metrics;
  j["metric_percentiles"] = info.percentiles;
  Json goodput = Json::object();
  if (info.slo.ttft_ms) goodput["ttft"] = *info.slo.ttft_ms;
  if (info.slo.tpot_ms) goodput["tpot"] = *info.slo.tpot_ms;
  if (info.slo.e2el_ms) goodput["e2el"] = *info.slo.e2el_ms;
  j["goodput_slo_ms"] = goodput;
  j["parameters"] = info.parameters ? Json(*info.parameters) : Json(nullptr);
  j["normalised_flops_per_s"] = info.parameters ? Json(normalised_flops(m, *info.parameters)) : Json(nullptr);
  j["cpu_model"] = info.cpu_model;
  return j;
}

std::string default_result_filename(const RunInfo& info) {
  std::string model = info.model_id;
  if (const size_t slash = model.find_last_of('/'); slash != std::string::npos) model = model.substr(slash + 1);
  const std::string concurrency = info.max_concurrency > 0 ? "-concurrency" + std::to_string(info.max_concurrency) : "";
  const std::string label = info.label.empty() ? info.backend : info.label;
  return label + "-" + py_float(info.request_rate) + "qps" + concurrency + "-" + model + "-" + info.date + ".json";
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return "";
}

}  // namespace skv::bench
