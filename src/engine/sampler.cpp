#include "engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>

#include "core/error.h"

namespace skv::engine {

void SamplingParams::validate() const {
  // Written as !(ok) so that NaN, which fails every comparison, is rejected too.
  if (!(temperature >= 0.0f) || std::isinf(temperature))
    fail("temperature must be a finite value >= 0, got ", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("min_p must be in [0, 1], got ", min_p);
  if (top_k < -1) fail("top_k must be >= 0 (or -1 to disable), got ", top_k);
  if (!(repetition_penalty > 0.0f) || std::isinf(repetition_penalty))
    fail("repetition_penalty must be a finite value > 0, got ", repetition_penalty);
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    fail("presence_penalty must be in [-2, 2], got ", presence_penalty);
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    fail("frequency_penalty must be in [-2, 2], got ", frequency_penalty);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0) fail("logit_bias token id must be >= 0, got ", id);
    if (std::isnan(bias)) fail("logit_bias for token ", id, " is NaN");  // -inf is allowed: bans
  }
}

static uint64_t random_seed() {
  std::random_device rd;  // yields 32 bits per call
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

Sampler::Sampler(const SamplingParams& params) : p_(params) {
  p_.validate();
  rng_.seed(p_.has_seed ? p_.seed : random_seed());
}

static void check_ids(const std::vector<int32_t>& ids, int64_t vocab, const char* what) {
  for (int32_t t : ids)
    if (t < 0 || t >= vocab) fail("sampler: ", what, " token id ", t, " outside vocab of ", vocab);
}

// Draws index i with probability get(i).first / total and returns get(i).second. The weights
// need no normalisation. 53 random bits give u in [0, 1) with fixed arithmetic, so one seed
// gives the same draws on every platform (unlike std::uniform_real_distribution).
template <class Get>
static int32_t draw(std::mt19937_64& rng, int64_t n, Get get) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += get(i).first;
  double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total, cum = 0;
  int32_t last = -1;
  for (int64_t i = 0; i < n; ++i) {
    auto [w, id] = get(i);
    if (w <= 0.0f) continue;
    cum += w;
    last = id;
    if (u < cum) return id;
  }
  return last;  // u landed past the end through rounding
}

