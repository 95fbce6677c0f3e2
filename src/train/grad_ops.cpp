// Forward and backward of the dense ops (attention is in attention_grad.cpp). Reductions that
// cross rows (dw of RMSNorm, db, the losses) go through fixed-size partial sums added in a fixed
// order, so they do not depend on the thread count or the schedule (a run is reproducible up to
// how OpenBLAS treats the edges of differently cut GEMM panels).
#include "train/grad_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"
#include "train/gemm.h"

namespace skv::train {

namespace {

using backend::cpu::threads_for;
using detail::gemm;
using detail::split_range;

// Below this many multiply-adds per thread, starting a thread costs more than it saves.
constexpr double kGemmMinWork = 256.0 * 1024;
constexpr double kElemMinWork = 32.0 * 1024;

// par_gemm: one single-threaded GEMM per thread on its own panel of C's rows or columns
// (whichever dimension is longer), so every thread streams its slice of the shared operand
// once and the panels never overlap.
template <class T>
void par_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const bool by_rows = m >= n;
  const int64_t len = by_rows ? m : n;
  // Panel edges on multiples of 16 elements: 64 bytes of float, so panels do not share cache lines.
  constexpr int64_t kAlign = 16;
  const int nt = static_cast<int>(std::min<int64_t>(
      threads_for(static_cast<double>(m) * n * std::max<int64_t>(k, 1), kGemmMinWork), (len + kAlign - 1) / kAlign));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t p0, p1;
    split_range(len, omp_get_num_threads(), omp_get_thread_num(), kAlign, p0, p1);
    if (p1 > p0) {
      if (by_rows)
        gemm(ta, tb, p1 - p0, n, k, alpha, a + (ta ? p0 : p0 * lda), lda, b, ldb, beta, c + p0 * ldc, ldc);
      else
        gemm(ta, tb, m, p1 - p0, k, alpha, a, lda, b + (tb ? p0 * ldb : p0), ldb, beta, c + p0, ldc);
    }
  }
}

}  // namespace

template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out) {
  if (n <= 0 || out <= 0) return;
  if (b) {
    const int nt = threads_for(static_cast<double>(n) * out, kElemMinWork);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) std::copy(b, b + out, y + i * out);
  }
  par_gemm(false, true, n, out, in, T(1), x, in, w, in, b ? T(1) : T(0), y, out);
}

template <class T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t n, int64_t in, int64_t out,
                     bool accumulate_dx) {
  if (n <= 0) return;
  if (dx) {
    if (out > 0)
      par_gemm(false, false, n, in, out, T(1), dy, out, w, in, accumulate_dx ? T(1) : T(0), dx, in);
    else if (!accumulate_dx)
      std::fill(dx, dx + n * in, T(0));
  }
  if (dw) par_gemm(true, false, out, in, n, T(1), dy, out, x, in, T(1), dw, in);
  if (db) {
    const int nt = threads_for(static_cast<double>(n) * out, kElemMinWork);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      int64_t c0, c1;
      split_range(out, omp_get_num_threads(), omp_get_thread_num(), 16, c0, c1);
      std::vector<double> acc(static_cast<size_t>(c1 - c0), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const T* r = dy + i * out + c0;
        for (int64_t j = 0; j < c1 - c0; ++j) acc[j] += r[j];
      }
      for (int64_t j = 0; j < c1 - c0; ++j) db[c0 + j] += static_cast<T>(acc[j]);
    }
  }
}

template <class T>
void rms_norm_forward(const T* x, const T* w, T eps, T* y, T* rstd, int64_t n, int64_t d) {
  const int nt = threads_for(static_cast<double>(n) * d, kElemMinWork);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * d;
    double ss = 0.0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const T r = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(d) + static_cast<double>(eps)));
    rstd[i] = r;
    T* yi = y + i * d;
    for (int64_t j = 0; j < d; ++j) yi[j] = xi[j] * r * w[j];
  }
}

