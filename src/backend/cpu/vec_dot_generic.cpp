// Portable scalar kernels (the table used with SKV_CPU_ISA=generic and on CPUs without
// AVX2). Written plainly: they are also the second opinion the SIMD kernels are tested
// against, so clarity wins over speed here.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "backend/cpu/kernels.h"

namespace skv::backend::cpu {

namespace {

void quantize_q8a(const float* x, BlockQ8A* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* xb = x + b * QK;
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; ++j) {
      const int q = static_cast<int>(std::nearbyint(xb[j] * id));  // ties to even, like the SIMD path
      y[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

// Unpacked weight block: 32 integer values, scale, and offset so that w = d * q + m.
struct WBlock {
  int q[QK];
  float d, m;
};

inline void unpack(const BlockQ4_1& b, WBlock& u) {
  for (int j = 0; j < QK / 2; ++j) {
    u.q[j] = b.qs[j] & 0x0f;
    u.q[j + QK / 2] = b.qs[j] >> 4;
  }
  u.d = fp16_to_fp32(b.d);
  u.m = fp16_to_fp32(b.m);
}
inline void unpack(const BlockQ4_0& b, WBlock& u) {
  for (int j = 0; j < QK / 2; ++j) {
    u.q[j] = b.qs[j] & 0x0f;
    u.q[j + QK / 2] = b.qs[j] >> 4;
  }
  u.d = fp16_to_fp32(b.d);
  u.m = -8.0f * u.d;  // d * (q - 8) = d * q - 8 d
}
inline void unpack(const BlockQ8_0& b, WBlock& u) {
  for (int j = 0; j < QK; ++j) u.q[j] = b.qs[j];
  u.d = fp16_to_fp32(b.d);
  u.m = 0.0f;
}
inline void unpack_q5(const uint8_t* qs, const uint8_t* qh_bytes, WBlock& u) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < QK / 2; ++j) {
    u.q[j] = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    u.q[j + QK / 2] = (qs[j] >> 4) | static_cast<int>(((qh >> (j + QK / 2)) & 1u) << 4);
  }
}
inline void unpack(const BlockQ5_0& b, WBlock& u) {
  unpack_q5(b.qs, b.qh, u);
  u.d = fp16_to_fp32(b.d);
  u.m = -16.0f * u.d;  // d * (q - 16) = d * q - 16 d
}
inline void unpack(const BlockQ5_1& b, WBlock& u) {
  unpack_q5(b.qs, b.qh, u);
  u.d = fp16_to_fp32(b.d);
  u.m = fp16_to_fp32(b.m);
}

// sum_j (d_w q_w + m_w) * d_a q_a = d_w d_a sum(q_w q_a) + m_w * s_a.
template <class Block>
void gemv_q(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
            int64_t k, float* y, int64_t ldy) {
  const int64_t nb = k / QK;
  WBlock u;
  for (int64_t r = 0; r < rows; ++r) {
    const Block* wr = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * w_stride);
    for (int64_t a = 0; a < na; ++a) {
      const BlockQ8A* ar = act + a * act_stride;
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        unpack(wr[b], u);
        int sumi = 0;
        for (int j = 0; j < QK; ++j) sumi += u.q[j] * ar[b].qs[j];
        acc += u.d * ar[b].d * static_cast<float>(sumi) + u.m * ar[b].s;
      }
      y[a * ldy + r] = acc;
    }
  }
}

// K-quants. A super-block of 256 weights meets 8 consecutive activation blocks; the integer
// sum of each is scaled by the weight sub-block's scale and the activation block's d.
//
// Q4_K / Q5_K: sub-block j (32 values) is w = (d sc_j) q - (dmin m_j), so its dot with an
// activation block is (d sc_j) d_a sum(q q_a) - (dmin m_j) s_a, as for Q4_1.
template <class Block>
void unpack_k(const Block& b, int q[QK_K], float dsc[8], float dmn[8]) {
  uint8_t sc[8], m[8];
  k_scales_mins(b.scales, sc, m);
  const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    dsc[j] = d * sc[j];
    dmn[j] = dmin * m[j];
    const uint8_t* qs = b.qs + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) {
      q[32 * j + l] = (qs[l] >> (4 * (j % 2))) & 0x0f;
      if constexpr (std::is_same_v<Block, BlockQ5_K>) q[32 * j + l] |= ((b.qh[l] >> j) & 1) << 4;
    }
  }
}

