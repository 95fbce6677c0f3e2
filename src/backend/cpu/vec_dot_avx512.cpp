// AVX-512 (F, BW, VL, DQ) + VNNI kernels, compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq -mavx512vnni -mfma -mf16c and only reached after dispatch.cpp has checked the
// CPU and the OS state saving for all of them. See kernels.h for each kernel's contract and the
// rule that nothing here may instantiate inline code shared with baseline files.
//
// Integer dot products: vpdpbusd multiplies unsigned bytes by signed bytes and adds each group
// of four products into an int32 lane in one instruction (the AVX2 path needs vpmaddubsw,
// vpmaddwd and an add). The 4-bit formats are unsigned nibbles 0..15 already (Q4_0 is Q4_1
// with m = -8 d, as in the AVX2 file), so they go in as the unsigned operand unchanged; Q8_0
// is signed on both sides and takes the sign trick: |w| as the unsigned operand and the
// activation negated where w < 0 (512-bit registers have no vpsignb: vpabsb plus a masked
// subtract from zero). Activations are within [-127, 127], so the negation cannot overflow,
// and |w| = 128 for w = -128 is right as an unsigned byte.
//
// Two blocks share one 512-bit register, each block's int32 lanes are scaled in float by
// d_w d_a and summed into float accumulators; the offset term m_w s_a of the 4-bit formats is
// accumulated apart. Tiles are 4 weight rows x up to 4 activation rows (prefill) or x 1
// (decode). Q5_0 / Q5_1 are Q4_0 / Q4_1 whose bytes get 16 added under a mask of their fifth
// bits. The K-quants (ktile below) pair their 32-value sub-blocks the same way.
//
// Float weights: BF16 is widened to F32 by a shift and multiplied with FMA, so activations keep
// F32 precision. vdpbf16ps would round the activations to bf16 too: about 1.3x faster on a
// one-row GEMV here but an NMSE of 2.7e-6 against the 1e-10 the op-parity test holds float
// weights to, and splitting x into two bf16 halves to keep the precision was slower than
// widening (docs/benchmarks.md, "AVX-512 kernels").
#if defined(__x86_64__) || defined(__i386__)

// GCC 12's AVX-512 headers pass an uninitialised "undefined" vector to their masked builtins
// and then warn about it wherever they are inlined (GCC PR105593); the pragmas cover the
// header's own lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <math.h>

#include "backend/cpu/kernels.h"

namespace skv::backend::cpu {

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Horizontal sum / max, halves first.
inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m512i v) {
  v = _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128i s = _mm512_castsi512_si128(v);
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Lanes of k - j < 16 remaining elements.
inline __mmask16 tail_mask(int64_t left) { return static_cast<__mmask16>((1u << left) - 1u); }

// exp(x) per lane: the same Cephes reduction and degree-5 polynomial as the AVX2 table, with
// 2^n applied by vscalefps, which also gives the right (tiny or zero) result for n <= -127.
inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f));
  __m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
  fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, fx);
}

// ---------------------------------------------------------------- activation quantisation

void quantize_q8a(const float* x, BlockQ8A* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* xb = x + b * QK;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const float amax = hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    // Embedded rounding: round-to-nearest-even whatever MXCSR says, like nearbyint in the
    // generic table under the default mode.
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id), kRound);
    const __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id), kRound);
    const int sum = hsum_i32(_mm512_add_epi32(i0, i1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + 16), _mm512_cvtsepi32_epi8(i1));
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

// ---------------------------------------------------------------- integer GEMV

