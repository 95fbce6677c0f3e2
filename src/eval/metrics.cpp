#include "eval/metrics.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace skv::eval {

double mean(const std::vector<double>& xs) {
  if (xs.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double x : xs) s += x;
  return s / xs.size();
}

double mean_stderr(const std::vector<double>& xs) {
  if (xs.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  const double m = mean(xs);
  double ss = 0;
  for (double x : xs) ss += (x - m) * (x - m);
  return std::sqrt(ss / (xs.size() - 1)) / std::sqrt(static_cast<double>(xs.size()));
}

double perplexity(const std::vector<double>& lls) { return std::exp(-mean(lls)); }

double perplexity_stderr(const std::vector<double>& lls) { return perplexity(lls) * mean_stderr(lls); }

double weighted_mean(const Weighted& items) {
  double a = 0, b = 0;
  for (const auto& [x, w] : items) {
    a += x;
    b += w;
  }
  return a / b;
}

double weighted_perplexity(const Weighted& items) { return std::exp(-weighted_mean(items)); }

double bits_per_byte(const Weighted& items) { return -weighted_mean(items) / std::log(2.0); }

int64_t argmax(const std::vector<double>& xs) {
  if (xs.empty()) fail_internal("argmax of an empty list");
  int64_t best = 0;
  for (size_t i = 1; i < xs.size(); ++i)
    if (xs[i] > xs[best]) best = static_cast<int64_t>(i);
  return best;
}

int64_t utf8_length(std::string_view s) {
  int64_t n = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    bool ok = i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    i += ok ? len : 1;
    ++n;
  }
  return n;
}

int64_t argmax_normalized(const std::vector<double>& lls, const std::vector<std::string_view>& choices) {
  if (lls.size() != choices.size())
    fail_internal("acc_norm: ", lls.size(), " log-likelihoods for ", choices.size(), " choices");
  std::vector<double> norm(lls.size());
  // numpy divides by 0.0 for an empty choice: -inf / +inf / nan follow IEEE, as they do here.
  for (size_t i = 0; i < lls.size(); ++i) norm[i] = lls[i] / static_cast<double>(utf8_length(choices[i]));
  // numpy's argmax treats NaN as the maximum; an empty choice with loglik 0 would give one.
  for (size_t i = 0; i < norm.size(); ++i)
    if (std::isnan(norm[i])) return static_cast<int64_t>(i);
  return argmax(norm);
}

double mc2(const std::vector<double>& lls, const std::vector<int>& labels) {
  if (lls.size() != labels.size())
    fail_internal("mc2: ", lls.size(), " log-likelihoods for ", labels.size(), " labels");
  // Probabilities of whole answers can underflow double; scaling by the largest cancels out.
  double top = -std::numeric_limits<double>::infinity();
  for (double ll : lls) top = std::max(top, ll);
  double p_true = 0, p_all = 0;
  for (size_t i = 0; i < lls.size(); ++i) {
    const double p = std::exp(lls[i] - top);
    p_all += p;
    if (labels[i] == 1) p_true += p;
  }
  return p_true / p_all;
}

double pooled_sample_stderr(const std::vector<double>& stderrs, const std::vector<int64_t>& sizes) {
  if (stderrs.size() != sizes.size())
    fail_internal("pooled stderr: ", stderrs.size(), " stderrs for ", sizes.size(), " sizes");
  double var = 0, total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    var += (sizes[i] - 1) * stderrs[i] * stderrs[i] * sizes[i];
    total += sizes[i];
  }
  var /= total - static_cast<double>(sizes.size());
  return std::sqrt(var / total);
}

}  // namespace skv::eval
