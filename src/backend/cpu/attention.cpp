// Causal GQA attention over an F32 KV cache, flash-attention style: keys are streamed in
// tiles with an online softmax (kernels().attn), so no n x T score matrix is materialised,
// and all query heads of one KV head are processed together so each K / V tile is read
// from memory once per group rather than once per head.
//
// Tasks are (query row, KV head): causal rows get longer with i, so they are handed out
// dynamically, longest first. A row with a long context also has its keys split into ranges
// whose partial results (max, sum, unnormalised output) are merged exactly afterwards
// (flash-decoding), so that a decode step (one row, a few KV heads) feeds every thread.
//
// A sliding window (Mistral) only moves where each row's key range starts: the masked keys
// before it are never read.
//
// The cache is paged (engine/kv_pool.h): a row's keys are blocks scattered over the pool, fed
// to the kernel one tile at a time (PagedRange), with the same bits as a contiguous cache.
//
// Batch invariance: a row's result depends only on its query, its keys, their positions and
// the thread setting, never on which other rows share the call, how the prompt was chunked,
// the block size or where the blocks sit in the pool. So a sequence computes the same logits
// alone, batched with others, chunked differently, or with its prefix from the prefix cache.
// That is why a row's key split depends on its own position and length (split_from,
// num_threads()) and not on how many rows or threads this call has.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"

namespace skv::backend::cpu {
namespace {

// Per-thread float copies of one tile of keys and values of one KV head, for tiles that cross
// blocks not adjacent in the pool and for compressed caches; only grown (a warm decode step
// allocates nothing).
float* tile_scratch(int64_t floats) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < floats) buf.resize(static_cast<size_t>(floats));
  return buf.data();
}

// Attention of G query heads over logical keys [b, e) of a paged cache, as the kernel computes
// one contiguous range: the keys go to the kernel one tile of kAttnTile at a time, counted from
// b, each call continuing the last one's (m, l, o), so the bits are those of a contiguous cache
// whatever the block size and wherever the blocks sit. A tile whose keys are adjacent in the
// pool is read in place; one that crosses into a block elsewhere is gathered first, and a
// compressed cache (F16, BF16, Q8_0, MXFP8) has its tile converted into floats that stay in L1,
// never the whole cache.
struct PagedRange {
  const Kernels& k;
  DType dtype;
  const uint8_t* kb;  // pools, as bytes
  const uint8_t* vb;
  size_t row_bytes;
  int64_t kv_stride, D;  // F32 pools: floats per pool row
  const int32_t* table;
  int64_t block_size;
  float scale;

  int64_t slot(int64_t p) const { return static_cast<int64_t>(table[p / block_size]) * block_size + p % block_size; }
  // Whether positions [p, p + len) sit in consecutive pool rows (every block after the first
  // follows the one before it).
  bool adjacent(int64_t p, int64_t len) const {
    for (int64_t b = p / block_size; b < (p + len - 1) / block_size; ++b)
      if (table[b + 1] != table[b] + 1) return false;
    return true;
  }

  void operator()(const float* q, int64_t q_stride, int64_t G, int64_t col, int64_t b, int64_t e, float* o,
                  int64_t o_stride, float* m, float* l) const {
    for (int64_t t0 = b; t0 < e; t0 += kAttnTile) {
      const int64_t len = std::min(kAttnTile, e - t0);
      const int64_t row0 = slot(t0);
      const float* kr;
      const float* vr;
      int64_t stride = kv_stride;
      if (dtype == DType::F32 && adjacent(t0, len)) {
        kr = reinterpret_cast<const float*>(kb) + row0 * kv_stride + col;
        vr = reinterpret_cast<const float*>(vb) + row0 * kv_stride + col;
      } else {
        float* tile = tile_scratch(2 * len * D);
        for (int64_t t = 0; t < len; ++t) {
          const int64_t r = slot(t0 + t);
          kv_row_to_f32(dtype, kb + r * row_bytes, col, D, tile + t * D);
          kv_row_to_f32(dtype, vb + r * row_bytes, col, D, tile + (len + t) * D);
        }
        kr = tile;
        vr = tile + len * D;
        stride = D;
      }
      k.attn(q, q_stride, G, kr, vr, stride, len, D, scale, o, o_stride, m, l, t0 == b);
    }
  }
};

}  // namespace

