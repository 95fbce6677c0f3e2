#include "train/adamw.h"

#include <cmath>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

namespace skv::train {

double scheduled_lr(double lr, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return lr;
  return lr * static_cast<double>(total - step) / static_cast<double>(total - warmup);
}

int64_t warmup_steps(double ratio, int64_t total) {
  if (ratio < 0 || ratio > 1) fail("--warmup-ratio must be in [0, 1], got ", ratio);
  return static_cast<int64_t>(std::ceil(ratio * static_cast<double>(total)));
}

double grad_norm(const std::vector<float>& g) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) num_threads(backend::cpu::threads_for(g.size(), 65536))
  for (size_t i = 0; i < g.size(); ++i) s += static_cast<double>(g[i]) * g[i];
  return std::sqrt(s);
}

AdamW::AdamW(int64_t size, AdamWOptions opts) : o_(opts), m_(size, 0.0f), v_(size, 0.0f) {}

void AdamW::step(std::vector<float>& params, const std::vector<float>& grads, double lr, double clip_scale) {
  if (params.size() != m_.size() || grads.size() != m_.size()) fail_internal("AdamW: parameter count changed");
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(t_));
  const float b1 = static_cast<float>(o_.beta1), b2 = static_cast<float>(o_.beta2);
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float eps = static_cast<float>(o_.eps), decay = static_cast<float>(lr * o_.weight_decay);
  const float clip = static_cast<float>(clip_scale);
  const int64_t n = static_cast<int64_t>(params.size());
#pragma omp parallel for schedule(static) num_threads(backend::cpu::threads_for(n, 65536))
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * clip;
    m_[i] = b1 * m_[i] + (1.0f - b1) * g;
    v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
    // torch.optim.AdamW: decay first, then p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
    params[i] -= decay * params[i];
    params[i] -= step_size * m_[i] / (std::sqrt(v_[i]) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace skv::train
