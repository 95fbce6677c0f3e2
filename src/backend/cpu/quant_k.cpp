// Scalar reference code of ggml's K-quants (Q4_K, Q5_K, Q6_K): the layouts of quant.h, the
// dequantisers the SIMD kernels and GGUF files are checked against, and simple quantisers for
// tests. Compiled for baseline x86-64 (no FMA contraction), so a dequantised value is ggml's
// float expression rounded the same way: (d * sc) * q - (dmin * m), or (d * sc) * (q - 32).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/quant.h"

namespace skv::backend::cpu {

namespace {

// Round half to even, as ggml's nearest_int (its 1.5 * 2^23 addition) does for the magnitudes here.
inline int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }

// Inverse of k_scales_mins: 8 scales and 8 mins (each < 64) into 12 bytes.
void pack_scales_mins(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
  }
}

// Q4_K / Q5_K: each sub-block's range [min(0, lo), hi] gives a step (hi - lo') / nmax and a
// min -lo'; the super-block's d and dmin are the largest of those over 63, and each sub-block
// stores its step and min as 6-bit multiples of them. The values are then quantised against
// the stored (rounded) step and min, so their error is what the block actually decodes to.
void quantize_k_superblock(const float* x, int nmax, uint16_t& d_out, uint16_t& dmin_out, uint8_t scales[12],
                           uint8_t L[QK_K]) {
  float step[8], mn[8], max_step = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float lo = x[32 * j], hi = x[32 * j];
    for (int l = 1; l < 32; ++l) lo = std::min(lo, x[32 * j + l]), hi = std::max(hi, x[32 * j + l]);
    lo = std::min(lo, 0.0f);  // the offset - dmin m is never positive
    step[j] = (hi - lo) / static_cast<float>(nmax);
    mn[j] = -lo;
    max_step = std::max(max_step, step[j]);
    max_min = std::max(max_min, mn[j]);
  }
  uint8_t sc[8], m[8];
  const float is = max_step > 0.0f ? 63.0f / max_step : 0.0f;
  const float im = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    // Round the step up so the sub-block's top value still fits in nmax steps.
    sc[j] = static_cast<uint8_t>(std::min(63, static_cast<int>(std::ceil(is * step[j]))));
    m[j] = static_cast<uint8_t>(std::min(63, nearest(im * mn[j])));
  }
  d_out = fp32_to_fp16(max_step / 63.0f);
  dmin_out = fp32_to_fp16(max_min / 63.0f);
  pack_scales_mins(sc, m, scales);
  const float d = fp16_to_fp32(d_out), dmin = fp16_to_fp32(dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float dq = d * sc[j], dm = dmin * m[j];
    for (int l = 0; l < 32; ++l) {
      const int q = dq != 0.0f ? nearest((x[32 * j + l] + dm) / dq) : 0;
      L[32 * j + l] = static_cast<uint8_t>(std::max(0, std::min(nmax, q)));
    }
  }
}

}  // namespace

void k_scales_mins(const uint8_t* b, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = b[j] & 63;
    m[j] = b[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((b[j + 8] & 0x0f) | ((b[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((b[j + 8] >> 4) | ((b[j + 4] >> 6) << 4));
  }
}

namespace {

// Q4_K and Q5_K decode alike; qh is null for Q4_K.
void dequantize_k_superblock(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* qs, const uint8_t* qh,
                             float* yb) {
  const float d = fp16_to_fp32(d16), dmin = fp16_to_fp32(dmin16);
  uint8_t sc[8], m[8];
  k_scales_mins(scales, sc, m);
  for (int j = 0; j < 8; ++j) {
    const float dj = d * sc[j], mj = dmin * m[j];
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0x0f) | (qh ? ((qh[l] >> j) & 1) << 4 : 0);
      yb[32 * j + l] = dj * v - mj;
    }
  }
}

}  // namespace

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i)
    dequantize_k_superblock(x[i].d, x[i].dmin, x[i].scales, x[i].qs, nullptr, y + i * QK_K);
}

void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i)
    dequantize_k_superblock(x[i].d, x[i].dmin, x[i].scales, x[i].qs, x[i].qh, y + i * QK_K);
}

void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    float* yb = y + i * QK_K;
    for (int e = 0; e < QK_K; ++e) {
      const int h = e / 128, k = (e % 128) / 32, l = e % 32;
      const int lo = (x[i].ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
      const int hi = (x[i].qh[32 * h + l] >> (2 * k)) & 3;
      yb[e] = d * x[i].scales[e / 16] * ((lo | (hi << 4)) - 32);
    }
  }
}

void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i) {
    quantize_k_superblock(x + i * QK_K, 15, y[i].d, y[i].dmin, y[i].scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i) {
    quantize_k_superblock(x + i * QK_K, 31, y[i].d, y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * c + l] = static_cast<uint8_t>((L[64 * c + l] & 0x0f) | ((L[64 * c + 32 + l] & 0x0f) << 4));
    for (int j = 0; j < 8; ++j)
      for (int l = 0; l < 32; ++l) y[i].qh[l] |= static_cast<uint8_t>((L[32 * j + l] >> 4) << j);
  }
}

// Q6_K: each group of 16 maps its value of largest magnitude to -32 (step = max / -32, as ggml's
// make_qx_quants without its search); the group steps are stored as int8 multiples of d, with
// the largest in magnitude at -128.
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float* xb = x + i * QK_K;
    float step[16], max_step = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float amax = 0.0f, max = 0.0f;
      for (int l = 0; l < 16; ++l)
        if (std::fabs(xb[16 * g + l]) > amax) amax = std::fabs(xb[16 * g + l]), max = xb[16 * g + l];
      step[g] = max / -32.0f;
      if (std::fabs(step[g]) > std::fabs(max_step)) max_step = step[g];
    }
    const float is = max_step != 0.0f ? -128.0f / max_step : 0.0f;
    y[i].d = fp32_to_fp16(max_step != 0.0f ? 1.0f / is : 0.0f);
    for (int g = 0; g < 16; ++g) y[i].scales[g] = static_cast<int8_t>(std::min(127, nearest(is * step[g])));
    const float d = fp16_to_fp32(y[i].d);
    uint8_t L[QK_K];
    for (int e = 0; e < QK_K; ++e) {
      const float dq = d * y[i].scales[e / 16];
      const int q = dq != 0.0f ? nearest(xb[e] / dq) : 0;
      L[e] = static_cast<uint8_t>(std::max(-32, std::min(31, q)) + 32);
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* q = L + 128 * h + l;  // q[0], q[32], q[64], q[96]: quarters 0..3
        y[i].ql[64 * h + l] = static_cast<uint8_t>((q[0] & 0x0f) | ((q[64] & 0x0f) << 4));
        y[i].ql[64 * h + 32 + l] = static_cast<uint8_t>((q[32] & 0x0f) | ((q[96] & 0x0f) << 4));
        y[i].qh[32 * h + l] =
            static_cast<uint8_t>((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
      }
  }
}

}  // namespace skv::backend::cpu