// A pair of blocks (b, b + 1) in one register. The 4-bit formats unpack 16 packed bytes per
// block into low and high nibbles; putting both blocks' low nibbles in the lower half
// ([lo b, lo b+1, hi b, hi b+1] in 128-bit lanes) costs one shift and one AND for the pair,
// and the activation pair is permuted to match once per activation row. Q8_0 and the
// activations keep natural order ([b, b+1] in 256-bit halves).
//
// `dm` gives the weight's [d, m] of both blocks as floats [d b, m b, d b+1, m b+1]; times the
// activation's [d, s] that is [d_w d_a, m_w s_a] per block. kIdx spreads lanes 0 and 2 (the
// two d_w d_a) over the int32 lanes each block's sums occupy.
struct Q41 {
  using Block = BlockQ4_1;
  static constexpr bool kSigned = false, kFifth = false;
  static constexpr float kOffset = 1.0f;  // dm's odd lanes are the offset m itself
  static inline __m128 dm(const Block& b0, const Block& b1) {
    int v0, v1;
    __builtin_memcpy(&v0, &b0.d, 4);
    __builtin_memcpy(&v1, &b1.d, 4);
    return _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128(v0), v1, 1));
  }
};
struct Q40 {
  using Block = BlockQ4_0;
  static constexpr bool kSigned = false, kFifth = false;
  // d (q - 8) = d q - 8 d: the odd lanes carry d and the offsets' sum is scaled by -8 once at the
  // end, which is exact (a power of two), so no multiply per block.
  static constexpr float kOffset = -8.0f;
  static inline __m128 dm(const Block& b0, const Block& b1) {  // [d0, d0, d1, d1]
    const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(b0.d), b1.d, 1);
    return _mm_cvtph_ps(_mm_unpacklo_epi16(h, h));
  }
};
struct Q80 {
  using Block = BlockQ8_0;
  static constexpr bool kSigned = true, kFifth = false;
  static constexpr float kOffset = 0.0f;
  static inline __m128 dm(const Block& b0, const Block& b1) {  // [d0, 0, d1, 0]
    return _mm_cvtph_ps(_mm_insert_epi16(_mm_cvtsi32_si128(b0.d), b1.d, 2));
  }
};
struct Q51 {
  using Block = BlockQ5_1;
  static constexpr bool kSigned = false, kFifth = true;
  static constexpr float kOffset = 1.0f;
  static inline __m128 dm(const Block& b0, const Block& b1) {  // d, m adjacent, as in Q4_1
    int v0, v1;
    __builtin_memcpy(&v0, &b0.d, 4);
    __builtin_memcpy(&v1, &b1.d, 4);
    return _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128(v0), v1, 1));
  }
};
struct Q50 {
  using Block = BlockQ5_0;
  static constexpr bool kSigned = false, kFifth = true;
  static constexpr float kOffset = -16.0f;                     // d (q - 16) = d q - 16 d, as Q4_0's -8
  static inline __m128 dm(const Block& b0, const Block& b1) {  // [d0, d0, d1, d1]
    const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(b0.d), b1.d, 1);
    return _mm_cvtph_ps(_mm_unpacklo_epi16(h, h));
  }
};

template <class F>
inline __m512i weight_pair(const typename F::Block& b0, const typename F::Block& b1) {
  if constexpr (F::kSigned) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0.qs));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1.qs)),
                              1);
  } else {
    const __m256i t =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0.qs))),
                                _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1.qs)), 1);
    const __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1),
                                       _mm512_set1_epi8(0x0f));
    if constexpr (!F::kFifth) {
      return z;
    } else {
      // Lanes [lo b, lo b+1, hi b, hi b+1] take bits 0..15 / 16..31 of each block's qh.
      uint32_t h0, h1;
      __builtin_memcpy(&h0, b0.qh, 4);
      __builtin_memcpy(&h1, b1.qh, 4);
      const uint32_t lo = (h0 & 0xffffu) | (h1 << 16), hi = (h0 >> 16) | (h1 & 0xffff0000u);
      const __mmask64 fifth = static_cast<__mmask64>(lo | (static_cast<uint64_t>(hi) << 32));
      return _mm512_mask_add_epi8(z, fifth, z, _mm512_set1_epi8(16));
    }
  }
}

template <class F>
inline __m512i act_pair(const BlockQ8A& a0, const BlockQ8A& a1) {
  const __m512i v =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a0.qs))),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a1.qs)), 1);
  if constexpr (F::kSigned) return v;
  return _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
}

// [d b, s b, d b+1, s b+1] of two activation blocks.
inline __m128 act_ds(const BlockQ8A& a0, const BlockQ8A& a1) {
  return _mm_castsi128_ps(_mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&a0.d)),
                                             _mm_loadl_epi64(reinterpret_cast<const __m128i*>(&a1.d))));
}

template <class F>
inline __m512i scale_index() {
  if constexpr (F::kSigned) return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
  return _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2);
}

