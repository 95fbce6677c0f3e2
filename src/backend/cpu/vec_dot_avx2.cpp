// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; only reached after
// dispatch.cpp has checked the CPU). See kernels.h for the contract of each kernel and the
// rule that nothing here may instantiate inline code shared with baseline files.
//
// Integer dot products follow ggml's x86 scheme: 4-bit weights are unpacked to unsigned
// bytes 0..15 and multiplied with the signed 8-bit activations by vpmaddubsw (no
// saturation: |15 * 127 * 2| < 32767), pairs are widened by vpmaddwd against ones, and each
// block's int32 sums are scaled by d_w * d_a in float. Q4_0 is handled as Q4_1 with
// m = -8 d (so no sign trick is needed); Q8_0 x Q8 uses the sign trick (|w| * sign(a, w)).
// Q5_0 / Q5_1 are Q4_0 / Q4_1 with a fifth bit ORed into each byte (0..31: still no saturation).
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>

#include "backend/cpu/kernels.h"

namespace skv::backend::cpu {

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// 8 vectors -> one vector of their 8 horizontal sums.
inline __m256 hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7) {
  const __m256 t0 = _mm256_hadd_ps(a0, a1);
  const __m256 t1 = _mm256_hadd_ps(a2, a3);
  const __m256 t2 = _mm256_hadd_ps(a4, a5);
  const __m256 t3 = _mm256_hadd_ps(a6, a7);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);
  const __m256 u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// 16 bytes of packed nibbles -> 32 bytes 0..15; byte j < 16 is the low nibble of qs[j],
// byte 16 + j the high nibble (ggml element order).
inline __m256i nibbles(const uint8_t* qs) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

// exp(x) for float lanes, Cephes-style range reduction + degree-5 polynomial (about 1-2 ulp
// over the normal range). Inputs below -88.37 give 0, above 88.37 are clamped.
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  y = _mm256_fmadd_ps(y, x2, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  // 2^n; n in [-127, 128]. n = -127 gives exponent field 0 (result 0, fine for softmax).
  __m256i n = _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127));
  n = _mm256_max_epi32(n, _mm256_setzero_si256());
  n = _mm256_min_epi32(n, _mm256_set1_epi32(254));
  return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(n, 23)));
}

// ---------------------------------------------------------------- activation quantisation

void quantize_q8a(const float* x, BlockQ8A* y, int64_t k) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* xb = x + b * QK;
    __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
    __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                    _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    const float amax = hmax(mx);
    const float d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), kRound));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), kRound));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), kRound));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), kRound));
    const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), i0);
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

// ---------------------------------------------------------------- integer GEMV

// The GEMV works on 128-bit halves: Zen 1 splits every 256-bit op in two anyway, and with
// halves the two vpmaddubsw results of a 4-bit block (|15 * 127 * 2| each) can be added in
// int16 before the single vpmaddwd, which saves a multiply-port op per block; weight scale
// and offset come in one vcvtph2ps ([d, m] are adjacent) and meet the activation's [d, s] in
// one multiply: lane 0 = d_w d_a scales the int sums, lane 1 = m_w s_a is the offset term.
// R weight rows x NA activation rows per tile share the loads of both sides. Measured on the
// target (EPYC Zen 1): 2.4 ns per Q4_1 block against 4.3 for ggml's 256-bit scheme.
struct Q41 {
  using Block = BlockQ4_1;
  static constexpr bool kSigned = false, kFifth = false;
  // [d, m, 0, 0]
  static inline __m128 dm(const Block& b) {
    int v;
    __builtin_memcpy(&v, &b.d, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
  }
};
struct Q40 {
  using Block = BlockQ4_0;
  static constexpr bool kSigned = false, kFifth = false;
  // [d, -8 d, 0, 0]: d (q - 8) = d q - 8 d
  static inline __m128 dm(const Block& b) {
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(b.d));
    return _mm_mul_ps(_mm_broadcastss_ps(d), _mm_setr_ps(1.0f, -8.0f, 0.0f, 0.0f));
  }
};
struct Q80 {
  using Block = BlockQ8_0;
  static constexpr bool kSigned = true, kFifth = false;
  static inline __m128 dm(const Block& b) { return _mm_cvtph_ps(_mm_cvtsi32_si128(b.d)); }  // [d, 0, 0, 0]
};
struct Q51 {
  using Block = BlockQ5_1;
  static constexpr bool kSigned = false, kFifth = true;
  static inline __m128 dm(const Block& b) {  // [d, m, 0, 0], adjacent as in Q4_1
    int v;
    __builtin_memcpy(&v, &b.d, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
  }
};
struct Q50 {
  using Block = BlockQ5_0;
  static constexpr bool kSigned = false, kFifth = true;
  // [d, -16 d, 0, 0]: d (q - 16) = d q - 16 d
  static inline __m128 dm(const Block& b) {
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(b.d));
    return _mm_mul_ps(_mm_broadcastss_ps(d), _mm_setr_ps(1.0f, -16.0f, 0.0f, 0.0f));
  }
};

