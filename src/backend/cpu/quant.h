#pragma once
// ggml-compatible block layouts and scalar reference (de)quantisation. Everything here is
// the plain reference the SIMD kernels are tested against.
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace skv::backend::cpu {

constexpr int QK = 32;     // elements per block for Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1
constexpr int QK_K = 256;  // elements per super-block of the K-quants

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK];
};  // x = d * q
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[QK / 2];
};  // x = d * (q - 8)
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[QK / 2];
};  // x = d * q + m
// Nibble order (ggml): qs[j] low nibble is element j, high nibble is element j + 16.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK / 2];
};  // x = d * (q - 16)
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[QK / 2];
};  // x = d * q + m
// Q5: nibbles as Q4; bit j of the little-endian 32-bit qh is the fifth bit (16) of element j.
// MXFP8 (OCP Microscaling v1.0): x = 2^(e - 127) * e4m3(q). The scale is the power of two that
// brings the block's largest magnitude to at most 448 (E4M3's largest normal), so no element
// clips; e4m3 rounds to nearest even.
struct BlockMXFP8 {
  uint8_t e;
  uint8_t qs[QK];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockMXFP8) == 33 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);

// K-quants (ggml-common.h). A super-block of 256 values is 8 sub-blocks of 32 (Q4_K, Q5_K) or
// 16 of 16 (Q6_K), each with its own scale.
//
// Q4_K / Q5_K: sub-block j has a 6-bit scale sc_j and 6-bit min m_j (k_scales_mins below says
// where their bits are), x = (d sc_j) q - (dmin m_j), q in 0..15 (Q4_K) or 0..31 (Q5_K).
// Elements 64 c + l and 64 c + 32 + l (c < 4, l < 32) are the low and high nibble of
// qs[32 c + l]: sub-block 2 c is the low nibbles of those 32 bytes, 2 c + 1 the high ones.
// Q5_K's fifth bit of element 32 j + l is bit j of qh[l].
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
// Q6_K: x = (d scales[e / 16]) (q - 32), q in 0..63. In each half h of 128 values, element
// 128 h + 32 k + l (k < 4, l < 32) takes its low 4 bits from ql[64 h + 32 (k % 2) + l] (low
// nibble for k < 2, high for k >= 2) and its top 2 bits from bits 2k, 2k + 1 of qh[32 h + l].
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// The 8 scales and 8 mins of a Q4_K / Q5_K super-block from its 12 packed bytes: sub-blocks
// 0..3 keep theirs in the low 6 bits of bytes j (scale) and j + 4 (min); sub-blocks 4..7 keep
// the low 4 bits in the nibbles of byte j + 4 and the top 2 bits in the top bits of bytes j - 4
// (scale) and j (min).
void k_scales_mins(const uint8_t* packed, uint8_t sc[8], uint8_t m[8]);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even
float e4m3_to_fp32(uint8_t b);
uint8_t fp32_to_e4m3(float f);  // round to nearest even, saturating at +-448 (NaN stays NaN)

// Reference row conversions; n is a multiple of QK for the block formats.
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n);
void dequantize_row_mxfp8(const BlockMXFP8* x, float* y, int64_t n);
void quantize_row_mxfp8(const float* x, BlockMXFP8* y, int64_t n);
// Q5_0 / Q5_1: ggml's quantize_row_q5_*_ref, byte for byte.
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n);
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n);
// K-quants (quant_k.cpp); n is a multiple of QK_K. The dequantisers compute what ggml's do,
// operation for operation, so they give its floats bit for bit. The quantisers are not ggml's:
// they pick scales from each sub-block's range instead of ggml's weighted search, which is
// enough for tests and writers (any valid block decodes the same everywhere) and keeps them short.
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n);
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n);
void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n);
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n);

// FP8 rows (DType::FP8, compressed-tensors weights; quant_fp8.cpp): the row's leading F32
// scale s, then n E4M3 bytes q; x = s * e4m3(q). F8_E4M3 rows are the bytes alone (s = 1).
float fp8_row_scale(const void* row);
void dequantize_row_fp8(const void* row, float* y, int64_t n);
// s = max|x| / 448 (the symmetric min-max rule llm-compressor applies per channel; 1 for an
// all-zero row), q = e4m3(x / s).
void quantize_row_fp8(const float* x, void* row, int64_t n);
// v rounded to the nearest E4M3 value (ties to even, saturating at +-448), as a float: what
// e4m3_to_fp32(fp32_to_e4m3(v)) gives for finite v, without the table or frexp.
float round_to_e4m3(float v);
// Dynamic per-token activation quantisation, as GPU FP8 serving does it (vLLM's
// scaled_fp8_quant): s = max|x| / 448, xq = e4m3(x * (1 / s)), written as BF16 (exact).
// Returns s (1 for an all-zero row).
float quantize_act_fp8(const float* x, uint16_t* xq, int64_t n);

// Any quantised dtype's reference row conversion (n a multiple of its block size); throws
// skv::Error for a dtype that is not a block format.
void dequantize_row(DType t, const void* x, float* y, int64_t n);
void quantize_row(DType t, const float* x, void* y, int64_t n);

}  // namespace skv::backend::cpu
