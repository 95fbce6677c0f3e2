#pragma once
// The server's Prometheus metrics: vLLM's names under the `swiftkv:` prefix, plus the rows that
// ran through SwiftKV's early and later layers. Counters and histograms are updated by the
// connection threads as requests finish; gauges are read from the engine loop's snapshot when
// /metrics is scraped.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine_loop.h"

namespace skv::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v);
  // Prometheus text of `name{labels,le=...}` buckets, _sum and _count (labels without braces).
  std::string text(const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  explicit Metrics(std::string model_name);

  // One finished sample of a request (times in seconds on the engine's clock).
  void finished(const std::string& reason, int64_t prompt_tokens, int64_t generation_tokens, double queue_s,
                double ttft_s, double e2e_s);
  void inter_token(double seconds);  // gap between two streamed tokens of one sample
  // The Prometheus exposition text, with the loop's gauges at this moment.
  std::string text(const engine::LoopStats& s) const;

 private:
  std::string model_, labels_;
  mutable std::mutex mu_;
  int64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  std::map<std::string, int64_t> success_;  // by finished_reason
  Histogram ttft_, itl_, e2e_, queue_;
};

}  // namespace skv::server