template <class Block>
void gemv_k(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
            int64_t k, float* y, int64_t ldy) {
  int q[QK_K];
  float dsc[8], dmn[8];
  for (int64_t r = 0; r < rows; ++r) {
    const Block* wr = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * w_stride);
    for (int64_t a = 0; a < na; ++a) {
      float acc = 0.0f;
      for (int64_t sb = 0; sb < k / QK_K; ++sb) {
        unpack_k(wr[sb], q, dsc, dmn);
        const BlockQ8A* ab = act + a * act_stride + sb * 8;
        for (int j = 0; j < 8; ++j) {
          int sumi = 0;
          for (int l = 0; l < QK; ++l) sumi += q[32 * j + l] * ab[j].qs[l];
          acc += dsc[j] * ab[j].d * static_cast<float>(sumi) - dmn[j] * ab[j].s;
        }
      }
      y[a * ldy + r] = acc;
    }
  }
}

// Q6_K: w = (d sc_g) (q - 32) with a scale per 16 values, so an activation block spans two
// groups. q - 32 and the int8 scales are exact integers, so each block's sum
// sc_lo sum_lo((q - 32) q_a) + sc_hi sum_hi((q - 32) q_a) stays an integer and only d d_a is
// applied in float; no offset term remains.
void gemv_q6_k(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
               int64_t k, float* y, int64_t ldy) {
  int q[QK_K];
  for (int64_t r = 0; r < rows; ++r) {
    const BlockQ6_K* wr = reinterpret_cast<const BlockQ6_K*>(static_cast<const uint8_t*>(w) + r * w_stride);
    for (int64_t a = 0; a < na; ++a) {
      float acc = 0.0f;
      for (int64_t sb = 0; sb < k / QK_K; ++sb) {
        const BlockQ6_K& b = wr[sb];
        for (int e = 0; e < QK_K; ++e) {
          const int h = e / 128, kq = (e % 128) / 32, l = e % 32;
          const int lo = (b.ql[64 * h + 32 * (kq % 2) + l] >> (4 * (kq / 2))) & 0x0f;
          q[e] = (lo | (((b.qh[32 * h + l] >> (2 * kq)) & 3) << 4)) - 32;
        }
        const float d = fp16_to_fp32(b.d);
        const BlockQ8A* ab = act + a * act_stride + sb * 8;
        for (int j = 0; j < 8; ++j) {
          int s0 = 0, s1 = 0;
          for (int l = 0; l < 16; ++l) s0 += q[32 * j + l] * ab[j].qs[l];
          for (int l = 16; l < 32; ++l) s1 += q[32 * j + l] * ab[j].qs[l];
          const int sumi = b.scales[2 * j] * s0 + b.scales[2 * j + 1] * s1;
          acc += d * ab[j].d * static_cast<float>(sumi);
        }
      }
      y[a * ldy + r] = acc;
    }
  }
}

inline float load_f32(const float* p, int64_t j) { return p[j]; }
inline float load_f32(const uint16_t* p, int64_t j) { return fp16_to_fp32(p[j]); }
struct Bf16 {
  uint16_t v;
};
inline float load_f32(const Bf16* p, int64_t j) { return bf16_to_fp32(p[j].v); }

template <class T>
void gemv_f(const void* w, size_t w_stride, int64_t rows, const float* x, int64_t ldx, int64_t na, int64_t k, float* y,
            int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* wr = reinterpret_cast<const T*>(static_cast<const uint8_t*>(w) + r * w_stride);
    for (int64_t a = 0; a < na; ++a) {
      const float* xa = x + a * ldx;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= k; j += 8)
        for (int l = 0; l < 8; ++l) acc[l] += load_f32(wr, j + l) * xa[j + l];
      for (; j < k; ++j) acc[0] += load_f32(wr, j) * xa[j];
      y[a * ldy + r] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
  }
}

