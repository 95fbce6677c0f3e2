// Embedding lookup, residual add, SwiGLU gate, row softmax / log-softmax.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"
#include "core/error.h"

namespace skv::backend::cpu {

void embedding(const Tensor& table, const int32_t* ids, int64_t n, Tensor& out) {
  const Kernels& k = kernels();
  const int64_t d = table.cols();
  float* op = out.as<float>();
  const ToFloatFn conv = to_float_for(k, table.dtype);  // nullptr: F32, copied as it is
  if (!conv && table.dtype != DType::F32) fail_internal("embedding: unsupported table dtype ", dtype_name(table.dtype));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = table.row_ptr(ids[i]);
    if (conv)
      conv(src, op + i * d, d);
    else
      std::memcpy(op + i * d, src, static_cast<size_t>(d) * sizeof(float));
  }
}

void add_inplace(Tensor& y, const Tensor& x) {
  const Kernels& k = kernels();
  const int64_t n = y.numel();
  float* yp = y.as<float>();
  const float* xp = x.as<float>();
  constexpr int64_t kChunk = 16384;
  const int nt = threads_for(static_cast<double>(n), 64.0 * 1024);
  if (nt <= 1) return k.add(yp, xp, n);
  parallel_for_ranges(n, kChunk, nt, [&](int64_t b, int64_t e) { k.add(yp + b, xp + b, e - b); });
}

void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  const Kernels& k = kernels();
  const int64_t n = out.numel();
  const float* g = gate.as<float>();
  const float* u = up.as<float>();
  float* o = out.as<float>();
  constexpr int64_t kChunk = 8192;
  const int nt = threads_for(static_cast<double>(n), 16.0 * 1024);
  if (nt <= 1) return k.silu_mul(g, u, o, n);
  // Fixed chunks (multiples of the vector width): an element never moves into a scalar tail.
  parallel_for_ranges(n, kChunk, nt, [&](int64_t b, int64_t e) { k.silu_mul(g + b, u + b, o + b, e - b); });
}

namespace {

// Per row: max, then exp(x - max) in float summed in double (vocabularies of 10^5 entries).
template <bool kLog>
void softmax_impl(Tensor& x) {
  const int64_t n = x.rows(), v = x.cols();
  float* xp = x.as<float>();
  const int nt = threads_for(static_cast<double>(n) * v, 32.0 * 1024);
  parallel_for(n, nt, [&](int64_t i) {
    float* r = xp + i * v;
    float m = -INFINITY;
    for (int64_t j = 0; j < v; ++j) m = r[j] > m ? r[j] : m;
    if (m == -INFINITY) {  // all -inf: leave a uniform distribution's worth of nothing
      for (int64_t j = 0; j < v; ++j) r[j] = kLog ? -INFINITY : 0.0f;
      return;
    }
    double sum = 0.0;
    if (kLog) {
      for (int64_t j = 0; j < v; ++j) sum += std::exp(r[j] - m);
      const float ls = static_cast<float>(std::log(sum));
      for (int64_t j = 0; j < v; ++j) r[j] = (r[j] - m) - ls;  // as torch: (x - max) - log(sum)
    } else {
      for (int64_t j = 0; j < v; ++j) {
        r[j] = std::exp(r[j] - m);
        sum += r[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < v; ++j) r[j] *= inv;
    }
  });
}

}  // namespace

void log_softmax_rows(Tensor& x) { softmax_impl<true>(x); }
void softmax_rows(Tensor& x) { softmax_impl<false>(x); }

}  // namespace skv::backend::cpu

namespace skv::backend::cpu {

void copy_cols(const Tensor& src, int64_t col0, Tensor& dst) {
  const int64_t n = dst.rows(), w = dst.cols(), sw = src.cols();
  const float* s = src.as<float>() + col0;
  float* d = dst.as<float>();
  for (int64_t r = 0; r < n; ++r) std::memcpy(d + r * w, s + r * sw, static_cast<size_t>(w) * sizeof(float));
}

}  // namespace skv::backend::cpu