// 32 bits -> 32 bytes, 0x10 where the bit is set (byte i from bit i): each 128-bit lane
// spreads its two bytes of the broadcast word over 8 bytes each and tests one bit per byte.
inline __m256i fifth_bits(const uint8_t* qh) {
  int bits;
  __builtin_memcpy(&bits, qh, 4);
  const __m256i v = _mm256_shuffle_epi8(
      _mm256_set1_epi32(bits),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

// Elements 0..15 and 16..31 of a weight block as bytes (unsigned 0..15 for the 4-bit
// formats, signed for Q8_0).
template <class F>
inline void halves(const typename F::Block& b, __m128i& lo, __m128i& hi) {
  if constexpr (F::kSigned) {
    lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16));
  } else {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m128i m4 = _mm_set1_epi8(0x0f);
    lo = _mm_and_si128(t, m4);
    hi = _mm_and_si128(_mm_srli_epi16(t, 4), m4);
    if constexpr (F::kFifth) {
      const __m256i f = fifth_bits(b.qh);
      lo = _mm_or_si128(lo, _mm256_castsi256_si128(f));
      hi = _mm_or_si128(hi, _mm256_extracti128_si256(f, 1));
    }
  }
}

// 4 int32 partial sums of one block's 32 products, as floats.
template <class F>
inline __m128 block_dot(__m128i lo, __m128i hi, __m128i y0, __m128i y1) {
  const __m128i ones = _mm_set1_epi16(1);
  if constexpr (F::kSigned) {
    // |w| * sign(a, w); each vpmaddubsw lane is <= 2 * 127 * 127, so widen each half.
    const __m128i p0 = _mm_maddubs_epi16(_mm_sign_epi8(lo, lo), _mm_sign_epi8(y0, lo));
    const __m128i p1 = _mm_maddubs_epi16(_mm_sign_epi8(hi, hi), _mm_sign_epi8(y1, hi));
    return _mm_cvtepi32_ps(_mm_add_epi32(_mm_madd_epi16(p0, ones), _mm_madd_epi16(p1, ones)));
  } else {
    const __m128i s16 = _mm_add_epi16(_mm_maddubs_epi16(lo, y0), _mm_maddubs_epi16(hi, y1));
    return _mm_cvtepi32_ps(_mm_madd_epi16(s16, ones));
  }
}

template <class F, int R, int NA>
inline void qtile(const uint8_t* w, size_t ws, const BlockQ8A* act, int64_t as, int64_t nb, float* y, int64_t ldy) {
  using Block = typename F::Block;
  __m128 acc[R][NA], off[R][NA];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = off[r][a] = _mm_setzero_ps();
  const Block* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const Block*>(w + r * ws);
  for (int64_t b = 0; b < nb; ++b) {
    __m128i y0[NA], y1[NA];
    __m128 ds[NA];
    for (int a = 0; a < NA; ++a) {
      const BlockQ8A& ab = act[a * as + b];
      y0[a] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab.qs));
      y1[a] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab.qs + 16));
      ds[a] = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&ab.d)));  // [d, s, 0, 0]
    }
    for (int r = 0; r < R; ++r) {
      __m128i lo, hi;
      halves<F>(wr[r][b], lo, hi);
      const __m128 dm = F::dm(wr[r][b]);
      for (int a = 0; a < NA; ++a) {
        const __m128 prod = _mm_mul_ps(dm, ds[a]);  // [d_w d_a, m_w s_a, 0, 0]
        acc[r][a] = _mm_fmadd_ps(_mm_broadcastss_ps(prod), block_dot<F>(lo, hi, y0[a], y1[a]), acc[r][a]);
        if constexpr (!F::kSigned) off[r][a] = _mm_add_ps(off[r][a], prod);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) {
      __m128 s = acc[r][a];
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      const __m128 o = off[r][a];
      y[a * ldy + r] = _mm_cvtss_f32(s) + _mm_cvtss_f32(_mm_movehdup_ps(o));
    }
}