void to_float_f16(const void* src, float* dst, int64_t k) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t j = 0; j < k; ++j) dst[j] = fp16_to_fp32(s[j]);
}
void to_float_bf16(const void* src, float* dst, int64_t k) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t j = 0; j < k; ++j) dst[j] = bf16_to_fp32(s[j]);
}
void to_float_q8_0(const void* src, float* dst, int64_t k) {
  dequantize_row_q8_0(static_cast<const BlockQ8_0*>(src), dst, k);
}
void to_float_q4_0(const void* src, float* dst, int64_t k) {
  dequantize_row_q4_0(static_cast<const BlockQ4_0*>(src), dst, k);
}
void to_float_q4_1(const void* src, float* dst, int64_t k) {
  dequantize_row_q4_1(static_cast<const BlockQ4_1*>(src), dst, k);
}
void to_float_q5_0(const void* src, float* dst, int64_t k) {
  dequantize_row_q5_0(static_cast<const BlockQ5_0*>(src), dst, k);
}
void to_float_q5_1(const void* src, float* dst, int64_t k) {
  dequantize_row_q5_1(static_cast<const BlockQ5_1*>(src), dst, k);
}
void to_float_q4_k(const void* src, float* dst, int64_t k) {
  dequantize_row_q4_K(static_cast<const BlockQ4_K*>(src), dst, k);
}
void to_float_q5_k(const void* src, float* dst, int64_t k) {
  dequantize_row_q5_K(static_cast<const BlockQ5_K*>(src), dst, k);
}
void to_float_q6_k(const void* src, float* dst, int64_t k) {
  dequantize_row_q6_K(static_cast<const BlockQ6_K*>(src), dst, k);
}

// ---- FP8 rows: the row's F32 scale, then E4M3 bytes.

struct E4M3 {
  float f[256];
  uint16_t bf[256];
  E4M3() {
    for (int i = 0; i < 256; ++i) {
      f[i] = e4m3_to_fp32(static_cast<uint8_t>(i));
      bf[i] = fp32_to_bf16(f[i]);  // exact: 4 significant bits
    }
  }
};
const E4M3& e4m3() {
  static const E4M3 t;
  return t;
}
inline const uint8_t* fp8_bytes(const void* row) { return static_cast<const uint8_t*>(row) + sizeof(float); }

void to_float_fp8(const void* src, float* dst, int64_t k) {
  const float s = fp8_row_scale(src), *lut = e4m3().f;
  const uint8_t* q = fp8_bytes(src);
  for (int64_t j = 0; j < k; ++j) dst[j] = s * lut[q[j]];
}

void gemv_fp8(const void* w, size_t w_stride, int64_t rows, const float* x, int64_t ldx, int64_t na, int64_t k,
              float* y, int64_t ldy) {
  const float* lut = e4m3().f;
  for (int64_t r = 0; r < rows; ++r) {
    const void* row = static_cast<const uint8_t*>(w) + r * w_stride;
    const float s = fp8_row_scale(row);
    const uint8_t* q = fp8_bytes(row);
    for (int64_t a = 0; a < na; ++a) {
      const float* xa = x + a * ldx;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= k; j += 8)
        for (int l = 0; l < 8; ++l) acc[l] += lut[q[j + l]] * xa[j + l];
      for (; j < k; ++j) acc[0] += lut[q[j]] * xa[j];
      y[a * ldy + r] = s * (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
    }
  }
}

void fp8_to_bf16(const void* row, uint16_t* dst, int64_t k) {
  const uint16_t* lut = e4m3().bf;
  const uint8_t* q = fp8_bytes(row);
  for (int64_t j = 0; j < k; ++j) dst[j] = lut[q[j]];
}

