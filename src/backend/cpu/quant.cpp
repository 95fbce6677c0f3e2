// Scalar reference conversions. Integer-only fp16 / bf16 rounding so the results do not
// depend on the floating-point environment (rounding mode, FTZ/DAZ) or on F16C.
// The block quantisers replicate ggml's quantize_row_*_ref (ggml-quants.c) operation for
// operation, so a block quantised here is byte-identical to ggml's.
#include "backend/cpu/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace skv::backend::cpu {

namespace {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The block's element of largest magnitude, sign kept (the first one on ties), as ggml's
// Q4_0 / Q5_0 reference quantisers pick it.
float signed_absmax(const float* xb) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK; ++j)
    if (amax < std::fabs(xb[j])) {
      amax = std::fabs(xb[j]);
      max = xb[j];
    }
  return max;
}

// The block's range, as ggml's Q4_1 / Q5_1 reference quantisers scan it.
void block_min_max(const float* xb, float& min, float& max) {
  min = 3.402823466e+38f;
  max = -3.402823466e+38f;
  for (int j = 0; j < QK; ++j) {
    if (xb[j] < min) min = xb[j];
    if (xb[j] > max) max = xb[j];
  }
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return float_of(sign);  // +-0
    // Subnormal: value = mant * 2^-24. Normalise into an fp32 normal.
    uint32_t e = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    mant &= 0x3ffu;
    return float_of(sign | (e << 23) | (mant << 13));
  }
  if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));  // inf / nan (payload kept)
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {  // inf or nan; nan stays nan (quiet, top payload bits kept)
    if (x == 0x7f800000u) return sign | 0x7c00u;
    return static_cast<uint16_t>(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
  }
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (x < 0x38800000u) {                        // below 2^-14: fp16 subnormal or zero
    if (x < 0x33000000u) return sign;           // below 2^-25 (2^-25 itself ties to even 0)
    const uint32_t e = x >> 23;                 // 102 .. 112
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 .. 24: value in units of 2^-24 is m >> shift
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | q);
  }
  // Normal: rebias exponent, round mantissa to 10 bits (carry may bump the exponent, and
  // 65504 + ulp/2 was handled above, so no overflow past inf).
  x += 0xfffu + ((x >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((x - 0x38000000u) >> 13));
}

float bf16_to_fp32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK; ++j) y[i * QK + j] = x[i].qs[j] * d;
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK / 2; ++j) {
      const int x0 = (x[i].qs[j] & 0x0f) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      y[i * QK + j] = x0 * d;
      y[i * QK + j + QK / 2] = x1 * d;
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < QK / 2; ++j) {
      const int x0 = x[i].qs[j] & 0x0f;
      const int x1 = x[i].qs[j] >> 4;
      y[i * QK + j] = x0 * d + m;
      y[i * QK + j + QK / 2] = x1 * d + m;
    }
  }
}

// ggml quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d) (half away from zero).
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(xb[j] * id));
  }
}

// ggml quantize_row_q4_0_ref: the element of largest magnitude (first one on ties, sign
// kept) maps to -8: d = max / -8, q = min(15, (int8)(x / d + 8.5)) (truncation).
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    const float max = signed_absmax(xb);
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK / 2; ++j) {
      const float x0 = xb[j] * id;
      const float x1 = xb[QK / 2 + j] * id;
      const int8_t t0 = static_cast<int8_t>(x0 + 8.5f);
      const int8_t t1 = static_cast<int8_t>(x1 + 8.5f);
      const uint8_t xi0 = static_cast<uint8_t>(t0 < 15 ? t0 : 15);
      const uint8_t xi1 = static_cast<uint8_t>(t1 < 15 ? t1 : 15);
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// ggml quantize_row_q4_1_ref: d = (max - min) / 15, m = min,
// q = min(15, (int8)((x - min) / d + 0.5)).
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    float min, max;
    block_min_max(xb, min, max);
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < QK / 2; ++j) {
      const float x0 = (xb[j] - min) * id;
      const float x1 = (xb[QK / 2 + j] - min) * id;
      const int8_t t0 = static_cast<int8_t>(x0 + 0.5f);
      const int8_t t1 = static_cast<int8_t>(x1 + 0.5f);
      const uint8_t xi0 = static_cast<uint8_t>(t0 < 15 ? t0 : 15);
      const uint8_t xi1 = static_cast<uint8_t>(t1 < 15 ? t1 : 15);
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// ---- Q5_0 / Q5_1: Q4's nibbles plus a fifth bit per element in a little-endian 32-bit word.

namespace {

inline uint32_t fifth_bits(const uint8_t qh[4]) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

// Element j and j + 16 of a Q5 block as 0..31.
inline void q5_pair(const uint8_t* qs, uint32_t qh, int j, int& lo, int& hi) {
  lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
  hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + QK / 2)) & 1u) << 4);
}

