// Causal GQA attention over packed documents, forward and backward, on blocks of query rows
// that never cross a document: a block of m rows of document [lo, hi) sees keys lo .. its last
// row, so its scores are one m x L GEMM (L = last row - lo + 1) and the causal mask only
// trims the block's own diagonal triangle.
//
// The backward recomputes the probabilities from the saved log-sum-exp (FlashAttention 2) in
// two passes that write disjoint outputs, so there are no races and no per-thread copies of
// dk / dv: a query pass over (query block, head) writes dq, and a key pass over (key block,
// kv head) writes dk and dv, looping over the query heads of the group and over every later
// query of the document. Both passes recompute P and dP (7 GEMMs instead of 5); attention is a
// small part of a layer's cost next to its linears, and every output is summed in a fixed
// order whatever the thread count.
//
// A sliding window W (Mistral: row i sees keys i - W < j <= i) moves each block's first key to
// its first row's first visible key and masks the rest per row like the causal triangle.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"
#include "train/gemm.h"
#include "train/grad_ops.h"

namespace skv::train {

namespace {

using backend::cpu::threads_for;
using detail::gemm;

constexpr int64_t kBlock = 64;  // rows per query / key block
constexpr double kMinWork = 256.0 * 1024;

struct Block {
  int64_t r0, r1;  // rows r0 .. r1 - 1
  int64_t lo, hi;  // of the document of rows lo .. hi - 1
};

// Cuts each document into blocks; doc_start must describe contiguous documents (each row's
// value is its own index, starting a document, or the previous row's value).
std::vector<Block> make_blocks(const int32_t* doc_start, int64_t n) {
  std::vector<Block> blocks;
  for (int64_t lo = 0; lo < n;) {
    if (doc_start[lo] != lo)
      fail_internal("attention: doc_start[", lo, "] = ", doc_start[lo],
                    lo > 0 ? " is neither its own row nor the previous row's document start" : " (must be 0)");
    int64_t hi = lo + 1;
    while (hi < n && doc_start[hi] == lo) ++hi;
    for (int64_t r = lo; r < hi; r += kBlock) blocks.push_back({r, std::min(r + kBlock, hi), lo, hi});
    lo = hi;
  }
  return blocks;
}

// Dynamic scheduling balances best when the longest tasks start first.
template <class Cost>
void sort_by_cost(std::vector<Block>& blocks, Cost cost) {
  std::stable_sort(blocks.begin(), blocks.end(), [&](const Block& a, const Block& b) { return cost(a) > cost(b); });
}

// First key any row of b can see, and the first key row i can see.
int64_t block_first_key(const Block& b, int64_t window) {
  return window > 0 ? std::max(b.lo, b.r0 - window + 1) : b.lo;
}
int64_t row_first_key(int64_t i, int64_t lo, int64_t window) { return window > 0 ? std::max(lo, i - window + 1) : lo; }

int64_t query_cost(const Block& b) { return (b.r1 - b.r0) * (b.r1 - b.lo); }
int64_t key_cost(const Block& b) { return (b.r1 - b.r0) * (b.hi - b.r0); }

void check_heads(int64_t H, int64_t KV) {
  if (KV <= 0 || H % KV != 0) fail_internal("attention: ", H, " query heads are not a multiple of ", KV, " kv heads");
}

}  // namespace

template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t n, int64_t H, int64_t KV, int64_t D,
                       T scale, const int32_t* doc_start, int64_t window) {
  check_heads(H, KV);
  if (n <= 0) return;
  if (window < 0) fail("attention: sliding window ", window, " must be positive (0: none)");
  std::vector<Block> blocks = make_blocks(doc_start, n);
  sort_by_cost(blocks, query_cost);
  const int64_t G = H / KV, qs = H * D, ks = KV * D;
  const int64_t tasks = static_cast<int64_t>(blocks.size()) * H;
  int64_t max_keys = 0;
  double work = 0.0;
  for (const Block& b : blocks) {
    max_keys = std::max(max_keys, b.r1 - b.lo);
    work += 2.0 * static_cast<double>(query_cost(b)) * D * H;
  }
  const int nt = static_cast<int>(std::min<int64_t>(tasks, threads_for(work, kMinWork)));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<T> sbuf(static_cast<size_t>(kBlock * max_keys));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const Block& b = blocks[t / H];
      const int64_t h = t % H, g = h / G, m = b.r1 - b.r0, k0 = block_first_key(b, window), L = b.r1 - k0;
      T* s = sbuf.data();
      gemm(false, true, m, L, D, scale, q + b.r0 * qs + h * D, qs, k + k0 * ks + g * D, ks, T(0), s, L);
      for (int64_t r = 0; r < m; ++r) {
        T* sr = s + r * L;
        const int64_t i = b.r0 + r, first = row_first_key(i, b.lo, window) - k0, valid = i - k0 + 1;
        const T mx = *std::max_element(sr + first, sr + valid);
        double sum = 0.0;
        for (int64_t j = first; j < valid; ++j) {
          sr[j] = std::exp(sr[j] - mx);
          sum += sr[j];
        }
        const T inv = static_cast<T>(1.0 / sum);
        for (int64_t j = first; j < valid; ++j) sr[j] *= inv;
        std::fill(sr, sr + first, T(0));
        std::fill(sr + valid, sr + L, T(0));
        lse[i * H + h] = static_cast<T>(static_cast<double>(mx) + std::log(sum));
      }
      gemm(false, false, m, D, L, T(1), s, L, v + k0 * ks + g * D, ks, T(0), out + b.r0 * qs + h * D, qs);
    }
  }
}