// R weight rows x NA activation rows (NA <= 4) over nb blocks. Per block pair the weight's d
// and the activation's d are spread over their blocks' lanes once per row / activation row,
// so a (row, activation) pair costs vpdpbusd, a convert, a multiply of the two spreads and an
// FMA. The offsets m_w s_a of all NA activation rows accumulate in one 8-lane register per
// weight row ([s b, s b+1] of activation a in lanes 2a, 2a + 1). An odd last block is paired
// with itself and the activation's scales of the copy zeroed, so the copy adds exactly nothing.
template <class F, int R, int NA>
inline void qtile(const uint8_t* w, size_t ws, const BlockQ8A* act, int64_t as, int64_t nb, float* y, int64_t ldy) {
  static_assert(NA >= 1 && NA <= 4);
  using Block = typename F::Block;
  const __m512i idx = scale_index<F>();
  __m512 acc[R][NA];
  __m256 off[R];
  for (int r = 0; r < R; ++r) {
    off[r] = _mm256_setzero_ps();
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm512_setzero_ps();
  }
  const Block* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const Block*>(w + r * ws);
  for (int64_t b = 0; b < nb; b += 2) {
    const bool pair = b + 1 < nb;
    const int64_t b1 = pair ? b + 1 : b;
    __m512i ya[NA];
    __m512 da[NA];
    __m128 ds[NA];
    for (int a = 0; a < NA; ++a) {
      const BlockQ8A* ab = act + a * as;
      ya[a] = act_pair<F>(ab[b], ab[b1]);
      ds[a] = act_ds(ab[b], ab[b1]);
      if (!pair) ds[a] = _mm_movelh_ps(ds[a], _mm_setzero_ps());
      da[a] = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(ds[a]));
    }
    __m256 sa = _mm256_setzero_ps();  // [s b, s b+1] per activation row
    if constexpr (!F::kSigned) {
      constexpr int kOdd = _MM_SHUFFLE(3, 1, 3, 1);
      const __m128 s01 = _mm_shuffle_ps(ds[0], ds[NA > 1 ? 1 : 0], kOdd);
      const __m128 s23 = NA > 2 ? _mm_shuffle_ps(ds[NA > 2 ? 2 : 0], ds[NA > 3 ? 3 : 0], kOdd) : s01;
      sa = _mm256_insertf128_ps(_mm256_castps128_ps256(s01), s23, 1);
    }
    for (int r = 0; r < R; ++r) {
      __m512i wv = weight_pair<F>(wr[r][b], wr[r][b1]);
      const __m128 dm = F::dm(wr[r][b], wr[r][b1]);
      __mmask64 neg = 0;
      if constexpr (F::kSigned) {
        neg = _mm512_movepi8_mask(wv);
        wv = _mm512_abs_epi8(wv);
      }
      {
        // The same operations for every (weight row, activation row) pair whatever R and NA
        // are, so an output never depends on how many rows share the call (docs/engine.md).
        const __m512 dw = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(dm));
        if constexpr (!F::kSigned) {
          const __m128 m = _mm_shuffle_ps(dm, dm, _MM_SHUFFLE(3, 1, 3, 1));  // [m b, m b+1] x 2
          off[r] = _mm256_fmadd_ps(_mm256_insertf128_ps(_mm256_castps128_ps256(m), m, 1), sa, off[r]);
        }
        for (int a = 0; a < NA; ++a) {
          __m512i yv = ya[a];
          if constexpr (F::kSigned) yv = _mm512_mask_sub_epi8(yv, neg, _mm512_setzero_si512(), yv);
          const __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, yv);
          acc[r][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da[a]), acc[r][a]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) float o[8];
    _mm256_store_ps(o, off[r]);
    {
      for (int a = 0; a < NA; ++a) y[a * ldy + r] = hsum(acc[r][a]) + F::kOffset * (o[2 * a] + o[2 * a + 1]);
    }
  }
}

// Tiles of 4 weight rows (measured against 2 and 3 for 4 activation rows: 4 x 4 is the
// fastest that fits the 32 registers) and the remaining rows one at a time.
template <class F, int NA>
inline void qrows(const uint8_t* w, size_t ws, int64_t rows, const BlockQ8A* act, int64_t as, int64_t nb, float* y,
                  int64_t ldy) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) qtile<F, 4, NA>(w + r * ws, ws, act, as, nb, y + r, ldy);
  for (; r < rows; ++r) qtile<F, 1, NA>(w + r * ws, ws, act, as, nb, y + r, ldy);
}

template <class F>
void gemv_q(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
            int64_t k, float* y, int64_t ldy) {
  const int64_t nb = k / QK;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  int64_t a = 0;
  for (; a + 4 <= na; a += 4) qrows<F, 4>(wb, w_stride, rows, act + a * act_stride, act_stride, nb, y + a * ldy, ldy);
  switch (na - a) {
    case 3:
      return qrows<F, 3>(wb, w_stride, rows, act + a * act_stride, act_stride, nb, y + a * ldy, ldy);
    case 2:
      return qrows<F, 2>(wb, w_stride, rows, act + a * act_stride, act_stride, nb, y + a * ldy, ldy);
    case 1:
      return qrows<F, 1>(wb, w_stride, rows, act + a * act_stride, act_stride, nb, y + a * ldy, ldy);
    default:
      return;
  }
}

// ---------------------------------------------------------------- K-quant GEMV