int32_t Sampler::sample(float* logits, int64_t vocab, const std::vector<int32_t>& prompt,
                        const std::vector<int32_t>& generated) {
  if (vocab <= 0) fail_internal("sampler: vocab size must be positive, got ", vocab);
  check_ids(prompt, vocab, "prompt");
  check_ids(generated, vocab, "generated");

  for (const auto& [id, bias] : p_.logit_bias) {
    if (id >= vocab) fail("logit_bias token id ", id, " outside vocab of ", vocab);
    logits[id] += bias;
  }

  // Repetition penalty (HF / vLLM): once per distinct token of prompt + generated. Dividing a
  // positive logit and multiplying a negative one both make the token less likely for p > 1.
  if (p_.repetition_penalty != 1.0f) {
    toks_.assign(prompt.begin(), prompt.end());
    toks_.insert(toks_.end(), generated.begin(), generated.end());
    std::sort(toks_.begin(), toks_.end());
    toks_.erase(std::unique(toks_.begin(), toks_.end()), toks_.end());
    for (int32_t t : toks_)
      logits[t] = logits[t] > 0 ? logits[t] / p_.repetition_penalty : logits[t] * p_.repetition_penalty;
  }

  // Frequency / presence penalties (OpenAI): generated tokens only; count runs in a sorted copy.
  if (p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f) {
    toks_.assign(generated.begin(), generated.end());
    std::sort(toks_.begin(), toks_.end());
    for (size_t i = 0; i < toks_.size();) {
      size_t j = i;
      while (j < toks_.size() && toks_[j] == toks_[i]) ++j;
      logits[toks_[i]] -= p_.frequency_penalty * static_cast<float>(j - i) + p_.presence_penalty;
      i = j;
    }
  }

  // Greedy: first maximum, so ties go to the lowest id. NaN never compares greater.
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best] || std::isnan(logits[best])) best = i;
  if (p_.temperature == 0.0f || p_.top_k == 1) return static_cast<int32_t>(best);

  const float mx = logits[best];
  if (std::isinf(mx) && mx > 0) return static_cast<int32_t>(best);  // +inf dominates everything
  if (!std::isfinite(mx)) fail("sampler: every logit is -inf or NaN (all tokens banned?)");

  // Unnormalised softmax of logits / T; subtracting the max first keeps a tiny T from
  // overflowing. The top token has weight exactly 1, which min-p relies on below.
  probs_.resize(vocab);
  const float inv_t = 1.0f / p_.temperature;
  for (int64_t i = 0; i < vocab; ++i) {
    float w = std::exp((logits[i] - mx) * inv_t);
    probs_[i] = w > 0.0f ? w : 0.0f;  // NaN logits get weight 0
  }
  const float min_w = p_.min_p;  // min_p * max weight, and the max weight is 1

  const bool use_k = p_.top_k > 0 && p_.top_k < vocab;
  const bool use_p = p_.top_p < 1.0f;
  if (!use_k && !use_p) {
    // Fast path, no ordering needed: min-p only zeroes weights below the threshold.
    return draw(rng_, vocab, [&](int64_t i) {
      return std::pair{probs_[i] >= min_w ? probs_[i] : 0.0f, static_cast<int32_t>(i)};
    });
  }

  // Candidates as integer keys: larger key = larger weight, ties to the lower id (so draws are
  // deterministic for a seed). Non-negative floats order like their bit patterns. Zero
  // weights are left out: they add no mass and can never be drawn.
  keys_.clear();
  for (int64_t i = 0; i < vocab; ++i)
    if (probs_[i] > 0.0f)
      keys_.push_back(uint64_t{std::bit_cast<uint32_t>(probs_[i])} << 32 | ~static_cast<uint32_t>(i));
  auto weight = [](uint64_t k) { return std::bit_cast<float>(static_cast<uint32_t>(k >> 32)); };
  auto mass = [&](auto b, auto e) {
    double m = 0;
    for (; b != e; ++b) m += weight(*b);
    return m;
  };
  const auto first = keys_.begin();
  auto last = keys_.end();
  if (use_k && p_.top_k < last - first) {  // O(vocab) selection; the k best need no order
    std::nth_element(first, first + p_.top_k, last, std::greater<>());
    last = first + p_.top_k;
  }

  if (use_p) {
    // Nucleus of the (top-k renormalised) distribution: keep tokens, best first, while the
    // mass before them is < top_p. Found in O(n) without a full sort by halving: split the
    // open range at its median; if the upper half does not reach the target it is all kept,
    // else the cut lies inside it. Only the final small range is sorted.
    const double target = p_.top_p * mass(first, last);
    double cum = 0;
    auto lo = first, hi = last;
    while (hi - lo > 64) {
      auto mid = lo + (hi - lo) / 2;
      std::nth_element(lo, mid, hi, std::greater<>());
      double m = mass(lo, mid);
      if (cum + m < target) {
        cum += m;
        lo = mid;
      } else {
        hi = mid;
      }
    }
    std::sort(lo, hi, std::greater<>());
    while (lo != hi && (lo == first || cum < target)) cum += weight(*lo++);
    last = lo;
  }

  // Min-p relative to the max weight (1, always among the kept tokens).
  if (min_w > 0) last = std::partition(first, last, [&](uint64_t k) { return weight(k) >= min_w; });
  return draw(rng_, last - first, [&](int64_t i) {
    return std::pair{weight(first[i]), static_cast<int32_t>(~static_cast<uint32_t>(first[i]))};
  });
}

}  // namespace skv::engine