void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const int32_t* block_table,
               int64_t num_blocks, int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads,
               float scale, Tensor& out, int64_t window, int64_t split_from) {
  (void)num_blocks;  // the front checked that the table covers every position read
  const Kernels& k = kernels();
  const int64_t n = q.rows();
  const int64_t D = q.cols() / num_heads;
  const int64_t G = num_heads / num_kv_heads;
  const float* qp = q.as<float>();
  float* op = out.as<float>();
  const int64_t q_stride = q.cols(), o_stride = out.cols();
  const PagedRange range{k,
                         k_pool.dtype,
                         static_cast<const uint8_t*>(k_pool.data),
                         static_cast<const uint8_t*>(v_pool.data),
                         k_pool.row_bytes(),
                         k_pool.cols(),
                         D,
                         block_table,
                         block_size,
                         scale};
  // Head groups per task (a group larger than the kernel's limit is cut in equal pieces).
  const int64_t gparts = (G + kAttnMaxGroup - 1) / kAttnMaxGroup;
  const int64_t gsz = (G + gparts - 1) / gparts;
  const int64_t per_row = num_kv_heads * gparts;  // tasks of one row
  // Query row i sees keys first_key(i) .. n_past + i.
  auto first_key = [&](int64_t i) { return window > 0 ? std::max<int64_t>(0, n_past + i + 1 - window) : 0; };
  auto keys_of = [&](int64_t i) { return n_past + i + 1 - first_key(i); };
  // Key splits of row i: enough pieces for every thread to have work when the row is alone,
  // none for short rows or rows before split_from (a function of the row's position and length
  // and the thread setting only; see the top).
  const int threads = num_threads();
  auto splits_of = [&](int64_t i) -> int64_t {
    const int64_t T = keys_of(i);
    if (threads <= 1 || T < 512 || n_past + i < split_from) return 1;
    return std::max<int64_t>(1, std::min<int64_t>((4 * threads + per_row - 1) / per_row, T / 256));
  };
  double keys = 0;
  for (int64_t i = 0; i < n; ++i) keys += static_cast<double>(keys_of(i));
  const double work = static_cast<double>(num_heads) * D * keys;
  const int nt = threads_for(work, 32.0 * 1024);

  auto task_geometry = [&](int64_t t, int64_t& kvh, int64_t& g0, int64_t& gs) {
    kvh = t / gparts;
    g0 = (t % gparts) * gsz;
    gs = std::min(gsz, G - g0);
  };

  if (splits_of(n - 1) == 1) {  // the last row is not split: no row is
    const int64_t tasks = n * per_row;
    parallel_for(tasks, nt, [&](int64_t r) {
      const int64_t t = tasks - 1 - r;  // longest rows first
      const int64_t i = t / per_row;
      int64_t kvh, g0, gs;
      task_geometry(t % per_row, kvh, g0, gs);
      const int64_t h0 = kvh * G + g0;
      float m[kAttnMaxGroup], l[kAttnMaxGroup];
      float* o = op + i * o_stride + h0 * D;
      range(qp + i * q_stride + h0 * D, D, gs, kvh * D, first_key(i), n_past + i + 1, o, D, m, l);
      for (int64_t g = 0; g < gs; ++g) {
        const float inv = l[g] > 0.0f ? 1.0f / l[g] : 0.0f;
        for (int64_t d = 0; d < D; ++d) o[g * D + d] *= inv;
      }
    });
    return;
  }

  // Split keys: partial (o, m, l) per (row, task, split), merged per (row, task) afterwards.
  // Kept per calling thread and only grown: a decode step must not allocate once warm.
  // The workers below use these through plain pointers (their own thread_local would be empty).
  thread_local std::vector<int64_t> t_first;  // first item of each row; items = (task, split)
  thread_local std::vector<float> t_po, t_pm, t_pl;
  if (static_cast<int64_t>(t_first.size()) < n + 1) t_first.resize(n + 1);
  int64_t* first = t_first.data();
  first[0] = 0;
  for (int64_t i = 0; i < n; ++i) first[i + 1] = first[i] + per_row * splits_of(i);
  const int64_t items = first[n];
  const size_t partials = static_cast<size_t>(items * gsz);
  if (t_po.size() < partials * D) t_po.resize(partials * D);
  if (t_pm.size() < partials) t_pm.resize(partials), t_pl.resize(partials);
  float* po = t_po.data();
  float* pm = t_pm.data();
  float* pl = t_pl.data();
  auto row_of = [&](int64_t item) {
    return static_cast<int64_t>(std::upper_bound(first, first + n + 1, item) - first) - 1;
  };
  parallel_for(items, nt, [&](int64_t r) {
    const int64_t i = row_of(r);
    const int64_t splits = (first[i + 1] - first[i]) / per_row;
    const int64_t t = (r - first[i]) / splits, c = (r - first[i]) % splits;
    int64_t kvh, g0, gs;
    task_geometry(t, kvh, g0, gs);
    const int64_t j0 = first_key(i), T = keys_of(i);
    const int64_t b = j0 + T * c / splits, e = j0 + T * (c + 1) / splits;
    const int64_t h0 = kvh * G + g0;
    const size_t slot = static_cast<size_t>(r) * gsz;
    if (e <= b) {  // empty range (tiny T): contributes nothing
      for (int64_t g = 0; g < gs; ++g) pm[slot + g] = -INFINITY, pl[slot + g] = 0.0f;
      return;
    }
    range(qp + i * q_stride + h0 * D, D, gs, kvh * D, b, e, po + slot * D, D, pm + slot, pl + slot);
  });
  // The merge: a few D-vectors per (row, task); parallel only when prefill rows were split.
  parallel_for(n * per_row, n * per_row >= 64 ? nt : 1, [&](int64_t rt) {
    const int64_t i = rt / per_row, t = rt % per_row;
    const int64_t splits = (first[i + 1] - first[i]) / per_row;
    const int64_t base = first[i] + t * splits;
    int64_t kvh, g0, gs;
    task_geometry(t, kvh, g0, gs);
    float* o = op + i * o_stride + (kvh * G + g0) * D;
    for (int64_t g = 0; g < gs; ++g) {
      float M = -INFINITY;
      for (int64_t c = 0; c < splits; ++c) M = std::max(M, pm[(base + c) * gsz + g]);
      float L = 0.0f;
      for (int64_t d = 0; d < D; ++d) o[g * D + d] = 0.0f;
      for (int64_t c = 0; c < splits; ++c) {
        const size_t slot = static_cast<size_t>(base + c) * gsz + g;
        if (pl[slot] == 0.0f) continue;
        const float w = std::exp(pm[slot] - M);
        L += pl[slot] * w;
        const float* src = po + slot * D;
        for (int64_t d = 0; d < D; ++d) o[g * D + d] += w * src[d];
      }
      const float inv = L > 0.0f ? 1.0f / L : 0.0f;
      for (int64_t d = 0; d < D; ++d) o[g * D + d] *= inv;
    }
  });
}

}  // namespace skv::backend::cpu
