// Portable scalar kernels (the table used with SKV_CPU_ISA=generic and on CPUs without
// AVX2). Written plainly: they are also the second opinion the SIMD kernels are tested
// against, so clarity wins over speed here.
#include <cmath>
#include <cstring>

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
    Isa::Generic,      quantize_q8a,  gemv_q<BlockQ8_0>, gemv_q<BlockQ4_0>,
    gemv_q<BlockQ4_1>, gemv_f<float>, gemv_f<uint16_t>,  gemv_f<Bf16>,
    to_float_f16,      to_float_bf16, to_float_q8_0,     to_float_q4_0,
    to_float_q4_1,     sum_squares,   mul_scale,         add,
    silu_mul,          attn,
};

}  // namespace

const Kernels* generic_kernels() { return &kGeneric; }

}  // namespace skv::backend::cpu
