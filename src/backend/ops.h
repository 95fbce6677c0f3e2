#pragma once
// Device-agnostic operator fronts (CTranslate2 style): each checks shapes, dtypes and that all
// its tensors share one device, then calls that device's backend (backend/backend.h). Model and
// engine code touch tensor memory only through these, so a new backend never touches them.
// Activations are F32, row-major, one row per token; token ids and positions are I32 tensors.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace skv::backend {

// y[n, out] = x[n, in] @ w[out, in]^T (+ bias[out]). w: F32, F16, BF16, Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K or FP8 (see Fp8Activations below).
// Quantised weights are never dequantised: the activation rows are quantised to 8 bits once
// and every output is an integer dot product (llama.cpp's scheme, at any batch size; on the
// target CPU it beat dequantise-a-panel + sgemm). Float weights use on-the-fly dot products
// for a few rows and the GEMM library (per-thread panels) for larger batches.
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);

// How FP8 weights (DType::FP8, compressed-tensors checkpoints; docs/fp8.md) meet their
// activations. F32, the default: the activations stay F32 and the weights are widened (exact)
// inside the dot product or GEMM panel. E4M3: every activation row is first quantised to FP8
// E4M3 with its own scale max|x| / 448 (dynamic per token, as GPU FP8 serving does), and the
// products of the two 8-bit values are summed in F32. Process-wide; read at every linear call.
enum class Fp8Activations { F32, E4M3 };
void set_fp8_activations(Fp8Activations mode);
Fp8Activations fp8_activations();
// "f32" | "fp8" (also "e4m3"); throws naming the value otherwise.
Fp8Activations parse_fp8_activations(const std::string& name);

// y = x / sqrt(mean(x^2) + eps) * weight, per row. y may alias x.
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);

// out[i, :] = table[ids[i], :] as F32, whatever the table's dtype. ids: I32 [n].
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);

// y += x (residual add).
void add_inplace(Tensor& y, const Tensor& x);

// out = silu(gate) * up, elementwise.
void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out);

// Rotary embedding tables for one model: inverse frequencies after rope scaling.
struct Rope {
  int64_t head_dim = 0;
  bool interleaved = false;     // rotate (2i, 2i+1) pairs (GGUF llama) instead of (i, i + D/2)
  std::vector<float> inv_freq;  // head_dim / 2 entries, scaling already applied
  float attention_factor = 1.0f;
};

// x: [n, heads * head_dim]; rotates every head of row i by angle positions[i] * inv_freq.
// positions: I32 [n].
void rope(Tensor& x, int64_t heads, const Tensor& positions, const Rope& rope);

// Causal attention of n new query rows of one sequence against its paged KV cache.
// q: [n, H * D]. k_pool / v_pool: one cache layer's pool, [slots, KV * D] F32; the sequence's
// position j lives in pool row block_table[j / block_size] * block_size + j % block_size, and
// positions 0 .. n_past + n - 1 are written (the new rows included). The pools may be F32, F16,
// BF16, Q8_0 or MXFP8 (a compressed cache, read block by block; head_dim a multiple of 32 for
// the block formats). block_table: I32 [blocks]
// covering those positions. Query row i sits at position p = n_past + i and attends to
// positions 0 .. p, or with a sliding window W > 0 (Mistral) only to p - W < j <= p; masked
// keys are skipped, not computed. H % KV == 0 (GQA / MQA). out: [n, H * D].
// Rows at positions >= split_from with long contexts may have their keys split over threads
// (merged exactly, in another order): the engine passes the prompt length, so decode rows use
// every thread while a row's bits never depend on what else shares the call.
void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
               int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads, float scale, Tensor& out,
               int64_t window = 0, int64_t split_from = 0);
// The same over a contiguous cache ([capacity, KV * D], position j in row j): one block.
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, int64_t num_heads,
               int64_t num_kv_heads, float scale, Tensor& out, int64_t window = 0);

// Keys visible to n query rows at positions n_past .. n_past + n - 1, summed over the rows.
double attention_keys(int64_t n_past, int64_t n, int64_t window);

// In-place log-softmax / softmax over each row.
void log_softmax_rows(Tensor& x);
void softmax_rows(Tensor& x);

// A new tensor holding t's values in dtype `to` (F32, F16 or BF16; round to nearest even;
// Q8_0; FP8, a 2-D t only, each row scaled by max|row| / 448).
// t may be any float or quantised dtype. Used by checkpoint conversion, not in the hot path.
Tensor to_dtype(const Tensor& t, DType to);

// ---- memory: the only ways model and engine code move tensor bytes.
// dst = src, byte for byte (same dtype and element count), between any two devices.
void copy(const Tensor& src, Tensor& dst);
// dst[r, :] = src[r, col0 : col0 + dst.cols()] for F32 tensors on one device.
void copy_cols(const Tensor& src, int64_t col0, Tensor& dst);
void zero(Tensor& t);
// dst = src rounded to dst's dtype, row by row: F32 rows [n, cols] into F32, F16, BF16, Q8_0 or
// MXFP8 rows (KV cache pages) on the same device.
void store_rows(const Tensor& src, Tensor& dst);
// A host tensor with t's values: t itself when it is on the host, else a new host copy.
Tensor to_host(const Tensor& t);
// A new tensor on `device` holding t's values.
Tensor clone(const Tensor& t, Device device);
inline Tensor clone(const Tensor& t) { return clone(t, t.device); }
// An I32 host tensor [n] viewing the values (no copy; they must outlive its use).
Tensor host_i32(const int32_t* values, int64_t n);

}  // namespace skv::backend
