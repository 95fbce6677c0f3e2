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
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even

// Reference row conversions; n is a multiple of QK for the block formats.
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n);

}  // namespace skv::backend::cpu