// A super-block of 256 weights is 4 register pairs of two 32-value sub-blocks in natural order
// (sub-block 2p in the low 256 bits, 2p + 1 in the high), against activation blocks 2p, 2p + 1
// loaded as they are. Each int32 lane of vpdpbusd covers 4 consecutive values, so a per-lane
// float scale handles any sub-block size that is a multiple of 4: the weight's scales are
// unpacked to floats once per super-block and row and spread over their lanes by one
// permutation per pair.
//
// Q4_K / Q5_K: lanes 0..7 take d sc_2p, 8..15 d sc_2p+1; the mins dmin m_j meet the
// activations' s_j in one 8-lane FMA per super-block, into the same accumulator.
// Q6_K: 16-value groups, so each 128-bit lane (4 int32 lanes) has its own scale d sc_g. The
// values go in unsigned (0..63) and the -32 is exact in the integer sum: vpdpbusd starts from
// -32 sum(q_a) of each lane (one vpdpbusd of the constant 32 per activation pair, shared by all
// weight rows), so each lane ends as sum (q - 32) q_a at no cost per weight row. ggml subtracts
// 32 times Q8_K's per-16 activation sums afterwards instead; our activations carry per-32 sums
// only.
struct KMinMax512 {
  static constexpr bool kMins = true;
  static inline __m512i scale_index(int p) {
    return _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                            _mm512_set1_epi32(2 * p));
  }
  // Lanes 0..7: d sc_j, dmin m_j (quant.h has the 12 bytes' layout; as words: scales 0..3 are
  // the low 6 bits of word 0's bytes, mins 0..3 of word 1's; scales / mins 4..7 take their low
  // nibbles from word 2 and their top bits from the top bits of words 0 / 1). Lanes 8..15: 0.
  static inline void scales(const uint8_t* packed, uint16_t d, uint16_t dmin, __m512& dsc, __m512& dmn) {
    uint32_t w[3];
    __builtin_memcpy(w, packed, 12);
    const uint64_t sc = (w[0] & 0x3f3f3f3fu) | static_cast<uint64_t>((w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u))
                                                   << 32;
    const uint64_t mn =
        (w[1] & 0x3f3f3f3fu) | static_cast<uint64_t>(((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u)) << 32;
    const __m128i v = _mm_set_epi64x(static_cast<long long>(mn), static_cast<long long>(sc));
    const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));  // [sc 0..7, m 0..7]
    const __m512 zero = _mm512_setzero_ps();
    dsc = _mm512_maskz_mul_ps(0x00ff, f, _mm512_set1_ps(h2f(d)));
    dmn = _mm512_insertf32x8(zero, _mm512_extractf32x8_ps(_mm512_mul_ps(f, _mm512_set1_ps(h2f(dmin))), 1), 0);
  }
  static inline __m512i nibble_pair(const uint8_t* qs, int p) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * p));
    return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1),
                            _mm512_set1_epi8(0x0f));
  }
};
struct Q4K : KMinMax512 {
  using Block = BlockQ4_K;
  static inline void prepare(const Block& b, __m512& dsc, __m512& dmn) { scales(b.scales, b.d, b.dmin, dsc, dmn); }
  static inline __m512i pair(const Block& b, int p) { return nibble_pair(b.qs, p); }
};
struct Q5K : KMinMax512 {
  using Block = BlockQ5_K;
  static inline void prepare(const Block& b, __m512& dsc, __m512& dmn) { scales(b.scales, b.d, b.dmin, dsc, dmn); }
  // Sub-block j's fifth bit is bit j of qh[l]: bits 2p and 2p + 1 for the pair.
  static inline __m512i pair(const Block& b, int p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    const __mmask32 k0 = _mm256_test_epi8_mask(h, _mm256_set1_epi8(static_cast<char>(1 << (2 * p))));
    const __mmask32 k1 = _mm256_test_epi8_mask(h, _mm256_set1_epi8(static_cast<char>(2 << (2 * p))));
    const __m512i z = nibble_pair(b.qs, p);
    return _mm512_mask_add_epi8(z, static_cast<__mmask64>(k0) | (static_cast<__mmask64>(k1) << 32), z,
                                _mm512_set1_epi8(16));
  }
};
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr bool kMins = false;
  static inline __m512i scale_index(int p) {
    return _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                            _mm512_set1_epi32(4 * p));
  }
  static inline void prepare(const Block& b, __m512& dsc, __m512&) {
    const __m512 sc =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))));
    dsc = _mm512_mul_ps(sc, _mm512_set1_ps(h2f(b.d)));
  }
  // Pair p = quarters 2 (p % 2) and 2 (p % 2) + 1 of half p / 2: their low 4 bits are the low
  // (even p) or high (odd p) nibbles of that half's 64 ql bytes in order, their top 2 bits
  // bits 4 (p % 2) + 0..1 and + 2..3 of its 32 qh bytes (quant.h).
  static inline __m512i pair(const Block& b, int p) {
    const int h = p / 2, odd = p % 2;
    const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
    const __m512i lo = _mm512_and_si512(_mm512_srl_epi16(ql, _mm_cvtsi32_si128(4 * odd)), _mm512_set1_epi8(0x0f));
    const __m512i hi = _mm512_and_si512(_mm512_sll_epi16(z, _mm_cvtsi32_si128(4 - 4 * odd)), _mm512_set1_epi8(0x30));
    return _mm512_or_si512(lo, hi);
  }
};

