// RMSNorm as Hugging Face computes it in float32:
//   y = weight * (x * rsqrt(mean(x^2) + eps)), rsqrt taken as 1 / sqrt.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace skv::backend::cpu {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  const Kernels& k = kernels();
  thread_local std::vector<float> wbuf;  // reused: no allocation per call once warm
  const float* w = as_f32(weight, wbuf);
  const int64_t n = x.rows(), d = x.cols();
  const float* xp = x.as<float>();
  float* yp = y.as<float>();
  const int nt = threads_for(static_cast<double>(n) * d, 32.0 * 1024);
  parallel_for_ranges(n, grain_for(n, nt), nt, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* xi = xp + i * d;
      const float mean = k.sum_squares(xi, d) / static_cast<float>(d);
      const float r = 1.0f / std::sqrt(mean + eps);
      k.mul_scale(xi, r, w, yp + i * d, d);
    }
  });
}

}  // namespace skv::backend::cpu