template <class F>
void gemv_q(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
            int64_t k, float* y, int64_t ldy) {
  const int64_t nb = k / QK;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  int64_t a = 0;
  for (; a + 2 <= na; a += 2) {  // pairs of activation rows: 2 x 2 tiles
    const BlockQ8A* ap = act + a * act_stride;
    float* yp = y + a * ldy;
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) qtile<F, 2, 2>(wb + r * w_stride, w_stride, ap, act_stride, nb, yp + r, ldy);
    if (r < rows) qtile<F, 1, 2>(wb + r * w_stride, w_stride, ap, act_stride, nb, yp + r, ldy);
  }
  if (a < na) {  // one activation row: 4 x 1 tiles
    const BlockQ8A* ap = act + a * act_stride;
    float* yp = y + a * ldy;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) qtile<F, 4, 1>(wb + r * w_stride, w_stride, ap, act_stride, nb, yp + r, ldy);
    for (; r < rows; ++r) qtile<F, 1, 1>(wb + r * w_stride, w_stride, ap, act_stride, nb, yp + r, ldy);
  }
}

// ---------------------------------------------------------------- K-quant GEMV

// A K-quant super-block meets 8 activation blocks; each is one 32-value weight sub-block, held
// in one 256-bit register here (unlike the 128-bit halves above: the K-quants need no int16 sum
// of two vpmaddubsw results, and on cores with full-width AVX2 units a 256-bit op costs what a
// 128-bit one does, halving the unpacking; measured in docs/benchmarks.md). Scales are unpacked
// once per super-block and weight row.
//
// Q4_K / Q5_K: like Q4_1 with per-sub-block d sc_j and m = -dmin m_j: the unsigned values'
// sums are scaled by d sc_j d_a in float, and the mins by dmin m_j s_a (8 lanes, one FMA per
// super-block into the same accumulator). The scale and min are 6-bit integers times an fp16,
// so d sc_j is exact.
//
// Q6_K: 16-value groups with int8 scales, so an activation block spans two groups, one per
// 128-bit lane. Summing (q - 32) q_a per group and multiplying by the group's scale stays in
// integers: vpmaddubsw of the unsigned q (0..63, pairs <= 2 * 63 * 127 < 2^15) minus
// vpmaddubsw(32, q_a), computed once per activation block for all weight rows, is
// sum (q - 32) q_a in int16 (|pair| <= 8128), and vpmaddwd against [sc_lo x 8, sc_hi x 8]
// widens and scales both groups at once; only d d_a remains for the float multiply. ggml
// instead carries per-16 activation sums (Q8_K's bsums) to subtract 32 sum q_a afterwards; our
// activations are per-32 blocks, and the subtraction in int16 costs one op.
struct KMinMax {
  static constexpr bool kMins = true;
  // [d sc_j] for j < 8 into dsc, [dmin m_j] into dmn. The 12 packed bytes as 3 words: scales
  // 0..3 are the low 6 bits of word 0's bytes, mins 0..3 of word 1's; scales 4..7 take their
  // low nibbles from word 2 and top bits from the top 2 bits of word 0's bytes, mins 4..7
  // their nibbles from word 2's high nibbles and top bits from word 1 (quant.h).
  static inline void scales(const uint8_t* packed, uint16_t d, uint16_t dmin, float* dsc, __m256& dmn) {
    uint32_t w[3];
    __builtin_memcpy(w, packed, 12);
    const uint64_t sc = (w[0] & 0x3f3f3f3fu) | static_cast<uint64_t>((w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u))
                                                   << 32;
    const uint64_t mn =
        (w[1] & 0x3f3f3f3fu) | static_cast<uint64_t>(((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u)) << 32;
    const __m256 fs = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(sc))));
    const __m256 fm = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(mn))));
    _mm256_store_ps(dsc, _mm256_mul_ps(fs, _mm256_set1_ps(h2f(d))));
    dmn = _mm256_mul_ps(fm, _mm256_set1_ps(h2f(dmin)));
  }
  // Sub-block j of the 4-bit part: low nibbles of qs[32 (j / 2) ..] for even j, high for odd.
  static inline __m256i nibbles(const uint8_t* qs, int j) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (j / 2)));
    return _mm256_and_si256(_mm256_srl_epi16(t, _mm_cvtsi32_si128(4 * (j & 1))), _mm256_set1_epi8(0x0f));
  }
};
struct Q4K : KMinMax {
  using Block = BlockQ4_K;
  static inline void prepare(const Block& b, float* dsc, __m256& dmn) { scales(b.scales, b.d, b.dmin, dsc, dmn); }
  static inline __m256i values(const Block& b, int j) { return nibbles(b.qs, j); }
};
struct Q5K : KMinMax {
  using Block = BlockQ5_K;
  static inline void prepare(const Block& b, float* dsc, __m256& dmn) { scales(b.scales, b.d, b.dmin, dsc, dmn); }
  // Plus bit j of qh[l] as 16.
  static inline __m256i values(const Block& b, int j) {
    const __m256i m = _mm256_set1_epi8(static_cast<char>(1 << j));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    return _mm256_or_si256(nibbles(b.qs, j),
                           _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, m), m), _mm256_set1_epi8(0x10)));
  }
};
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr bool kMins = false;
  static inline void prepare(const Block& b, float* dsc, __m256&) { _mm256_store_ps(dsc, _mm256_set1_ps(h2f(b.d))); }
  // Activation block j = 4 h + k (half h, quarter k): low 4 bits from ql[64 h + 32 (k % 2)]
  // (high nibbles for k >= 2), top 2 from bits 2k, 2k + 1 of qh[32 h] (quant.h); 0..63.
  static inline __m256i values(const Block& b, int j) {
    const int h = j / 4, k = j % 4;
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32 * (k % 2)));
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(l, _mm_cvtsi32_si128(4 * (k / 2))), _mm256_set1_epi8(0x0f));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(t, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(0x03));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
  }
  // [sc_2j x 8 (elements 0..15), sc_2j+1 x 8 (16..31)] as int16.
  static inline __m256i group_scales(const Block& b, int j) {
    return _mm256_set_m128i(_mm_set1_epi16(b.scales[2 * j + 1]), _mm_set1_epi16(b.scales[2 * j]));
  }
};