// With P = softmax(S), S = scale q k^T, O = P v:
//   dv_j = sum_i P_ij dO_i,  dP_ij = dO_i . v_j,  dS_ij = P_ij (dP_ij - dO_i . O_i),
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i.
template <class T>
void attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* out, const T* lse, T* dq, T* dk,
                        T* dv, int64_t n, int64_t H, int64_t KV, int64_t D, T scale, const int32_t* doc_start,
                        int64_t window) {
  check_heads(H, KV);
  if (n <= 0) return;
  if (window < 0) fail("attention: sliding window ", window, " must be positive (0: none)");
  std::vector<Block> qblocks = make_blocks(doc_start, n);
  std::vector<Block> kblocks = qblocks;
  sort_by_cost(qblocks, query_cost);
  sort_by_cost(kblocks, key_cost);
  const int64_t G = H / KV, qs = H * D, ks = KV * D;
  const int64_t qtasks = static_cast<int64_t>(qblocks.size()) * H;
  const int64_t ktasks = static_cast<int64_t>(kblocks.size()) * KV;
  int64_t max_len = 0;
  double work = 0.0;
  for (const Block& b : qblocks) {
    max_len = std::max(max_len, b.hi - b.lo);
    work += 7.0 * static_cast<double>(query_cost(b)) * D * H;
  }
  std::vector<T> delta(static_cast<size_t>(n * H));  // dO_i . O_i per (row, head)
  const int nt = static_cast<int>(std::min<int64_t>(qtasks, threads_for(work, kMinWork)));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const T *a = dout + i * qs + h * D, *o = out + i * qs + h * D;
        double acc = 0.0;
        for (int64_t j = 0; j < D; ++j) acc += static_cast<double>(a[j]) * o[j];
        delta[i * H + h] = static_cast<T>(acc);
      }
    std::vector<T> pbuf(static_cast<size_t>(kBlock * max_len)), dbuf(pbuf.size());
    T *p = pbuf.data(), *dp = dbuf.data();

    // Query pass: dq for rows r0 .. r1 - 1 of head h.
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t t = 0; t < qtasks; ++t) {
      const Block& b = qblocks[t / H];
      const int64_t h = t % H, g = h / G, m = b.r1 - b.r0, k0 = block_first_key(b, window), L = b.r1 - k0;
      const T *kb = k + k0 * ks + g * D, *vb = v + k0 * ks + g * D;
      gemm(false, true, m, L, D, scale, q + b.r0 * qs + h * D, qs, kb, ks, T(0), p, L);
      gemm(false, true, m, L, D, T(1), dout + b.r0 * qs + h * D, qs, vb, ks, T(0), dp, L);
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = b.r0 + r, first = row_first_key(i, b.lo, window) - k0, valid = i - k0 + 1;
        const T l = lse[i * H + h], dl = delta[i * H + h];
        T *pr = p + r * L, *dr = dp + r * L;
        for (int64_t j = first; j < valid; ++j) dr[j] = std::exp(pr[j] - l) * (dr[j] - dl);
        std::fill(dr, dr + first, T(0));
        std::fill(dr + valid, dr + L, T(0));
      }
      gemm(false, false, m, D, L, scale, dp, L, kb, ks, T(0), dq + b.r0 * qs + h * D, qs);
    }

    // Key pass: dk, dv for kv rows r0 .. r1 - 1 of kv head g, from queries r0 .. hi - 1.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ktasks; ++t) {
      const Block& b = kblocks[t / KV];
      // Queries after the block's last key + W - 1 see none of its keys.
      const int64_t q_end = window > 0 ? std::min(b.hi, b.r1 - 1 + window) : b.hi;
      const int64_t g = t % KV, m = b.r1 - b.r0, Lq = q_end - b.r0;
      const T *kb = k + b.r0 * ks + g * D, *vb = v + b.r0 * ks + g * D;
      T *dkb = dk + b.r0 * ks + g * D, *dvb = dv + b.r0 * ks + g * D;
      for (int64_t hh = 0; hh < G; ++hh) {
        const int64_t h = g * G + hh;
        const T *qr = q + b.r0 * qs + h * D, *dor = dout + b.r0 * qs + h * D;
        const T beta = hh == 0 ? T(0) : T(1);
        // p, dp hold the transposes: row a is key r0 + a, column c is query r0 + c.
        gemm(false, true, m, Lq, D, scale, kb, ks, qr, qs, T(0), p, Lq);
        gemm(false, true, m, Lq, D, T(1), vb, ks, dor, qs, T(0), dp, Lq);
        for (int64_t a = 0; a < m; ++a) {
          T *pr = p + a * Lq, *dr = dp + a * Lq;
          const int64_t c_end = window > 0 ? std::min(Lq, a + window) : Lq;  // queries that see key r0 + a
          std::fill(pr, pr + a, T(0));
          std::fill(dr, dr + a, T(0));
          std::fill(pr + c_end, pr + Lq, T(0));
          std::fill(dr + c_end, dr + Lq, T(0));
          for (int64_t c = a; c < c_end; ++c) {
            const int64_t i = (b.r0 + c) * H + h;
            pr[c] = std::exp(pr[c] - lse[i]);
            dr[c] = pr[c] * (dr[c] - delta[i]);
          }
        }
        gemm(false, false, m, D, Lq, T(1), p, Lq, dor, qs, beta, dvb, ks);
        gemm(false, false, m, D, Lq, scale, dp, Lq, qr, qs, beta, dkb, ks);
      }
    }
  }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                       int64_t, int64_t, float, const int32_t*, int64_t);
template void attention_forward<double>(const double*, const double*, const double*, double*, double*, int64_t, int64_t,
                                        int64_t, int64_t, double, const int32_t*, int64_t);
template void attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, int64_t, int64_t, int64_t, int64_t, float,
                                        const int32_t*, int64_t);
template void attention_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                         const double*, double*, double*, double*, int64_t, int64_t, int64_t, int64_t,
                                         double, const int32_t*, int64_t);

}  // namespace skv::train