void pack_q5(const uint8_t* q, uint8_t qs[QK / 2], uint8_t qh[4]) {
  uint32_t h = 0;
  for (int j = 0; j < QK / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4));
    h |= static_cast<uint32_t>(q[j] >> 4) << j;
    h |= static_cast<uint32_t>(q[j + QK / 2] >> 4) << (j + QK / 2);
  }
  std::memcpy(qh, &h, 4);
}

}  // namespace

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint32_t qh = fifth_bits(x[i].qh);
    for (int j = 0; j < QK / 2; ++j) {
      int lo, hi;
      q5_pair(x[i].qs, qh, j, lo, hi);
      y[i * QK + j] = (lo - 16) * d;
      y[i * QK + j + QK / 2] = (hi - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    const uint32_t qh = fifth_bits(x[i].qh);
    for (int j = 0; j < QK / 2; ++j) {
      int lo, hi;
      q5_pair(x[i].qs, qh, j, lo, hi);
      y[i * QK + j] = lo * d + m;
      y[i * QK + j + QK / 2] = hi * d + m;
    }
  }
}

// ggml quantize_row_q5_0_ref: as Q4_0 with 32 levels: d = max / -16,
// q = min(31, (int8)(x / d + 16.5)).
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    const float max = signed_absmax(xb);
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint8_t q[QK];
    for (int j = 0; j < QK; ++j) {
      const int8_t t = static_cast<int8_t>(xb[j] * id + 16.5f);
      q[j] = static_cast<uint8_t>(t < 31 ? t : 31);
    }
    pack_q5(q, y[i].qs, y[i].qh);
  }
}

// ggml quantize_row_q5_1_ref: d = (max - min) / 31, m = min, q = (uint8)((x - min) / d + 0.5)
// (no clamp: the largest value gives 31.5 at most).
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t n) {
  for (int64_t i = 0; i < n / QK; ++i) {
    const float* xb = x + i * QK;
    float min, max;
    block_min_max(xb, min, max);
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint8_t q[QK];
    for (int j = 0; j < QK; ++j) q[j] = static_cast<uint8_t>((xb[j] - min) * id + 0.5f);
    pack_q5(q, y[i].qs, y[i].qh);
  }
}

void dequantize_row(DType t, const void* x, float* y, int64_t n) {
  switch (t) {
    case DType::Q8_0:
      return dequantize_row_q8_0(static_cast<const BlockQ8_0*>(x), y, n);
    case DType::Q4_0:
      return dequantize_row_q4_0(static_cast<const BlockQ4_0*>(x), y, n);
    case DType::Q4_1:
      return dequantize_row_q4_1(static_cast<const BlockQ4_1*>(x), y, n);
    case DType::Q5_0:
      return dequantize_row_q5_0(static_cast<const BlockQ5_0*>(x), y, n);
    case DType::Q5_1:
      return dequantize_row_q5_1(static_cast<const BlockQ5_1*>(x), y, n);
    case DType::Q4_K:
      return dequantize_row_q4_K(static_cast<const BlockQ4_K*>(x), y, n);
    case DType::Q5_K:
      return dequantize_row_q5_K(static_cast<const BlockQ5_K*>(x), y, n);
    case DType::Q6_K:
      return dequantize_row_q6_K(static_cast<const BlockQ6_K*>(x), y, n);
    case DType::MXFP8:
      return dequantize_row_mxfp8(static_cast<const BlockMXFP8*>(x), y, n);
    case DType::FP8:
      return dequantize_row_fp8(x, y, n);
    case DType::F8_E4M3:
      for (int64_t i = 0; i < n; ++i) y[i] = e4m3_to_fp32(static_cast<const uint8_t*>(x)[i]);
      return;
    default:
      fail_internal("dequantize_row: ", dtype_name(t), " is not a block format");
  }
}