template <class F, int R, int NA>
inline void ktile(const uint8_t* w, size_t ws, const BlockQ8A* act, int64_t as, int64_t nsb, float* y, int64_t ldy) {
  using Block = typename F::Block;
  const __m256i ones = _mm256_set1_epi16(1), thirty_two = _mm256_set1_epi8(32);
  const __m256i s_index = _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70);  // BlockQ8A::s, 40-byte stride
  __m256 acc[R][NA];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm256_setzero_ps();
  const Block* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const Block*>(w + r * ws);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    alignas(32) float dsc[R][8];
    __m256 dmn[R];
    for (int r = 0; r < R; ++r) F::prepare(wr[r][sb], dsc[r], dmn[r]);
    const BlockQ8A* ab[NA];
    for (int a = 0; a < NA; ++a) ab[a] = act + a * as + sb * 8;
    if constexpr (F::kMins) {
      for (int a = 0; a < NA; ++a) {
        const __m256 sa = _mm256_i32gather_ps(&ab[a][0].s, s_index, 4);
        for (int r = 0; r < R; ++r) acc[r][a] = _mm256_fnmadd_ps(dmn[r], sa, acc[r][a]);
      }
    }
    for (int j = 0; j < 8; ++j) {
      __m256i ya[NA], ca[NA];
      for (int a = 0; a < NA; ++a) {
        ya[a] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[a][j].qs));
        if constexpr (!F::kMins) ca[a] = _mm256_maddubs_epi16(thirty_two, ya[a]);
      }
      for (int r = 0; r < R; ++r) {
        const __m256i q = F::values(wr[r][sb], j);
        __m256i gs = ones;  // vpmaddwd's multiplier: 1, or Q6_K's two group scales
        if constexpr (!F::kMins) gs = F::group_scales(wr[r][sb], j);
        for (int a = 0; a < NA; ++a) {
          __m256i p = _mm256_maddubs_epi16(q, ya[a]);
          if constexpr (!F::kMins) p = _mm256_sub_epi16(p, ca[a]);
          const __m256i isum = _mm256_madd_epi16(p, gs);
          acc[r][a] = _mm256_fmadd_ps(_mm256_set1_ps(dsc[r][j] * ab[a][j].d), _mm256_cvtepi32_ps(isum), acc[r][a]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) y[a * ldy + r] = hsum(acc[r][a]);
}

template <class F>
void gemv_k(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
            int64_t k, float* y, int64_t ldy) {
  const int64_t nsb = k / QK_K;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  int64_t a = 0;
  for (; a + 2 <= na; a += 2) {
    const BlockQ8A* ap = act + a * act_stride;
    float* yp = y + a * ldy;
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) ktile<F, 2, 2>(wb + r * w_stride, w_stride, ap, act_stride, nsb, yp + r, ldy);
    if (r < rows) ktile<F, 1, 2>(wb + r * w_stride, w_stride, ap, act_stride, nsb, yp + r, ldy);
  }
  if (a < na) {
    const BlockQ8A* ap = act + a * act_stride;
    float* yp = y + a * ldy;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) ktile<F, 4, 1>(wb + r * w_stride, w_stride, ap, act_stride, nsb, yp + r, ldy);
    for (; r < rows; ++r) ktile<F, 1, 1>(wb + r * w_stride, w_stride, ap, act_stride, nsb, yp + r, ldy);
  }
}