template <class F, int R, int NA>
inline void ktile(const uint8_t* w, size_t ws, const BlockQ8A* act, int64_t as, int64_t nsb, float* y, int64_t ldy) {
  static_assert(NA >= 1 && NA <= 4);
  using Block = typename F::Block;
  const __m512i act_idx = scale_index<Q80>();  // [d b, s b, d b+1, s b+1] -> d over each block's lanes
  const __m256i s_index = _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70);  // BlockQ8A::s, 40-byte stride
  __m512 acc[R][NA];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm512_setzero_ps();
  const Block* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const Block*>(w + r * ws);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    __m512 dsc[R], dmn[R];
    for (int r = 0; r < R; ++r) F::prepare(wr[r][sb], dsc[r], dmn[r]);
    const BlockQ8A* ab[NA];
    for (int a = 0; a < NA; ++a) ab[a] = act + a * as + sb * 8;
    if constexpr (F::kMins) {
      for (int a = 0; a < NA; ++a) {
        const __m512 sa = _mm512_insertf32x8(_mm512_setzero_ps(), _mm256_i32gather_ps(&ab[a][0].s, s_index, 4), 0);
        for (int r = 0; r < R; ++r) acc[r][a] = _mm512_fnmadd_ps(dmn[r], sa, acc[r][a]);
      }
    }
    for (int p = 0; p < 4; ++p) {
      __m512i ya[NA], ca[NA];
      __m512 da[NA];
      for (int a = 0; a < NA; ++a) {
        ya[a] = act_pair<Q80>(ab[a][2 * p], ab[a][2 * p + 1]);
        da[a] = _mm512_permutexvar_ps(act_idx, _mm512_castps128_ps512(act_ds(ab[a][2 * p], ab[a][2 * p + 1])));
        ca[a] = _mm512_setzero_si512();
        if constexpr (!F::kMins)
          ca[a] = _mm512_sub_epi32(ca[a], _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(32), ya[a]));
      }
      const __m512i sidx = F::scale_index(p);
      for (int r = 0; r < R; ++r) {
        const __m512i wv = F::pair(wr[r][sb], p);
        const __m512 dw = _mm512_permutexvar_ps(sidx, dsc[r]);
        for (int a = 0; a < NA; ++a) {
          const __m512i isum = _mm512_dpbusd_epi32(ca[a], wv, ya[a]);
          acc[r][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da[a]), acc[r][a]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) y[a * ldy + r] = hsum(acc[r][a]);
}

template <class F, int NA>
inline void krows(const uint8_t* w, size_t ws, int64_t rows, const BlockQ8A* act, int64_t as, int64_t nsb, float* y,
                  int64_t ldy) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) ktile<F, 4, NA>(w + r * ws, ws, act, as, nsb, y + r, ldy);
  for (; r < rows; ++r) ktile<F, 1, NA>(w + r * ws, ws, act, as, nsb, y + r, ldy);
}

template <class F>
void gemv_k(const void* w, size_t w_stride, int64_t rows, const BlockQ8A* act, int64_t act_stride, int64_t na,
            int64_t k, float* y, int64_t ldy) {
  const int64_t nsb = k / QK_K;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  int64_t a = 0;
  for (; a + 4 <= na; a += 4) krows<F, 4>(wb, w_stride, rows, act + a * act_stride, act_stride, nsb, y + a * ldy, ldy);
  switch (na - a) {
    case 3:
      return krows<F, 3>(wb, w_stride, rows, act + a * act_stride, act_stride, nsb, y + a * ldy, ldy);
    case 2:
      return krows<F, 2>(wb, w_stride, rows, act + a * act_stride, act_stride, nsb, y + a * ldy, ldy);
    case 1:
      return krows<F, 1>(wb, w_stride, rows, act + a * act_stride, act_stride, nsb, y + a * ldy, ldy);
    default:
      return;
  }
}

// ---------------------------------------------------------------- float GEMV

