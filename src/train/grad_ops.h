#pragma once
// Forward and explicit backward passes of the Llama building blocks, for distillation
// (llm.c style: no autograd, every backward written out by hand). Each function is a template
// over the scalar type and instantiated for float (training) and double (finite-difference
// checks of the very same code, tests/unit/test_train_grad_ops.cpp).
//
// Conventions: row-major, one row per token; n = rows. "Writes" overwrites the output,
// "accumulates" adds to it (parameter gradients are always accumulated, so a caller can sum
// several micro-batches or several uses of one weight). Input gradients are written unless
// `accumulate` says otherwise.
//
// Packed sequences: several documents share one row block; doc_start[i] is the row index of the
// first token of row i's document, so row i attends to rows doc_start[i] .. i only.
#include <cstdint>

namespace skv::train {

// y[n, out] = x[n, in] w[out, in]^T (+ b[out]).
template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out);

// Given dy[n, out]: dx[n, in] = dy w (written, or accumulated when accumulate_dx; skipped when
// dx is null), dw[out, in] += dy^T x (skipped when null), db[out] += sum_rows dy (skipped when null).
template <class T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t n, int64_t in, int64_t out,
                     bool accumulate_dx = false);

// y = x * rstd * w with rstd[i] = 1 / sqrt(mean(x_i^2) + eps) (saved for the backward).
template <class T>
void rms_norm_forward(const T* x, const T* w, T eps, T* y, T* rstd, int64_t n, int64_t d);

// dx written (or accumulated), dw[d] += (skipped when null).
template <class T>
void rms_norm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int64_t n, int64_t d,
                       bool accumulate_dx = false);

// In place: rotates every head of row i by angle pos[i] * inv_freq[j] (j < head_dim / 2).
// Pairs are (j, j + head_dim / 2) (Hugging Face layout) or (2j, 2j + 1) when interleaved.
// The angle is float(pos[i]) * inv_freq[j] rounded to float, as the inference RoPE
// (backend/cpu/rope.cpp) and Hugging Face compute it; its cos / sin are taken in double
// whatever T is. backend::Rope's attention_factor is not applied (make_rope always leaves it at 1).
template <class T>
void rope_forward(T* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* pos, const float* inv_freq,
                  bool interleaved);
// In place: the transpose of the rotation (rotation by -angle).
template <class T>
void rope_backward(T* dx, int64_t n, int64_t heads, int64_t head_dim, const int32_t* pos, const float* inv_freq,
                   bool interleaved);

// Causal grouped-query attention over a packed row block with per-document masking.
// q: [n, H * D], k / v: [n, KV * D], H % KV == 0, query head h uses kv head h / (H / KV).
// out: [n, H * D]; lse: [n, H] log-sum-exp of the scaled scores of each query (saved for the
// backward, which recomputes the probabilities from it, FlashAttention style).
// window > 0 (Mistral's sliding window): row i sees only rows i - window < j <= i of its document.
// A doc_start that does not describe contiguous documents, or H % KV != 0, throws skv::Error.
template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t n, int64_t H, int64_t KV, int64_t D,
                       T scale, const int32_t* doc_start, int64_t window = 0);
// dq written; dk, dv written (each kv row sums the contributions of every query head of its group).
template <class T>
void attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* out, const T* lse, T* dq, T* dk,
                        T* dv, int64_t n, int64_t H, int64_t KV, int64_t D, T scale, const int32_t* doc_start,
                        int64_t window = 0);

// out = silu(g) * u, elementwise over count values.
template <class T>
void silu_mul_forward(const T* g, const T* u, T* out, int64_t count);
template <class T>
void silu_mul_backward(const T* dout, const T* g, const T* u, T* dg, T* du, int64_t count);

// Distillation loss of n rows of logits over V classes, temperature tau:
//   loss = scale * sum_rows KL(softmax(zt / tau) || softmax(zs / tau))
// Returns the loss; writes dzs = d loss / d zs = scale / tau * (softmax(zs / tau) - softmax(zt / tau))
// (skipped when null).
// The caller passes scale = tau^2 / (tokens in the global batch) for the paper's loss.
template <class T>
double kl_distill_loss(const T* zt, const T* zs, T* dzs, int64_t n, int64_t V, T tau, T scale);

// The teacher's side of a cached distillation target (train/teacher_cache.h): per row of zt,
// the k most probable classes of softmax(zt / tau) (ids, in decreasing probability; ties by
// lower id), their log-probabilities, and the probability of all other classes, summed
// directly over them (not 1 - the top k, which cancels).
template <class T>
void teacher_topk(const T* zt, int64_t n, int64_t V, T tau, int64_t k, int32_t* ids, float* logp, float* rest);

// KL between teacher and student coarsened to the teacher's top k and one "rest" class:
//   loss = scale * sum_rows [ sum_{v in K} pt_v (log pt_v - log ps_v) + r (log r - log Ps_rest) ]
// with ps = softmax(zs / tau), Ps_rest = sum_{v not in K} ps_v, r the teacher's rest mass. It
// is never above the full KL (merging classes loses information) and equals it when k = V.
// dzs = scale / tau * (ps_j - [j in K] pt_j - [j not in K] r ps_j / Ps_rest): the rest mass is
// spread over the student's own distribution of the other classes. dzs may be null.
template <class T>
double kl_topk_loss(const T* zs, T* dzs, int64_t n, int64_t V, T tau, T scale, int64_t k, const int32_t* ids,
                    const float* logp, const float* rest);

// loss = scale * sum (a - b)^2 over count values; writes da = 2 * scale * (a - b) (skipped when null).
template <class T>
double mse_loss(const T* a, const T* b, T* da, int64_t count, T scale);

}  // namespace skv::train