// ---------------------------------------------------------------- float GEMV

struct LF32 {
  using T = float;
  static inline __m256 load8(const T* p) { return _mm256_loadu_ps(p); }
  static inline float load1(const T* p) { return *p; }
};
struct LF16 {
  using T = uint16_t;
  static inline __m256 load8(const T* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static inline float load1(const T* p) { return h2f(*p); }
};
struct LBF16 {
  using T = uint16_t;
  static inline __m256 load8(const T* p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static inline float load1(const T* p) {
    const __m128i v = _mm_cvtsi32_si128(static_cast<int>(static_cast<uint32_t>(*p) << 16));
    return _mm_cvtss_f32(_mm_castsi128_ps(v));
  }
};

template <class L, int NA>
inline void frow(const typename L::T* w, const float* x, int64_t ldx, int64_t k, float* res, int64_t ldres) {
  __m256 acc0[NA], acc1[NA];
  for (int a = 0; a < NA; ++a) acc0[a] = acc1[a] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m256 w0 = L::load8(w + j), w1 = L::load8(w + j + 8);
    for (int a = 0; a < NA; ++a) {
      acc0[a] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + a * ldx + j), acc0[a]);
      acc1[a] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + a * ldx + j + 8), acc1[a]);
    }
  }
  for (; j + 8 <= k; j += 8) {
    const __m256 w0 = L::load8(w + j);
    for (int a = 0; a < NA; ++a) acc0[a] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + a * ldx + j), acc0[a]);
  }
  for (int a = 0; a < NA; ++a) {
    float s = hsum(_mm256_add_ps(acc0[a], acc1[a]));
    for (int64_t t = j; t < k; ++t) s += L::load1(w + t) * x[a * ldx + t];
    res[a * ldres] = s;
  }
}

template <class L>
void gemv_f(const void* w, size_t w_stride, int64_t rows, const float* x, int64_t ldx, int64_t na, int64_t k, float* y,
            int64_t ldy) {
  using T = typename L::T;
  for (int64_t r = 0; r < rows; ++r) {
    const T* wr = reinterpret_cast<const T*>(static_cast<const uint8_t*>(w) + r * w_stride);
    int64_t a = 0;
    for (; a + 4 <= na; a += 4) frow<L, 4>(wr, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
    switch (na - a) {
      case 3:
        frow<L, 3>(wr, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
        break;
      case 2:
        frow<L, 2>(wr, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
        break;
      case 1:
        frow<L, 1>(wr, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
        break;
      default:
        break;
    }
  }
}

// ---------------------------------------------------------------- FP8 rows

// 8 E4M3 bytes -> floats. The 7 bits below the sign placed at an F32's exponent-low /
// mantissa-high bits make e4m3 * 2^-120 exactly (its subnormals land on F32 subnormals), and
// one multiply by 2^120 rescales; needs DAZ off, which nothing here sets.
inline __m256 e4m3x8(__m128i b) {
  const __m256i v = _mm256_cvtepu8_epi32(b);
  const __m256i mag = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x7f)), 20);
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
  return _mm256_mul_ps(_mm256_castsi256_ps(_mm256_or_si256(mag, sign)), _mm256_set1_ps(0x1p120f));
}
struct LE4M3 {
  using T = uint8_t;
  static inline __m256 load8(const T* p) { return e4m3x8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static inline float load1(const T* p) { return e4m3_to_fp32(*p); }
};

void gemv_fp8(const void* w, size_t w_stride, int64_t rows, const float* x, int64_t ldx, int64_t na, int64_t k,
              float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + r * w_stride;
    gemv_f<LE4M3>(row + sizeof(float), 0, 1, x, ldx, na, k, y + r, ldy);
    const float s = fp8_row_scale(row);
    for (int64_t a = 0; a < na; ++a) y[a * ldy + r] *= s;
  }
}

void to_float_fp8(const void* src, float* dst, int64_t k) {
  const uint8_t* q = static_cast<const uint8_t*>(src) + sizeof(float);
  const float s = fp8_row_scale(src);
  const __m256 vs = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) _mm256_storeu_ps(dst + j, _mm256_mul_ps(LE4M3::load8(q + j), vs));
  for (; j < k; ++j) dst[j] = s * e4m3_to_fp32(q[j]);
}