struct LF32 {
  using T = float;
  static inline __m512 load16(const T* p) { return _mm512_loadu_ps(p); }
  static inline __m512 load16(const T* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct LF16 {
  using T = uint16_t;
  static inline __m512 load16(const T* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static inline __m512 load16(const T* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct LBF16 {
  using T = uint16_t;
  static inline __m512 widen(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }
  static inline __m512 load16(const T* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static inline __m512 load16(const T* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

// One weight row against NA activation rows; the k % 16 tail uses masked loads.
template <class L, int NA>
inline void frow(const typename L::T* w, const float* x, int64_t ldx, int64_t k, float* res, int64_t ldres) {
  __m512 acc0[NA], acc1[NA];
  for (int a = 0; a < NA; ++a) acc0[a] = acc1[a] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    const __m512 w0 = L::load16(w + j), w1 = L::load16(w + j + 16);
    for (int a = 0; a < NA; ++a) {
      acc0[a] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + a * ldx + j), acc0[a]);
      acc1[a] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + a * ldx + j + 16), acc1[a]);
    }
  }
  for (; j < k; j += 16) {
    const __mmask16 m = k - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(k - j);
    const __m512 w0 = L::load16(w + j, m);
    for (int a = 0; a < NA; ++a) acc0[a] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + a * ldx + j), acc0[a]);
  }
  for (int a = 0; a < NA; ++a) res[a * ldres] = hsum(_mm512_add_ps(acc0[a], acc1[a]));
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

// 16 E4M3 bytes -> floats. The 7 bits below the sign placed at an F32's exponent-low /
// mantissa-high bits make e4m3 * 2^-120 exactly (its subnormals land on F32 subnormals), and
// one multiply by 2^120 rescales; needs DAZ off, which nothing here sets.
inline __m512 e4m3x16(__m128i b) {
  const __m512i v = _mm512_cvtepu8_epi32(b);
  const __m512i mag = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x7f)), 20);
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
  return _mm512_mul_ps(_mm512_castsi512_ps(_mm512_or_si512(mag, sign)), _mm512_set1_ps(0x1p120f));
}
struct LE4M3 {
  using T = uint8_t;
  static inline __m512 load16(const T* p) { return e4m3x16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static inline __m512 load16(const T* p, __mmask16 m) { return e4m3x16(_mm_maskz_loadu_epi8(m, p)); }
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
  const __m512 vs = _mm512_set1_ps(fp8_row_scale(src));
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) _mm512_storeu_ps(dst + j, _mm512_mul_ps(LE4M3::load16(q + j), vs));
  if (j < k) {
    const __mmask16 m = tail_mask(k - j);
    _mm512_mask_storeu_ps(dst + j, m, _mm512_mul_ps(LE4M3::load16(q + j, m), vs));
  }
}

// E4M3 values need 4 significant bits, so a BF16 is the F32's top half, exactly.
void fp8_to_bf16(const void* row, uint16_t* dst, int64_t k) {
  const uint8_t* q = static_cast<const uint8_t*>(row) + sizeof(float);
  for (int64_t j = 0; j < k; j += 16) {
    const __mmask16 m = k - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(k - j);
    const __m512i bits = _mm512_srli_epi32(_mm512_castps_si512(LE4M3::load16(q + j, m)), 16);
    _mm256_mask_storeu_epi16(dst + j, m, _mm512_cvtepi32_epi16(bits));
  }
}

inline __mmask32 tail_mask32(int64_t left) {
  return left >= 32 ? static_cast<__mmask32>(0xffffffffu) : static_cast<__mmask32>((1u << left) - 1u);
}

// R weight rows x A activation rows of BF16 dot products, 32 values a step.
template <int R, int A>
__attribute__((target("avx512bf16"))) inline void bf16_tile_dp(const uint16_t* w, int64_t ldw, const uint16_t* x,
                                                               int64_t ldx, int64_t k, float* y, int64_t ldy) {
  __m512 acc[R][A];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) acc[r][a] = _mm512_setzero_ps();
  for (int64_t j = 0; j < k; j += 32) {
    const __mmask32 m = tail_mask32(k - j);
    __m512i xv[A];
    for (int a = 0; a < A; ++a) xv[a] = _mm512_maskz_loadu_epi16(m, x + a * ldx + j);
    for (int r = 0; r < R; ++r) {
      const __m512i wv = _mm512_maskz_loadu_epi16(m, w + r * ldw + j);
      for (int a = 0; a < A; ++a) acc[r][a] = _mm512_dpbf16_ps(acc[r][a], (__m512bh)wv, (__m512bh)xv[a]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) y[a * ldy + r] = hsum(acc[r][a]);
}

__attribute__((target("avx512bf16"))) void gemm_bf16_dp(const uint16_t* w, int64_t ldw, int64_t rows, const uint16_t* x,
                                                        int64_t ldx, int64_t na, int64_t k, float* y, int64_t ldy) {
  int64_t a = 0;
  for (; a + 4 <= na; a += 4) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) bf16_tile_dp<4, 4>(w + r * ldw, ldw, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
    for (; r < rows; ++r) bf16_tile_dp<1, 4>(w + r * ldw, ldw, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
  }
  for (; a < na; ++a) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) bf16_tile_dp<4, 1>(w + r * ldw, ldw, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
    for (; r < rows; ++r) bf16_tile_dp<1, 1>(w + r * ldw, ldw, x + a * ldx, ldx, k, y + a * ldy + r, ldy);
  }
}

