// Causal GQA attention over an F32 KV cache, flash-attention style: keys are streamed in
// tiles with an online softmax (kernels().attn), so no n x T score matrix is materialised,
// and all query heads of one KV head are processed together so each K / V tile is read
// from memory once per group rather than once per head.
//
// Tasks are (query row, KV head): causal rows get longer with i, so they are handed out
// dynamically, longest first. When there are too few tasks to feed the threads (decode:
// one row, a few KV heads) and the context is long, the keys are also split into ranges
// whose partial results (max, sum, unnormalised output) are merged exactly afterwards
// (flash-decoding).
//
// A sliding window (Mistral) only moves where each row's key range starts: the masked keys
// before it are never read.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace skv::backend::cpu {

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, int64_t num_heads,
               int64_t num_kv_heads, float scale, Tensor& out, int64_t window) {
  const Kernels& k = kernels();
  const int64_t n = q.rows();
  const int64_t D = q.cols() / num_heads;
  const int64_t G = num_heads / num_kv_heads;
  const int64_t kv_stride = k_cache.cols();
  const float* qp = q.as<float>();
  const float* kp = k_cache.as<float>();
  const float* vp = v_cache.as<float>();
  float* op = out.as<float>();
  const int64_t q_stride = q.cols(), o_stride = out.cols();
  // Head groups per task (a group larger than the kernel's limit is cut in equal pieces).
  const int64_t gparts = (G + kAttnMaxGroup - 1) / kAttnMaxGroup;
  const int64_t gsz = (G + gparts - 1) / gparts;
  const int64_t tasks = n * num_kv_heads * gparts;
  // Query row i sees keys first_key(i) .. n_past + i.
  auto first_key = [&](int64_t i) { return window > 0 ? std::max<int64_t>(0, n_past + i + 1 - window) : 0; };
  double keys = 0;
  for (int64_t i = 0; i < n; ++i) keys += static_cast<double>(n_past + i + 1 - first_key(i));
  const double work = static_cast<double>(num_heads) * D * keys;
  const int nt = threads_for(work, 32.0 * 1024);
  const int64_t t_max = window > 0 ? std::min(n_past + n, window) : n_past + n;
  int64_t splits = 1;
  if (nt > 1 && tasks < 4 * nt && t_max >= 512) splits = std::min<int64_t>((4 * nt + tasks - 1) / tasks, t_max / 256);

  auto task_geometry = [&](int64_t t, int64_t& i, int64_t& kvh, int64_t& g0, int64_t& gs) {
    i = t / (num_kv_heads * gparts);
    const int64_t rem = t % (num_kv_heads * gparts);
    kvh = rem / gparts;
    g0 = (rem % gparts) * gsz;
    gs = std::min(gsz, G - g0);
  };

  if (splits == 1) {
    parallel_for(tasks, nt, [&](int64_t r) {
      int64_t i, kvh, g0, gs;
      task_geometry(tasks - 1 - r, i, kvh, g0, gs);  // longest rows first
      const int64_t h0 = kvh * G + g0;
      float m[kAttnMaxGroup], l[kAttnMaxGroup];
      float* o = op + i * o_stride + h0 * D;
      const int64_t j0 = first_key(i);
      k.attn(qp + i * q_stride + h0 * D, D, gs, kp + j0 * kv_stride + kvh * D, vp + j0 * kv_stride + kvh * D, kv_stride,
             n_past + i + 1 - j0, D, scale, o, D, m, l);
      for (int64_t g = 0; g < gs; ++g) {
        const float inv = l[g] > 0.0f ? 1.0f / l[g] : 0.0f;
        for (int64_t d = 0; d < D; ++d) o[g * D + d] *= inv;
      }
    });
    return;
  }

  // Split keys: partial (o, m, l) per (task, split), merged per task afterwards.
  // Kept per calling thread and only grown: a decode step must not allocate once warm.
  // The workers below use these through plain pointers (their own thread_local would be empty).
  thread_local std::vector<float> t_po, t_pm, t_pl;
  const size_t partials = static_cast<size_t>(tasks * splits * gsz);
  if (t_po.size() < partials * D) t_po.resize(partials * D);
  if (t_pm.size() < partials) t_pm.resize(partials), t_pl.resize(partials);
  float* po = t_po.data();
  float* pm = t_pm.data();
  float* pl = t_pl.data();
  parallel_for(tasks * splits, nt, [&](int64_t r) {
    const int64_t t = r / splits, c = r % splits;
    int64_t i, kvh, g0, gs;
    task_geometry(t, i, kvh, g0, gs);
    const int64_t j0 = first_key(i), T = n_past + i + 1 - j0;
    const int64_t b = j0 + T * c / splits, e = j0 + T * (c + 1) / splits;
    const int64_t h0 = kvh * G + g0;
    const size_t slot = static_cast<size_t>(t * splits + c) * gsz;
    if (e <= b) {  // empty range (tiny T): contributes nothing
      for (int64_t g = 0; g < gs; ++g) pm[slot + g] = -INFINITY, pl[slot + g] = 0.0f;
      return;
    }
    k.attn(qp + i * q_stride + h0 * D, D, gs, kp + b * kv_stride + kvh * D, vp + b * kv_stride + kvh * D, kv_stride,
           e - b, D, scale, po + slot * D, D, pm + slot, pl + slot);
  });
  // Keys are split only when there are fewer than 4 tasks per thread, so the merge is a few
  // heads' worth of D-vectors: cheaper on this thread than another parallel call.
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t i, kvh, g0, gs;
    task_geometry(t, i, kvh, g0, gs);
    float* o = op + i * o_stride + (kvh * G + g0) * D;
    for (int64_t g = 0; g < gs; ++g) {
      float M = -INFINITY;
      for (int64_t c = 0; c < splits; ++c) M = std::max(M, pm[(t * splits + c) * gsz + g]);
      float L = 0.0f;
      for (int64_t d = 0; d < D; ++d) o[g * D + d] = 0.0f;
      for (int64_t c = 0; c < splits; ++c) {
        const size_t slot = static_cast<size_t>(t * splits + c) * gsz + g;
        if (pl[slot] == 0.0f) continue;
        const float w = std::exp(pm[slot] - M);
        L += pl[slot] * w;
        const float* src = po + slot * D;
        for (int64_t d = 0; d < D; ++d) o[g * D + d] += w * src[d];
      }
      const float inv = L > 0.0f ? 1.0f / L : 0.0f;
      for (int64_t d = 0; d < D; ++d) o[g * D + d] *= inv;
    }
  }
}

}  // namespace skv::backend::cpu