inline uint16_t bf16_bits(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>(u >> 16);
}

// E4M3 values need 4 significant bits, so a BF16 is the F32's top half, exactly.
void fp8_to_bf16(const void* row, uint16_t* dst, int64_t k) {
  const uint8_t* q = static_cast<const uint8_t*>(row) + sizeof(float);
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m256i lo = _mm256_srli_epi32(_mm256_castps_si256(LE4M3::load8(q + j)), 16);
    const __m256i hi = _mm256_srli_epi32(_mm256_castps_si256(LE4M3::load8(q + j + 8)), 16);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), packed);
  }
  for (; j < k; ++j) dst[j] = bf16_bits(e4m3_to_fp32(q[j]));
}

inline __m256 bf16x8(const uint16_t* p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
inline float bf16_1(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}

// R weight rows against one activation row, the activation widened once for all R.
template <int R>
inline void bf16_tile(const uint16_t* w, int64_t ldw, const uint16_t* x, int64_t k, float* y) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    const __m256 xv = bf16x8(x + j);
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(bf16x8(w + r * ldw + j), xv, acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    float s = hsum(acc[r]);
    for (int64_t t = j; t < k; ++t) s += bf16_1(w[r * ldw + t]) * bf16_1(x[t]);
    y[r] = s;
  }
}

void gemm_bf16(const uint16_t* w, int64_t ldw, int64_t rows, const uint16_t* x, int64_t ldx, int64_t na, int64_t k,
               float* y, int64_t ldy) {
  for (int64_t a = 0; a < na; ++a) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) bf16_tile<4>(w + r * ldw, ldw, x + a * ldx, k, y + a * ldy + r);
    for (; r < rows; ++r) bf16_tile<1>(w + r * ldw, ldw, x + a * ldx, k, y + a * ldy + r);
  }
}

// ---------------------------------------------------------------- to float

template <class L>
void to_float(const void* src, float* dst, int64_t k) {
  const typename L::T* s = static_cast<const typename L::T*>(src);
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) _mm256_storeu_ps(dst + j, L::load8(s + j));
  for (; j < k; ++j) dst[j] = L::load1(s + j);
}

// 32 bytes (signed) -> 4 x 8 floats, times d plus m.
inline void store_block(__m256i q, float d, float m, float* dst) {
  const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m128i parts[4] = {lo, _mm_unpackhi_epi64(lo, lo), hi, _mm_unpackhi_epi64(hi, hi)};
  for (int i = 0; i < 4; ++i) {
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[i]));
    _mm256_storeu_ps(dst + 8 * i, _mm256_fmadd_ps(f, vd, vm));
  }
}

