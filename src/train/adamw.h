#pragma once
// AdamW over one flat F32 parameter buffer (fp32 weights and moments), the learning-rate
// schedule (linear warm-up, then linear decay to zero) and global gradient-norm clipping.
#include <cstdint>
#include <vector>

namespace skv::train {

struct AdamWOptions {
  double lr = 2e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;   // decoupled (AdamW); the recipe (docs/swiftkv.md#distillation) uses none
  double max_grad_norm = 1.0;  // <= 0: no clipping
};

// Learning rate of optimiser step `step` (0-based) of `total`: lr * (step + 1) / warmup during
// the warm-up steps, then lr * (total - step) / (total - warmup), so the last step still moves
// the weights and no step is spent at lr 0.
double scheduled_lr(double lr, int64_t step, int64_t warmup, int64_t total);

// Number of warm-up steps for a ratio of the total (rounded up, as transformers does).
int64_t warmup_steps(double ratio, int64_t total);

// L2 norm of the gradient (accumulated in double).
double grad_norm(const std::vector<float>& g);

class AdamW {
 public:
  AdamW(int64_t size, AdamWOptions opts);
  // One update with learning rate `lr`; grads are clipped by `clip_scale` (1 = none) first.
  // step_count() is the number of updates done before this one (bias correction uses +1).
  void step(std::vector<float>& params, const std::vector<float>& grads, double lr, double clip_scale);
  int64_t step_count() const { return t_; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_step_count(int64_t t) { t_ = t; }
  const AdamWOptions& options() const { return o_; }

 private:
  AdamWOptions o_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

}  // namespace skv::train