inline __m512 bf16x16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// Without AVX512-BF16: widen to F32 and FMA, R weight rows against one activation row.
template <int R>
inline void bf16_tile_fma(const uint16_t* w, int64_t ldw, const uint16_t* x, int64_t k, float* y) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t j = 0; j < k; j += 16) {
    const __mmask16 m = k - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(k - j);
    const __m512 xv = bf16x16(x + j, m);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(bf16x16(w + r * ldw + j, m), xv, acc[r]);
  }
  for (int r = 0; r < R; ++r) y[r] = hsum(acc[r]);
}

void gemm_bf16_fma(const uint16_t* w, int64_t ldw, int64_t rows, const uint16_t* x, int64_t ldx, int64_t na, int64_t k,
                   float* y, int64_t ldy) {
  for (int64_t a = 0; a < na; ++a) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) bf16_tile_fma<4>(w + r * ldw, ldw, x + a * ldx, k, y + a * ldy + r);
    for (; r < rows; ++r) bf16_tile_fma<1>(w + r * ldw, ldw, x + a * ldx, k, y + a * ldy + r);
  }
}

// AVX512-BF16 is not part of the table's requirements (Ice Lake has AVX-512 and VNNI without
// it), so this one kernel picks its instruction at run time.
void gemm_bf16(const uint16_t* w, int64_t ldw, int64_t rows, const uint16_t* x, int64_t ldx, int64_t na, int64_t k,
               float* y, int64_t ldy) {
  static const bool dp = cpu_has_avx512_bf16();
  (dp ? gemm_bf16_dp : gemm_bf16_fma)(w, ldw, rows, x, ldx, na, k, y, ldy);
}

// ---------------------------------------------------------------- to float

template <class L>
void to_float(const void* src, float* dst, int64_t k) {
  const typename L::T* s = static_cast<const typename L::T*>(src);
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) _mm512_storeu_ps(dst + j, L::load16(s + j));
  if (j < k) {
    const __mmask16 m = tail_mask(k - j);
    _mm512_mask_storeu_ps(dst + j, m, L::load16(s + j, m));
  }
}

// 32 signed bytes -> 2 x 16 floats, times d plus m (one rounding: exact for m = 0).
inline void store_block(__m256i q, float d, float m, float* dst) {
  const __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
  const __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
  const __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
  _mm512_storeu_ps(dst, _mm512_fmadd_ps(f0, vd, vm));
  _mm512_storeu_ps(dst + 16, _mm512_fmadd_ps(f1, vd, vm));
}

// 16 packed bytes -> 32 bytes 0..15 in element order (low nibbles, then high nibbles).
inline __m256i nibbles(const uint8_t* qs) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
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
// Nibbles plus 16 where the fifth bit (bit j of qh for element j) is set: 0..31.
inline __m256i q5_values(const uint8_t* qs, const uint8_t* qh) {
  uint32_t h;
  __builtin_memcpy(&h, qh, 4);
  const __m256i v = nibbles(qs);
  return _mm256_mask_add_epi8(v, static_cast<__mmask32>(h), v, _mm256_set1_epi8(16));
}
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
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
    a0 = _mm512_fmadd_ps(v0, v0, a0);
    a1 = _mm512_fmadd_ps(v1, v1, a1);
  }
  for (; j < n; j += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(n - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - j), x + j);
    a0 = _mm512_fmadd_ps(v, v, a0);
  }
  return hsum(_mm512_add_ps(a0, a1));
}

void mul_scale(const float* x, float s, const float* w, float* y, int64_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - j);
    const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), vs), _mm512_maskz_loadu_ps(m, w + j));
    _mm512_mask_storeu_ps(y + j, m, v);
  }
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - j);
    _mm512_mask_storeu_ps(y + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), _mm512_maskz_loadu_ps(m, x + j)));
  }
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - j);
    const __m512 x = _mm512_maskz_loadu_ps(m, g + j);
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_mask_storeu_ps(out + j, m,
                          _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + j)));
  }
}

// ---------------------------------------------------------------- attention

// 16 vectors -> one vector of their 16 horizontal sums (lane i = sum of v[i]): pairwise
// interleave-and-add within 128-bit lanes, then across them.
inline __m512 hsum16x16(const __m512* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    b[i] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int i = 0; i < 2; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

inline float dot_any(const float* a, const float* b, int64_t D) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; d += 16) {
    const __mmask16 m = D - d >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(D - d);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + d), _mm512_maskz_loadu_ps(m, b + d), acc);
  }
  return hsum(acc);
}

