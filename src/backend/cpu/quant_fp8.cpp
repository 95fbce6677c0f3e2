// Reference code for FP8 rows (compressed-tensors weights held as DType::FP8) and for the
// dynamic per-token FP8 quantisation of activations.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/quant.h"

namespace skv::backend::cpu {

float fp8_row_scale(const void* row) {
  float s;
  std::memcpy(&s, row, sizeof s);
  return s;
}

void dequantize_row_fp8(const void* row, float* y, int64_t n) {
  const float s = fp8_row_scale(row);
  const uint8_t* q = static_cast<const uint8_t*>(row) + sizeof(float);
  for (int64_t i = 0; i < n; ++i) y[i] = s * e4m3_to_fp32(q[i]);
}

void quantize_row_fp8(const float* x, void* row, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float s = amax > 0.0f && std::isfinite(amax) ? amax / 448.0f : 1.0f;
  std::memcpy(row, &s, sizeof s);
  uint8_t* q = static_cast<uint8_t*>(row) + sizeof(float);
  for (int64_t i = 0; i < n; ++i) q[i] = fp32_to_e4m3(x[i] / s);
}

float round_to_e4m3(float v) {
  const float a = std::fabs(v);
  float r;
  if (a < 0.015625f) {
    // Below 2^-6 E4M3 steps by 2^-9, the spacing of floats in [2^14, 2^15): adding and
    // removing 2^14 rounds to that step, ties to even.
    r = (a + 16384.0f) - 16384.0f;
  } else {
    // Keep 3 of the 23 mantissa bits, ties to even.
    uint32_t u;
    std::memcpy(&u, &a, sizeof u);
    u += 0x7FFFFu + ((u >> 20) & 1u);
    u &= 0xFFF00000u;
    std::memcpy(&r, &u, sizeof r);
  }
  return std::copysign(std::min(r, 448.0f), v);
}

float quantize_act_fp8(const float* x, uint16_t* xq, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float s = amax > 0.0f && std::isfinite(amax) ? amax / 448.0f : 1.0f;
  const float inv = 1.0f / s;
  for (int64_t i = 0; i < n; ++i) {
    const float q = round_to_e4m3(x[i] * inv);
    uint32_t u;
    std::memcpy(&u, &q, sizeof u);
    xq[i] = static_cast<uint16_t>(u >> 16);  // 4 significant bits: the top half is exact
  }
  return s;
}

}  // namespace skv::backend::cpu