// With r = rstd: y_j = x_j r w_j and dr/dx_j = -r^3 x_j / d, so
//   dx_j = r (w_j dy_j - x_j r^2 / d * sum_k dy_k w_k x_k).
template <class T>
void rms_norm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int64_t n, int64_t d,
                       bool accumulate_dx) {
  if (n <= 0) return;
  constexpr int64_t kRows = 32;  // rows per dw partial sum
  const int64_t chunks = (n + kRows - 1) / kRows;
  std::vector<double> part(dw ? static_cast<size_t>(chunks * d) : 0, 0.0);
  const int nt = threads_for(static_cast<double>(n) * d * 2, kElemMinWork);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double* pw = dw ? part.data() + c * d : nullptr;
    for (int64_t i = c * kRows; i < std::min(n, (c + 1) * kRows); ++i) {
      const T *xi = x + i * d, *gi = dy + i * d;
      const double r = rstd[i];
      if (dx) {
        double dot = 0.0;
        for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(gi[j]) * w[j] * xi[j];
        const T a = static_cast<T>(r), bcoef = static_cast<T>(r * r * r * dot / static_cast<double>(d));
        T* dxi = dx + i * d;
        if (accumulate_dx)
          for (int64_t j = 0; j < d; ++j) dxi[j] += a * w[j] * gi[j] - bcoef * xi[j];
        else
          for (int64_t j = 0; j < d; ++j) dxi[j] = a * w[j] * gi[j] - bcoef * xi[j];
      }
      if (pw)
        for (int64_t j = 0; j < d; ++j) pw[j] += static_cast<double>(gi[j]) * xi[j] * r;
    }
  }
  if (dw)
    for (int64_t j = 0; j < d; ++j) {
      double s = 0.0;
      for (int64_t c = 0; c < chunks; ++c) s += part[c * d + j];
      dw[j] += static_cast<T>(s);
    }
}

namespace {

// The inference RoPE's rotation (backend/cpu/rope.cpp, which follows Hugging Face): the angle
// is float(pos) * inv_freq rounded to float (a double product would differ from it by ~1e-4
// rad at positions in the thousands), and its cos / sin are taken in double. `sign` -1 applies
// the inverse rotation.
template <class T>
void rope_rotate(T* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* pos, const float* inv_freq,
                 bool interleaved, double sign) {
  const int64_t half = head_dim / 2, row = heads * head_dim;
  const int nt = threads_for(static_cast<double>(n) * (row + 8 * half), kElemMinWork);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<T> cs(static_cast<size_t>(2 * half));
    T *c = cs.data(), *s = c + half;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float p = static_cast<float>(pos[i]);
      for (int64_t j = 0; j < half; ++j) {
        const double theta = static_cast<double>(p * inv_freq[j]);
        c[j] = static_cast<T>(std::cos(theta));
        s[j] = static_cast<T>(sign * std::sin(theta));
      }
      for (int64_t h = 0; h < heads; ++h) {
        T* v = x + i * row + h * head_dim;
        // Pair j is (v[j * step], v[j * step + off]).
        const int64_t step = interleaved ? 2 : 1, off = interleaved ? 1 : half;
        for (int64_t j = 0; j < half; ++j) {
          const T x1 = v[j * step], x2 = v[j * step + off];
          v[j * step] = x1 * c[j] - x2 * s[j];
          v[j * step + off] = x2 * c[j] + x1 * s[j];
        }
      }
    }
  }
}

}  // namespace

template <class T>
void rope_forward(T* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* pos, const float* inv_freq,
                  bool interleaved) {
  rope_rotate(x, n, heads, head_dim, pos, inv_freq, interleaved, 1.0);
}

template <class T>
void rope_backward(T* dx, int64_t n, int64_t heads, int64_t head_dim, const int32_t* pos, const float* inv_freq,
                   bool interleaved) {
  rope_rotate(dx, n, heads, head_dim, pos, inv_freq, interleaved, -1.0);
}

template <class T>
void silu_mul_forward(const T* g, const T* u, T* out, int64_t count) {
  const int nt = threads_for(static_cast<double>(count) * 8, kElemMinWork);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t i = 0; i < count; ++i) out[i] = g[i] / (T(1) + std::exp(-g[i])) * u[i];
}

// d silu(g) / dg = s (1 + g (1 - s)) with s = sigmoid(g).
template <class T>
void silu_mul_backward(const T* dout, const T* g, const T* u, T* dg, T* du, int64_t count) {
  const int nt = threads_for(static_cast<double>(count) * 12, kElemMinWork);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const T s = T(1) / (T(1) + std::exp(-g[i]));
    dg[i] = dout[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
    du[i] = dout[i] * g[i] * s;
  }
}