void gemm_bf16(const uint16_t* w, int64_t ldw, int64_t rows, const uint16_t* x, int64_t ldx, int64_t na, int64_t k,
               float* y, int64_t ldy) {
  for (int64_t a = 0; a < na; ++a)
    for (int64_t r = 0; r < rows; ++r) {
      const uint16_t *wr = w + r * ldw, *xa = x + a * ldx;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= k; j += 8)
        for (int l = 0; l < 8; ++l) acc[l] += bf16_to_fp32(wr[j + l]) * bf16_to_fp32(xa[j + l]);
      for (; j < k; ++j) acc[0] += bf16_to_fp32(wr[j]) * bf16_to_fp32(xa[j]);
      y[a * ldy + r] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
}

float sum_squares(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[j + l] * x[j + l];
  for (; j < n; ++j) acc[0] += x[j] * x[j];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void mul_scale(const float* x, float s, const float* w, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] * s) * w[j];
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += x[j];
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
}

void attn(const float* q, int64_t q_stride, int64_t G, const float* k, const float* v, int64_t kv_stride, int64_t T,
          int64_t D, float scale, float* o, int64_t o_stride, float* m, float* l, bool init) {
  constexpr int64_t kTile = kAttnTile;
  float s[kTile];
  for (int64_t g = 0; g < G && init; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
    for (int64_t d = 0; d < D; ++d) o[g * o_stride + d] = 0.0f;
  }
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    const int64_t tn = T - t0 < kTile ? T - t0 : kTile;
    for (int64_t g = 0; g < G; ++g) {
      const float* qg = q + g * q_stride;
      float* og = o + g * o_stride;
      float mt = -INFINITY;
      for (int64_t t = 0; t < tn; ++t) {
        const float* kt = k + (t0 + t) * kv_stride;
        float dot = 0.0f;
        for (int64_t d = 0; d < D; ++d) dot += qg[d] * kt[d];
        s[t] = dot * scale;
        mt = std::fmax(mt, s[t]);
      }
      if (mt > m[g]) {
        const float corr = std::exp(m[g] - mt);  // 0 on the first tile
        l[g] *= corr;
        for (int64_t d = 0; d < D; ++d) og[d] *= corr;
        m[g] = mt;
      }
      for (int64_t t = 0; t < tn; ++t) {
        const float p = std::exp(s[t] - m[g]);
        l[g] += p;
        const float* vt = v + (t0 + t) * kv_stride;
        for (int64_t d = 0; d < D; ++d) og[d] += p * vt[d];
      }
    }
  }
}

const Kernels kGeneric = {
    .isa = Isa::Generic,
    .quantize_q8a = quantize_q8a,
    .gemv_q8_0 = gemv_q<BlockQ8_0>,
    .gemv_q4_0 = gemv_q<BlockQ4_0>,
    .gemv_q4_1 = gemv_q<BlockQ4_1>,
    .gemv_q5_0 = gemv_q<BlockQ5_0>,
    .gemv_q5_1 = gemv_q<BlockQ5_1>,
    .gemv_q4_k = gemv_k<BlockQ4_K>,
    .gemv_q5_k = gemv_k<BlockQ5_K>,
    .gemv_q6_k = gemv_q6_k,
    .gemv_f32 = gemv_f<float>,
    .gemv_f16 = gemv_f<uint16_t>,
    .gemv_bf16 = gemv_f<Bf16>,
    .to_float_f16 = to_float_f16,
    .to_float_bf16 = to_float_bf16,
    .to_float_q8_0 = to_float_q8_0,
    .to_float_q4_0 = to_float_q4_0,
    .to_float_q4_1 = to_float_q4_1,
    .to_float_q5_0 = to_float_q5_0,
    .to_float_q5_1 = to_float_q5_1,
    .to_float_q4_k = to_float_q4_k,
    .to_float_q5_k = to_float_q5_k,
    .to_float_q6_k = to_float_q6_k,
    .to_float_fp8 = to_float_fp8,
    .gemv_fp8 = gemv_fp8,
    .fp8_to_bf16 = fp8_to_bf16,
    .gemm_bf16 = gemm_bf16,
    .sum_squares = sum_squares,
    .mul_scale = mul_scale,
    .add = add,
    .silu_mul = silu_mul,
    .attn = attn,
};

}  // namespace

const Kernels* generic_kernels() { return &kGeneric; }

}  // namespace skv::backend::cpu