void quantize_row(DType t, const float* x, void* y, int64_t n) {
  switch (t) {
    case DType::Q8_0:
      return quantize_row_q8_0(x, static_cast<BlockQ8_0*>(y), n);
    case DType::Q4_0:
      return quantize_row_q4_0(x, static_cast<BlockQ4_0*>(y), n);
    case DType::Q4_1:
      return quantize_row_q4_1(x, static_cast<BlockQ4_1*>(y), n);
    case DType::Q5_0:
      return quantize_row_q5_0(x, static_cast<BlockQ5_0*>(y), n);
    case DType::Q5_1:
      return quantize_row_q5_1(x, static_cast<BlockQ5_1*>(y), n);
    case DType::Q4_K:
      return quantize_row_q4_K(x, static_cast<BlockQ4_K*>(y), n);
    case DType::Q5_K:
      return quantize_row_q5_K(x, static_cast<BlockQ5_K*>(y), n);
    case DType::Q6_K:
      return quantize_row_q6_K(x, static_cast<BlockQ6_K*>(y), n);
    case DType::MXFP8:
      return quantize_row_mxfp8(x, static_cast<BlockMXFP8*>(y), n);
    case DType::FP8:
      return quantize_row_fp8(x, y, n);
    default:
      fail_internal("quantize_row: ", dtype_name(t), " is not a block format");
  }
}

// ---- MXFP8

float e4m3_to_fp32(uint8_t b) {
  const float sign = (b & 0x80) ? -1.0f : 1.0f;
  const int e = (b >> 3) & 0xF, m = b & 0x7;
  if (e == 0xF && m == 0x7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -9);  // subnormal: m * 2^-9
  return sign * std::ldexp(1.0f + m / 8.0f, e - 7);
}

uint8_t fp32_to_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7F;
  if (a >= 448.0f) return sign | 0x7E;                           // saturate: E4M3 has no infinity
  if (a < 0.015625f) {                                           // below 2^-6: subnormals, steps of 2^-9
    const int q = static_cast<int>(std::nearbyint(a * 512.0f));  // 8 rounds up to the smallest normal
    return sign | static_cast<uint8_t>(q);
  }
  int e = 0;
  std::frexp(a, &e);                                               // a = m 2^e, m in [0.5, 1)
  int q = static_cast<int>(std::nearbyint(std::ldexp(a, 4 - e)));  // 8 .. 16: 1.mmm x 8
  int be = e + 6;                                                  // biased exponent of 2^(e - 1)
  if (q == 16) q = 8, ++be;
  if (be > 15 || (be == 15 && q - 8 > 6)) return sign | 0x7E;
  return sign | static_cast<uint8_t>(be << 3) | static_cast<uint8_t>(q - 8);
}

namespace {

struct E4M3Table {
  float v[256];
  E4M3Table() {
    for (int i = 0; i < 256; ++i) v[i] = e4m3_to_fp32(static_cast<uint8_t>(i));
  }
};
const E4M3Table& e4m3_table() {
  static const E4M3Table t;
  return t;
}

}  // namespace

void dequantize_row_mxfp8(const BlockMXFP8* x, float* y, int64_t n) {
  const float* lut = e4m3_table().v;
  for (int64_t b = 0; b < n / QK; ++b) {
    const float d = std::ldexp(1.0f, static_cast<int>(x[b].e) - 127);
    for (int j = 0; j < QK; ++j) y[b * QK + j] = d * lut[x[b].qs[j]];
  }
}

void quantize_row_mxfp8(const float* x, BlockMXFP8* y, int64_t n) {
  for (int64_t b = 0; b < n / QK; ++b) {
    const float* xb = x + b * QK;
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(xb[j]));
    // Smallest power of two 2^s with amax / 2^s <= 448, within E8M0's 2^-127 .. 2^127.
    int s = -127;
    if (amax > 0.0f && std::isfinite(amax)) {
      s = static_cast<int>(std::ceil(std::log2(amax / 448.0f)));
      if (std::ldexp(448.0f, s) < amax) ++s;  // log2 rounding
      s = std::min(127, std::max(-127, s));
    }
    y[b].e = static_cast<uint8_t>(s + 127);
    for (int j = 0; j < QK; ++j) y[b].qs[j] = fp32_to_e4m3(std::ldexp(xb[j], -s));
  }
}

}  // namespace skv::backend::cpu
