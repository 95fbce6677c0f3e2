#pragma once
// ggml-compatible block layouts and scalar reference (de)quantisation. Everything here is
// the plain reference the SIMD kernels are tested against.
#include <cstddef>
#include <cstdint>

namespace skv::backend::cpu {

constexpr int QK = 32;  // elements per block for Q8_0 / Q4_0 / Q4_1

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
// MXFP8 (OCP Microscaling v1.0): x = 2^(e - 127) * e4m3(q). The scale is the power of two that
// brings the block's largest magnitude to at most 448 (E4M3's largest normal), so no element
// clips; e4m3 rounds to nearest even.
struct BlockMXFP8 {
  uint8_t e;
  uint8_t qs[QK];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockMXFP8) == 33);

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

}  // namespace skv::backend::cpu
