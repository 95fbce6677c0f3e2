// Rotary position embedding, applied in place. Angles follow Hugging Face exactly:
// theta = float(pos) * inv_freq[j] (one fp32 product), cos / sin of it in fp32, both times
// attention_factor; then x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin, where (x1, x2) is
// (j, j + D/2) for rotate_half models and (2j, 2j + 1) for interleaved (GGUF llama) ones.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/thread_pool.h"

namespace skv::backend::cpu {

void rope(Tensor& x, int64_t heads, const int32_t* positions, const backend::Rope& rp) {
  const int64_t n = x.rows(), D = rp.head_dim, half = D / 2;
  const int64_t row = x.cols();
  float* xp = x.as<float>();
  const float* inv = rp.inv_freq.data();
  const float af = rp.attention_factor;
  const int nt = threads_for(static_cast<double>(n) * (heads * D + 8 * half), 16.0 * 1024);
  parallel_for_ranges(n, grain_for(n, nt), nt, [&](int64_t i0, int64_t i1) {
    // Per-thread and kept: a decode step must not allocate once warm.
    thread_local std::vector<float> cs;
    if (cs.size() < static_cast<size_t>(2 * half)) cs.resize(static_cast<size_t>(2 * half));
    float* c = cs.data();
    float* s = c + half;
    for (int64_t i = i0; i < i1; ++i) {
      const float pos = static_cast<float>(positions[i]);
      for (int64_t j = 0; j < half; ++j) {
        const float theta = pos * inv[j];
        c[j] = std::cos(theta) * af;
        s[j] = std::sin(theta) * af;
      }
      float* xr = xp + i * row;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = xr + h * D;
        if (rp.interleaved) {
          for (int64_t j = 0; j < half; ++j) {
            const float x1 = v[2 * j], x2 = v[2 * j + 1];
            v[2 * j] = x1 * c[j] - x2 * s[j];
            v[2 * j + 1] = x2 * c[j] + x1 * s[j];
          }
        } else {
          for (int64_t j = 0; j < half; ++j) {
            const float x1 = v[j], x2 = v[j + half];
            v[j] = x1 * c[j] - x2 * s[j];
            v[j + half] = x2 * c[j] + x1 * s[j];
          }
        }
      }
    }
  });
}

}  // namespace skv::backend::cpu
