#include "bench/serve_metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "core/error.h"

namespace skv::bench {

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(values.size() - 1, static_cast<size_t>(std::ceil(rank)));
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

Summary summarise(const std::vector<double>& seconds, const std::vector<double>& percentiles) {
  Summary s;
  if (!seconds.empty()) {
    const double n = static_cast<double>(seconds.size());
    s.mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / n;
    double ss = 0;
    for (double x : seconds) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / n) * 1000;
    s.mean *= 1000;
    s.median = percentile(seconds, 50) * 1000;
  }
  for (double p : percentiles) s.percentiles.emplace_back(p, percentile(seconds, p) * 1000);
  return s;
}

void resolve_output_tokens(std::vector<RequestOutput>& outputs,
                           const std::function<int64_t(const std::string&)>& count) {
  for (RequestOutput& o : outputs) {
    if (!o.success || (o.output_tokens && *o.output_tokens > 0)) continue;
    if (count) {
      o.output_tokens = count(o.generated_text);
    } else if (!o.output_tokens) {
      o.success = false;
      o.error = "the stream carried no usage and there is no --tokenizer to count the output tokens";
    }
  }
}

Metrics calculate_metrics(const std::vector<RequestOutput>& outputs, double duration,
                          const std::vector<double>& percentiles, const Slo& slo) {
  Metrics m;
  m.duration = duration;
  std::vector<double> ttfts, tpots, itls, e2els;
  for (const RequestOutput& o : outputs) {
    if (!o.success) {
      ++m.failed;
      m.output_lens.push_back(0);
      continue;
    }
    if (!o.output_tokens) fail_internal("bench serve: a successful request has no output token count");
    const int64_t out = *o.output_tokens;
    m.output_lens.push_back(out);
    m.total_input += o.prompt_len;
    // vLLM counts a one-token answer's TPOT as 0 for goodput and leaves it out of the statistics.
    double tpot = 0;
    if (out > 1) {
      tpot = (o.latency - o.ttft) / static_cast<double>(out - 1);
      tpots.push_back(tpot);
    }
    itls.insert(itls.end(), o.itl.begin(), o.itl.end());
    ttfts.push_back(o.ttft);
    e2els.push_back(o.latency);
    ++m.completed;
    const bool good = (!slo.ttft_ms || o.ttft * 1000 <= *slo.ttft_ms) &&
                      (!slo.tpot_ms || tpot * 1000 <= *slo.tpot_ms) &&
                      (!slo.e2el_ms || o.latency * 1000 <= *slo.e2el_ms);
    if (!slo.empty() && good) ++m.good;
  }
  for (int64_t n : m.output_lens) m.total_output += n;
  if (duration > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration;
    m.request_goodput = static_cast<double>(m.good) / duration;
    m.output_throughput = static_cast<double>(m.total_output) / duration;
    m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / duration;
  }
  m.ttft = summarise(ttfts, percentiles);
  m.tpot = summarise(tpots, percentiles);
  m.itl = summarise(itls, percentiles);
  m.e2el = summarise(e2els, percentiles);
  return m;
}

namespace {

double parse_number(const std::string& s, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    fail(what, ": ", quote_bounded(s), " is not a number");
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t next = s.find(sep, pos);
    out.push_back(s.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) return out;
    pos = next + 1;
  }
}

}  // namespace

Slo parse_goodput(const std::vector<std::string>& items) {
  Slo slo;
  if (items.empty()) fail("--goodput needs KEY:MS pairs, e.g. --goodput ttft:500 tpot:50");
  for (const std::string& item : items) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos || item.find(':', colon + 1) != std::string::npos)
      fail("--goodput: ", quote_bounded(item), " is not KEY:VALUE (a metric name and milliseconds, e.g. ttft:500)");
    const std::string key = item.substr(0, colon);
    const double ms = parse_number(item.substr(colon + 1), "--goodput " + key);
    if (ms < 0) fail("--goodput: ", key, " must be non-negative, got ", item.substr(colon + 1));
    if (key == "ttft")
      slo.ttft_ms = ms;
    else if (key == "tpot")
      slo.tpot_ms = ms;
    else if (key == "e2el")
      slo.e2el_ms = ms;
    else
      fail("--goodput: unknown metric ", quote_bounded(key), " (one of ttft, tpot, e2el)");
  }
  return slo;
}

std::vector<std::string> parse_metric_names(const std::string& list) {
  std::vector<std::string> out;
  for (const std::string& name : split(list, ',')) {
    if (name != "ttft" && name != "tpot" && name != "itl" && name != "e2el")
      fail("--percentile-metrics: unknown metric ", quote_bounded(name), " (any of ttft, tpot, itl, e2el)");
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

std::vector<double> parse_percentiles(const std::string& list) {
  std::vector<double> out;
  for (const std::string& item : split(list, ',')) {
    const double p = parse_number(item, "--metric-percentiles");
    if (p < 0 || p > 100) fail("--metric-percentiles: ", item, " is outside [0, 100]");
    out.push_back(p);
  }
  return out;
}

std::string py_float(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (std::isnan(x)) return "nan";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string percentile_word(double p) {
  if (p == std::floor(p) && std::fabs(p) < 1e15) return std::to_string(static_cast<int64_t>(p));
  return py_float(p);
}

}  // namespace skv::bench
