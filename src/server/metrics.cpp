#include "server/metrics.h"

#include <cstdio>
#include <sstream>

namespace skv::server {
namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// vLLM's buckets for these histograms (seconds).
const std::vector<double> kTtft = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
                                   0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
const std::vector<double> kItl = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0};
const std::vector<double> kLatency = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0};

void header(std::ostringstream& o, const std::string& name, const char* type, const char* help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

}  // namespace

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

std::string Histogram::text(const std::string& name, const std::string& labels) const {
  std::ostringstream o;
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    o << name << "_bucket{" << labels << ",le=\"" << num(bounds_[i]) << "\"} " << cum << "\n";
  }
  o << name << "_bucket{" << labels << ",le=\"+Inf\"} " << count_ << "\n";
  o << name << "_sum{" << labels << "} " << num(sum_) << "\n";
  o << name << "_count{" << labels << "} " << count_ << "\n";
  return o.str();
}

Metrics::Metrics(std::string model_name)
    : model_(std::move(model_name)), ttft_(kTtft), itl_(kItl), e2e_(kLatency), queue_(kLatency) {
  std::string escaped;
  for (char c : model_) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  labels_ = "model_name=\"" + escaped + "\"";
}

void Metrics::finished(const std::string& reason, int64_t prompt_tokens, int64_t generation_tokens, double queue_s,
                       double ttft_s, double e2e_s) {
  std::lock_guard<std::mutex> lock(mu_);
  prompt_tokens_ += prompt_tokens;
  generation_tokens_ += generation_tokens;
  ++success_[reason];
  if (queue_s >= 0) queue_.observe(queue_s);
  if (ttft_s >= 0) ttft_.observe(ttft_s);
  if (e2e_s >= 0) e2e_.observe(e2e_s);
}

void Metrics::inter_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  itl_.observe(seconds);
}

std::string Metrics::text(const engine::LoopStats& s) const {
  std::ostringstream o;
  auto gauge = [&](const char* n, const char* help, double v) {
    const std::string name = std::string("swiftkv:") + n;
    header(o, name, "gauge", help);
    o << name << "{" << labels_ << "} " << num(v) << "\n";
  };
  auto counter = [&](const char* n, const char* help, double v) {
    const std::string name = std::string("swiftkv:") + n;
    header(o, name, "counter", help);
    o << name << "{" << labels_ << "} " << num(v) << "\n";
  };
  gauge("num_requests_running", "Requests in the engine's running batch.", static_cast<double>(s.running));
  gauge("num_requests_waiting", "Requests waiting to be scheduled (including those not yet picked up).",
        static_cast<double>(s.waiting + s.queued));
  gauge("kv_cache_usage_perc", "Fraction of KV-cache blocks in use (1 = full).",
        s.kv_blocks > 0 ? 1.0 - static_cast<double>(s.kv_blocks_free) / static_cast<double>(s.kv_blocks) : 0.0);
  counter("prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
          static_cast<double>(s.counters.prefix_queried_tokens));
  counter("prefix_cache_hits_total", "Prompt tokens found in the prefix cache.",
          static_cast<double>(s.counters.prefix_hit_tokens));
  counter("num_preemptions_total", "Requests preempted (blocks freed, recomputed later).",
          static_cast<double>(s.counters.preemptions));
  counter("early_layer_rows_total", "Rows (tokens) computed through the layers below SwiftKV's M (every row).",
          static_cast<double>(s.counters.early_rows));
  counter("late_layer_rows_total",
          "Rows computed through layers M and above (with SwiftKV only rows whose logits are read).",
          static_cast<double>(s.counters.late_rows));
  std::lock_guard<std::mutex> lock(mu_);
  counter("prompt_tokens_total", "Prompt tokens of finished requests.", static_cast<double>(prompt_tokens_));
  counter("generation_tokens_total", "Generated tokens of finished requests.", static_cast<double>(generation_tokens_));
  header(o, "swiftkv:request_success_total", "counter", "Finished requests by finish reason.");
  for (const char* r : {"stop", "length", "abort"}) {
    auto it = success_.find(r);
    o << "swiftkv:request_success_total{" << labels_ << ",finished_reason=\"" << r << "\"} "
      << (it == success_.end() ? 0 : it->second) << "\n";
  }
  header(o, "swiftkv:time_to_first_token_seconds", "histogram", "Time to first token.");
  o << ttft_.text("swiftkv:time_to_first_token_seconds", labels_);
  header(o, "swiftkv:inter_token_latency_seconds", "histogram", "Time between streamed tokens.");
  o << itl_.text("swiftkv:inter_token_latency_seconds", labels_);
  header(o, "swiftkv:e2e_request_latency_seconds", "histogram", "Arrival to last token.");
  o << e2e_.text("swiftkv:e2e_request_latency_seconds", labels_);
  header(o, "swiftkv:request_queue_time_seconds", "histogram", "Arrival to first scheduled.");
  o << queue_.text("swiftkv:request_queue_time_seconds", labels_);
  return o.str();
}

}  // namespace skv::server