void to_float_q8_0(const void* src, float* dst, int64_t k) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < k / QK; ++i)
    store_block(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs)), h2f(b[i].d), 0.0f, dst + i * QK);
}
void to_float_q4_0(const void* src, float* dst, int64_t k) {
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t i = 0; i < k / QK; ++i)
    store_block(_mm256_sub_epi8(nibbles(b[i].qs), eight), h2f(b[i].d), 0.0f, dst + i * QK);
}
void to_float_q4_1(const void* src, float* dst, int64_t k) {
  const BlockQ4_1* b = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < k / QK; ++i) store_block(nibbles(b[i].qs), h2f(b[i].d), h2f(b[i].m), dst + i * QK);
}
// Nibbles plus the fifth bits (0..31).
inline __m256i q5_values(const uint8_t* qs, const uint8_t* qh) { return _mm256_or_si256(nibbles(qs), fifth_bits(qh)); }
void to_float_q5_0(const void* src, float* dst, int64_t k) {
  const BlockQ5_0* b = static_cast<const BlockQ5_0*>(src);
  const __m256i sixteen = _mm256_set1_epi8(16);
  for (int64_t i = 0; i < k / QK; ++i)
    store_block(_mm256_sub_epi8(q5_values(b[i].qs, b[i].qh), sixteen), h2f(b[i].d), 0.0f, dst + i * QK);
}
void to_float_q5_1(const void* src, float* dst, int64_t k) {
  const BlockQ5_1* b = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < k / QK; ++i) store_block(q5_values(b[i].qs, b[i].qh), h2f(b[i].d), h2f(b[i].m), dst + i * QK);
}
// K-quant rows are converted by the scalar reference: only embedding rows need them (quantised
// weights never take the panel + sgemm path), and there one row per token is cheap.
void to_float_q4_k(const void* src, float* dst, int64_t k) {
  dequantize_row_q4_K(static_cast<const BlockQ4_K*>(src), dst, k);
}
void to_float_q5_k(const void* src, float* dst, int64_t k) {
  dequantize_row_q5_K(static_cast<const BlockQ5_K*>(src), dst, k);
}
void to_float_q6_k(const void* src, float* dst, int64_t k) {
  dequantize_row_q6_K(static_cast<const BlockQ6_K*>(src), dst, k);
}

// ---------------------------------------------------------------- row helpers

float sum_squares(const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
  }
  for (; j + 8 <= n; j += 8) {
    const __m256 v0 = _mm256_loadu_ps(x + j);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
  }
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; j < n; ++j) s += x[j] * x[j];
  return s;
}

void mul_scale(const float* x, float s, const float* w, float* y, int64_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vs), _mm256_loadu_ps(w + j)));
  for (; j < n; ++j) y[j] = (x[j] * s) * w[j];
}

void add(float* y, const float* x, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(x + j)));
  for (; j < n; ++j) y[j] += x[j];
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(g + j);
    const __m256 e = exp256(_mm256_xor_ps(x, sign));
    _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + j)));
  }
  for (; j < n; ++j) out[j] = g[j] / (1.0f + __builtin_expf(-g[j])) * u[j];
}

// ---------------------------------------------------------------- attention

inline float dot_any(const float* a, const float* b, int64_t D) {
  __m256 acc = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc);
  float s = hsum(acc);
  for (; d < D; ++d) s += a[d] * b[d];
  return s;
}