// Per row, with a = zt / tau, b = zs / tau, their maxima ma, mb, St = sum_v exp(a_v - ma) and
// Ss = sum_v exp(b_v - mb):
//   KL = sum_v pt_v (a_v - b_v) - (ma + log St) + (mb + log Ss)
// so each value needs one exp per distribution and the row only two logs. The exponentials
// are kept in per-thread row buffers for the gradient pass.
template <class T>
double kl_distill_loss(const T* zt, const T* zs, T* dzs, int64_t n, int64_t V, T tau, T scale) {
  if (n <= 0 || V <= 0) return 0.0;
  std::vector<double> row_kl(static_cast<size_t>(n));
  const T inv_tau = T(1) / tau;
  const double g = static_cast<double>(scale) / static_cast<double>(tau);
  const int nt = std::min<int64_t>(n, threads_for(static_cast<double>(n) * V * 8, kElemMinWork));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<T> et(static_cast<size_t>(V)), es(static_cast<size_t>(V));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T *t = zt + i * V, *s = zs + i * V;
      const T mt = *std::max_element(t, t + V), ms = *std::max_element(s, s + V);
      double st = 0.0, ss = 0.0;
      for (int64_t v = 0; v < V; ++v) {
        et[v] = std::exp((t[v] - mt) * inv_tau);
        es[v] = std::exp((s[v] - ms) * inv_tau);
        st += et[v];
        ss += es[v];
      }
      const double rt = 1.0 / st, rs = 1.0 / ss, itau = static_cast<double>(inv_tau);
      double cross = 0.0;
      T* d = dzs ? dzs + i * V : nullptr;
      for (int64_t v = 0; v < V; ++v) {
        const double pt = et[v] * rt;
        cross += pt * (static_cast<double>(t[v]) - static_cast<double>(s[v]));
        if (d) d[v] = static_cast<T>(g * (es[v] * rs - pt));
      }
      row_kl[i] = cross * itau - (mt * itau + std::log(st)) + (ms * itau + std::log(ss));
    }
  }
  double total = 0.0;
  for (double r : row_kl) total += r;
  return static_cast<double>(scale) * total;
}

template <class T>
void teacher_topk(const T* zt, int64_t n, int64_t V, T tau, int64_t k, int32_t* ids, float* logp, float* rest) {
  if (n <= 0 || V <= 0) return;
  if (k < 1 || k > V) fail("teacher top-k: k = ", k, " must be in 1..", V);
  const double inv_tau = 1.0 / static_cast<double>(tau);
  const int nt = std::min<int64_t>(n, threads_for(static_cast<double>(n) * V * 8, kElemMinWork));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::vector<double> e(static_cast<size_t>(V));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T* t = zt + i * V;
      const double mt = static_cast<double>(*std::max_element(t, t + V));
      double st = 0.0;
      for (int64_t v = 0; v < V; ++v) st += e[v] = std::exp((static_cast<double>(t[v]) - mt) * inv_tau);
      for (int64_t v = 0; v < V; ++v) order[v] = static_cast<int32_t>(v);
      auto before = [t](int32_t a, int32_t b) { return t[a] > t[b] || (t[a] == t[b] && a < b); };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      double others = 0.0;
      for (int64_t j = k; j < V; ++j) others += e[order[j]];
      const double log_st = std::log(st);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t v = order[j];
        ids[i * k + j] = v;
        logp[i * k + j] = static_cast<float>((static_cast<double>(t[v]) - mt) * inv_tau - log_st);
      }
      rest[i] = static_cast<float>(others / st);
    }
  }
}