// One query against one tile of tn keys: scores (16 keys at a time when D % 16 == 0),
// running-max update, probabilities, and out += P V (64 columns in 4 registers at a time).
inline void attn_tile(const float* q, const float* kt0, const float* vt0, int64_t kv_stride, int64_t tn, int64_t D,
                      float scale, float* s, float* og, float& m, float& l) {
  const __m512 vscale = _mm512_set1_ps(scale);
  int64_t t = 0;
  if (D % 16 == 0) {
    for (; t + 16 <= tn; t += 16) {
      const float* kt = kt0 + t * kv_stride;
      __m512 a[16];
      for (int i = 0; i < 16; ++i) a[i] = _mm512_setzero_ps();
      for (int64_t d = 0; d < D; d += 16) {
        const __m512 qv = _mm512_loadu_ps(q + d);
        for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kt + i * kv_stride + d), a[i]);
      }
      _mm512_store_ps(s + t, _mm512_mul_ps(hsum16x16(a), vscale));
    }
  }
  for (; t < tn; ++t) s[t] = dot_any(q, kt0 + t * kv_stride, D) * scale;
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < tn; i += 16) {
    const __mmask16 mk = tn - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(tn - i);
    vmax = _mm512_mask_max_ps(vmax, mk, vmax, _mm512_maskz_loadu_ps(mk, s + i));
  }
  const float mt = hmax(vmax);
  if (mt > m) {
    const float corr = __builtin_expf(m - mt);  // 0 on the first tile (m = -inf)
    l *= corr;
    const __m512 vc = _mm512_set1_ps(corr);
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 mk = D - d >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(D - d);
      _mm512_mask_storeu_ps(og + d, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, og + d), vc));
    }
    m = mt;
  }
  const __m512 vm = _mm512_set1_ps(m);
  __m512 vl = _mm512_setzero_ps();
  for (int64_t i = 0; i < tn; i += 16) {
    const __mmask16 mk = tn - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(tn - i);
    const __m512 p = _mm512_maskz_mov_ps(mk, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + i), vm)));
    _mm512_mask_storeu_ps(s + i, mk, p);
    vl = _mm512_add_ps(vl, p);
  }
  l += hsum(vl);
  int64_t d = 0;
  for (; d + 64 <= D; d += 64) {  // 64 columns in 4 registers: one broadcast per 4 FMAs
    __m512 o[4];
    for (int c = 0; c < 4; ++c) o[c] = _mm512_loadu_ps(og + d + 16 * c);
    for (int64_t j = 0; j < tn; ++j) {
      const __m512 p = _mm512_set1_ps(s[j]);
      const float* vj = vt0 + j * kv_stride + d;
      for (int c = 0; c < 4; ++c) o[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 16 * c), o[c]);
    }
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(og + d + 16 * c, o[c]);
  }
  for (; d < D; d += 16) {
    const __mmask16 mk = D - d >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(D - d);
    __m512 o0 = _mm512_maskz_loadu_ps(mk, og + d), o1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 2 <= tn; j += 2) {
      o0 = _mm512_fmadd_ps(_mm512_set1_ps(s[j]), _mm512_maskz_loadu_ps(mk, vt0 + j * kv_stride + d), o0);
      o1 = _mm512_fmadd_ps(_mm512_set1_ps(s[j + 1]), _mm512_maskz_loadu_ps(mk, vt0 + (j + 1) * kv_stride + d), o1);
    }
    if (j < tn) o0 = _mm512_fmadd_ps(_mm512_set1_ps(s[j]), _mm512_maskz_loadu_ps(mk, vt0 + j * kv_stride + d), o0);
    _mm512_mask_storeu_ps(og + d, mk, _mm512_add_ps(o0, o1));
  }
}

void attn(const float* q, int64_t q_stride, int64_t G, const float* k, const float* v, int64_t kv_stride, int64_t T,
          int64_t D, float scale, float* o, int64_t o_stride, float* m, float* l, bool init) {
  constexpr int64_t kTile = kAttnTile;  // 64 keys x D = 64: 16 KiB of K (and of V) reused from L1 by all G queries
  alignas(64) float s[kTile];
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

const Kernels kAvx512 = {
    .isa = Isa::AVX512,
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

const Kernels* avx512_kernels() { return &kAvx512; }

}  // namespace skv::backend::cpu

#else  // not x86

#include "backend/cpu/kernels.h"
namespace skv::backend::cpu {
const Kernels* avx512_kernels() { return nullptr; }
}  // namespace skv::backend::cpu

#endif