// One query against one tile of tn keys: scores (8 keys at a time), running-max update,
// probabilities, and out += P V (one 8-wide column chunk at a time, kept in a register).
inline void attn_tile(const float* q, const float* kt0, const float* vt0, int64_t kv_stride, int64_t tn, int64_t D,
                      float scale, float* s, float* og, float& m, float& l) {
  const bool vec = D % 8 == 0;
  const __m256 vscale = _mm256_set1_ps(scale);
  int64_t t = 0;
  if (vec) {
    for (; t + 8 <= tn; t += 8) {
      const float* kt = kt0 + t * kv_stride;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
      for (int64_t d = 0; d < D; d += 8) {
        const __m256 qv = _mm256_loadu_ps(q + d);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + d), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + kv_stride + d), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + 2 * kv_stride + d), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + 3 * kv_stride + d), a3);
        a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + 4 * kv_stride + d), a4);
        a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + 5 * kv_stride + d), a5);
        a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + 6 * kv_stride + d), a6);
        a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + 7 * kv_stride + d), a7);
      }
      _mm256_store_ps(s + t, _mm256_mul_ps(hsum8x8(a0, a1, a2, a3, a4, a5, a6, a7), vscale));
    }
  }
  for (; t < tn; ++t) s[t] = dot_any(q, kt0 + t * kv_stride, D) * scale;
  float mt = s[0];
  for (int64_t i = 1; i < tn; ++i) mt = s[i] > mt ? s[i] : mt;
  if (mt > m) {
    const float corr = __builtin_expf(m - mt);  // 0 on the first tile (m = -inf)
    l *= corr;
    const __m256 vc = _mm256_set1_ps(corr);
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) _mm256_storeu_ps(og + d, _mm256_mul_ps(_mm256_loadu_ps(og + d), vc));
    for (; d < D; ++d) og[d] *= corr;
    m = mt;
  }
  const __m256 vm = _mm256_set1_ps(m);
  __m256 vl = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= tn; i += 8) {
    const __m256 p = exp256(_mm256_sub_ps(_mm256_load_ps(s + i), vm));
    _mm256_store_ps(s + i, p);
    vl = _mm256_add_ps(vl, p);
  }
  float ls = hsum(vl);
  for (; i < tn; ++i) {
    s[i] = __builtin_expf(s[i] - m);
    ls += s[i];
  }
  l += ls;
  int64_t d = 0;
  for (; d + 64 <= D; d += 64) {  // 64 columns in 8 registers: one broadcast per 8 FMAs
    __m256 o[8];
    for (int c = 0; c < 8; ++c) o[c] = _mm256_loadu_ps(og + d + 8 * c);
    for (int64_t j = 0; j < tn; ++j) {
      const __m256 p = _mm256_set1_ps(s[j]);
      const float* vj = vt0 + j * kv_stride + d;
      for (int c = 0; c < 8; ++c) o[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * c), o[c]);
    }
    for (int c = 0; c < 8; ++c) _mm256_storeu_ps(og + d + 8 * c, o[c]);
  }
  for (; d + 8 <= D; d += 8) {
    __m256 o0 = _mm256_loadu_ps(og + d), o1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 2 <= tn; j += 2) {
      o0 = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_loadu_ps(vt0 + j * kv_stride + d), o0);
      o1 = _mm256_fmadd_ps(_mm256_set1_ps(s[j + 1]), _mm256_loadu_ps(vt0 + (j + 1) * kv_stride + d), o1);
    }
    if (j < tn) o0 = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_loadu_ps(vt0 + j * kv_stride + d), o0);
    _mm256_storeu_ps(og + d, _mm256_add_ps(o0, o1));
  }
  for (; d < D; ++d) {
    float o = og[d];
    for (int64_t j = 0; j < tn; ++j) o += s[j] * vt0[j * kv_stride + d];
    og[d] = o;
  }
}

void attn(const float* q, int64_t q_stride, int64_t G, const float* k, const float* v, int64_t kv_stride, int64_t T,
          int64_t D, float scale, float* o, int64_t o_stride, float* m, float* l, bool init) {
  constexpr int64_t kTile = kAttnTile;  // 64 keys x D = 64: 16 KiB of K (and of V) reused from L1 by all G queries
  alignas(32) float s[kTile];
  for (int64_t g = 0; g < G && init; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
    for (int64_t d = 0; d < D; ++d) o[g * o_stride + d] = 0.0f;
  }
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    const int64_t tn = T - t0 < kTile ? T - t0 : kTile;
    for (int64_t g = 0; g < G; ++g)
      attn_tile(q + g * q_stride, k + t0 * kv_stride, v + t0 * kv_stride, kv_stride, tn, D, scale, s, o + g * o_stride,
                m[g], l[g]);
  }
}

const Kernels kAvx2 = {
    .isa = Isa::AVX2,
    .quantize_q8a = quantize_q8a,
    .gemv_q8_0 = gemv_q<Q80>,
    .gemv_q4_0 = gemv_q<Q40>,
    .gemv_q4_1 = gemv_q<Q41>,
    .gemv_q5_0 = gemv_q<Q50>,
    .gemv_q5_1 = gemv_q<Q51>,
    .gemv_q4_k = gemv_k<Q4K>,
    .gemv_q5_k = gemv_k<Q5K>,
    .gemv_q6_k = gemv_k<Q6K>,
    .gemv_f32 = gemv_f<LF32>,
    .gemv_f16 = gemv_f<LF16>,
    .gemv_bf16 = gemv_f<LBF16>,
    .to_float_f16 = to_float<LF16>,
    .to_float_bf16 = to_float<LBF16>,
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

const Kernels* avx2_kernels() { return &kAvx2; }

}  // namespace skv::backend::cpu

#else  // not x86

#include "backend/cpu/kernels.h"
namespace skv::backend::cpu {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace skv::backend::cpu

#endif
