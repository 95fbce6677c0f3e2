#pragma once
// CPU implementations behind backend/ops.h. Arguments are already validated by the fronts
// (shapes, dtypes, contiguity), so these only compute.
#include <cstdint>
#include <vector>

#include "backend/cpu/threads.h"
#include "backend/ops.h"
#include "core/tensor.h"

namespace skv::backend::cpu {

// ---- linear (linear.cpp)
// y[n, ldy] = x[n, in] w[out, in]^T + bias. The front picks the path by n; the two paths are
// exposed for tests and benchmarks.
enum class LinearPath { Auto, Gemv, Gemm };
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, LinearPath path = LinearPath::Auto);
// Largest n that uses the GEMV (integer dot / float dot) path for weights of dtype t.
int64_t linear_gemv_max_rows(DType t);

// ---- elementwise / norm / rope / attention
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);
void embedding(const Tensor& table, const int32_t* ids, int64_t n, Tensor& out);
void copy_cols(const Tensor& src, int64_t col0, Tensor& dst);
void store_rows(const Tensor& src, Tensor& dst);
void add_inplace(Tensor& y, const Tensor& x);
void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out);
void rope(Tensor& x, int64_t heads, const int32_t* positions, const backend::Rope& rope);
// One row of a KV pool (any KV dtype), columns [col, col + n), as floats; col and n are
// multiples of the dtype's block.
void kv_row_to_f32(DType t, const uint8_t* row, int64_t col, int64_t n, float* out);
void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const int32_t* block_table,
               int64_t num_blocks, int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads,
               float scale, Tensor& out, int64_t window, int64_t split_from);
void log_softmax_rows(Tensor& x);
void softmax_rows(Tensor& x);

// The elements of an F32 / F16 / BF16 / quantised tensor as floats (norm weights, biases): F32
// is returned in place, anything else is converted into `buf`.
const float* as_f32(const Tensor& t, std::vector<float>& buf);
// Row-by-row conversion of any dtype to F32 / F16 / BF16 (convert.cpp).
Tensor to_dtype(const Tensor& t, DType to);

}  // namespace skv::backend::cpu