template <class T>
double kl_topk_loss(const T* zs, T* dzs, int64_t n, int64_t V, T tau, T scale, int64_t k, const int32_t* ids,
                    const float* logp, const float* rest) {
  if (n <= 0 || V <= 0) return 0.0;
  std::vector<double> row_kl(static_cast<size_t>(n));
  const double inv_tau = 1.0 / static_cast<double>(tau);
  const double g = static_cast<double>(scale) * inv_tau;
  const int nt = std::min<int64_t>(n, threads_for(static_cast<double>(n) * V * 4, kElemMinWork));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<double> es(static_cast<size_t>(V));
    std::vector<uint8_t> in_top(static_cast<size_t>(V), 0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T* s = zs + i * V;
      const int32_t* id = ids + i * k;
      const double ms = static_cast<double>(*std::max_element(s, s + V));
      double ss = 0.0;
      // exp in T, like kl_distill_loss (expf for training); the sums in double.
      for (int64_t v = 0; v < V; ++v)
        ss += es[v] = std::exp(static_cast<T>((static_cast<double>(s[v]) - ms) * inv_tau));
      for (int64_t j = 0; j < k; ++j) in_top[id[j]] = 1;
      double s_rest = 0.0;  // summed over the other classes directly: 1 - sum(top) cancels
      for (int64_t v = 0; v < V; ++v)
        if (!in_top[v]) s_rest += es[v];
      const double log_ss = std::log(ss);
      double kl = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        const double lq = (static_cast<double>(s[id[j]]) - ms) * inv_tau - log_ss;
        kl += std::exp(static_cast<double>(logp[i * k + j])) * (static_cast<double>(logp[i * k + j]) - lq);
      }
      const double r = rest[i];
      // A student whose other classes all underflow would make the term infinite; its floor
      // keeps the loss finite and the gradient pointing back towards them.
      const double q_rest = std::max(s_rest / ss, 1e-300);
      if (r > 0) kl += r * (std::log(r) - std::log(q_rest));
      row_kl[i] = kl;
      if (dzs) {
        T* d = dzs + i * V;
        const double rest_scale = r / q_rest;
        for (int64_t v = 0; v < V; ++v) {
          const double q = es[v] / ss;
          d[v] = static_cast<T>(g * (in_top[v] ? q : q - rest_scale * q));
        }
        for (int64_t j = 0; j < k; ++j) d[id[j]] -= static_cast<T>(g * std::exp(static_cast<double>(logp[i * k + j])));
      }
      for (int64_t j = 0; j < k; ++j) in_top[id[j]] = 0;
    }
  }
  double total = 0.0;
  for (double r : row_kl) total += r;
  return static_cast<double>(scale) * total;
}

template <class T>
double mse_loss(const T* a, const T* b, T* da, int64_t count, T scale) {
  if (count <= 0) return 0.0;
  constexpr int64_t kChunk = 8192;  // values per partial sum
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(chunks));
  const T g = T(2) * scale;
  const int nt = threads_for(static_cast<double>(count) * 2, kElemMinWork);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double acc = 0.0;
    for (int64_t i = c * kChunk; i < std::min(count, (c + 1) * kChunk); ++i) {
      const T e = a[i] - b[i];
      acc += static_cast<double>(e) * e;
      if (da) da[i] = g * e;
    }
    part[c] = acc;
  }
  double total = 0.0;
  for (double p : part) total += p;
  return static_cast<double>(scale) * total;
}

#define SKV_INSTANTIATE(T)                                                                                     \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t);                \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t, bool); \
  template void rms_norm_forward<T>(const T*, const T*, T, T*, T*, int64_t, int64_t);                          \
  template void rms_norm_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t, bool);  \
  template void rope_forward<T>(T*, int64_t, int64_t, int64_t, const int32_t*, const float*, bool);            \
  template void rope_backward<T>(T*, int64_t, int64_t, int64_t, const int32_t*, const float*, bool);           \
  template void silu_mul_forward<T>(const T*, const T*, T*, int64_t);                                          \
  template void silu_mul_backward<T>(const T*, const T*, const T*, T*, T*, int64_t);                           \
  template double kl_distill_loss<T>(const T*, const T*, T*, int64_t, int64_t, T, T);                          \
  template double mse_loss<T>(const T*, const T*, T*, int64_t, T);                                             \
  template void teacher_topk<T>(const T*, int64_t, int64_t, T, int64_t, int32_t*, float*, float*);             \
  template double kl_topk_loss<T>(const T*, T*, int64_t, int64_t, T, T, int64_t, const int32_t*, const float*, \
                                  const float*);

SKV_INSTANTIATE(float)
SKV_INSTANTIATE(double)
#undef SKV_INSTANTIATE

}  // namespace skv::train
