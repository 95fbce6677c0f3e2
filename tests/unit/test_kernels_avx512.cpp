// The AVX-512 table against the generic and AVX2 tables, kernel by kernel, at the sizes where
// its register layout has edges: an odd block count (the last block of a pair alone), weight
// rows and activation rows that do not fill a tile, strided activations and outputs. The other
// kernel tests (test_kernels_*.cpp, test_op_parity.cpp) also run the AVX-512 table against
// their plain references through isas(). On a CPU without AVX-512 F/BW/VL/DQ + VNNI every
// test here is skipped with the missing feature named.
//
// Tolerances:
// - quantize_q8a: bit for bit equal to the generic table (d, s and all 32 bytes), for blocks
//   whose 127 / amax is finite (amax > 127 / FLT_MAX, about 3.7e-37; below that the tables
//   disagree on the bytes already, the AVX2 one with the generic one).
// - integer GEMV, weights and activation scales of 1.0: every term is an integer and, with at
//   most 18 blocks, every partial sum stays below 2^24 (18 * 32 * 128 * 127 < 2^24), so all
//   tables must give exactly sum_j w_j a_j. For the K-quants "unit" also keeps the 6-bit /
//   int8 sub-block scales and mins within 3 (2 super-blocks: 512 * 3 * 32 * 127 < 2^24).
// - integer GEMV, general scales: every table computes sum_b (d_w d_a isum_b + m_w s_a) with
//   isum_b an exact integer dot product, but splits isum_b over 1 to 8 int32 lanes that are
//   scaled and summed in float, so tables differ by summation order and product rounding
//   only. With u = 2^-24 each table is within (2 nb + 8) u M of the exact value of that
//   formula, M = sum_b (d_w d_a sum_j |q_w q_a| + |m_w s_a|) bounding the magnitude of any
//   lane split (at most 2 nb terms per lane, a 16-lane reduction, one rounding per
//   product); two tables agree within twice that.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "kernel_test_util.h"

using namespace skv::backend::cpu;

namespace {

#define SKIP_WITHOUT_AVX512()                                                              \
  do {                                                                                     \
    if (const char* missing = isa_missing(Isa::AVX512))                                    \
      GTEST_SKIP() << "AVX-512 kernels not tested: this CPU (or build) lacks " << missing; \
  } while (0)

// Each format as the kernels' contract states it: a weight block of kElems values (32, or 256
// for a K-quant super-block), value e = scale(e) * weight(e) with weight an integer, plus, per
// 32-value activation block sub, an offset coefficient that multiplies the activation's s.
// So every table computes sum_sub [d_a sum_e scale(e) weight(e) q_a(e) + offset(sub) s_a].
template <class Block>
struct Fmt;

// An fp16 scale: 1.0 for the unit-scale runs, else 2^-(0..11) * (1 + 0..0.999).
inline uint16_t random_scale(std::mt19937& rng, bool unit) {
  return unit ? 0x3c00 : fp32_to_fp16(std::ldexp(1.0f + (rng() % 1000) / 1000.0f, -static_cast<int>(rng() % 12)));
}

template <>
struct Fmt<BlockQ8_0> {
  static constexpr const char* kName = "Q8_0";
  static constexpr int kElems = QK;
  static QGemvFn fn(const Kernels& k) { return k.gemv_q8_0; }
  static int weight(const BlockQ8_0& b, int j) { return b.qs[j]; }
  static double scale(const BlockQ8_0& b, int) { return fp16_to_fp32(b.d); }
  static double offset(const BlockQ8_0&, int) { return 0.0; }
  static void random(BlockQ8_0& b, std::mt19937& rng, bool unit) {
    for (int j = 0; j < QK; ++j) b.qs[j] = static_cast<int8_t>(rng() & 0xff);  // -128 included
    b.d = random_scale(rng, unit);
  }
};
template <>
struct Fmt<BlockQ4_0> {
  static constexpr const char* kName = "Q4_0";
  static constexpr int kElems = QK;
  static QGemvFn fn(const Kernels& k) { return k.gemv_q4_0; }
  // Unsigned nibble; the -8 is the offset m = -8 d, as the kernels (and ggml's Q4_1 view) take it.
  static int weight(const BlockQ4_0& b, int j) { return j < 16 ? b.qs[j] & 0x0f : b.qs[j - 16] >> 4; }
  static double scale(const BlockQ4_0& b, int) { return fp16_to_fp32(b.d); }
  static double offset(const BlockQ4_0& b, int) { return -8.0 * fp16_to_fp32(b.d); }
  static void random(BlockQ4_0& b, std::mt19937& rng, bool unit) {
    for (auto& q : b.qs) q = static_cast<uint8_t>(rng() & 0xff);
    b.d = random_scale(rng, unit);
  }
};
template <>
struct Fmt<BlockQ4_1> {
  static constexpr const char* kName = "Q4_1";
  static constexpr int kElems = QK;
  static QGemvFn fn(const Kernels& k) { return k.gemv_q4_1; }
  static int weight(const BlockQ4_1& b, int j) { return j < 16 ? b.qs[j] & 0x0f : b.qs[j - 16] >> 4; }
  static double scale(const BlockQ4_1& b, int) { return fp16_to_fp32(b.d); }
  static double offset(const BlockQ4_1& b, int) { return fp16_to_fp32(b.m); }
  static void random(BlockQ4_1& b, std::mt19937& rng, bool unit) {
    for (auto& q : b.qs) q = static_cast<uint8_t>(rng() & 0xff);
    b.d = random_scale(rng, unit);
    b.m = unit ? (rng() % 2 ? 0x3c00 : 0xbc00) : fp32_to_fp16((static_cast<float>(rng() % 2001) - 1000.0f) / 300.0f);
  }
};
// Q5: the fifth bit of element j is bit j of the little-endian qh word.
inline int q5_weight(const uint8_t* qs, const uint8_t* qh, int j) {
  const int nib = j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
  return nib | (((qh[j / 8] >> (j % 8)) & 1) << 4);
}
template <>
struct Fmt<BlockQ5_0> {
  static constexpr const char* kName = "Q5_0";
  static constexpr int kElems = QK;
  static QGemvFn fn(const Kernels& k) { return k.gemv_q5_0; }
  static int weight(const BlockQ5_0& b, int j) { return q5_weight(b.qs, b.qh, j); }
  static double scale(const BlockQ5_0& b, int) { return fp16_to_fp32(b.d); }
  static double offset(const BlockQ5_0& b, int) { return -16.0 * fp16_to_fp32(b.d); }
  static void random(BlockQ5_0& b, std::mt19937& rng, bool unit) {
    for (auto& q : b.qs) q = static_cast<uint8_t>(rng() & 0xff);
    for (auto& q : b.qh) q = static_cast<uint8_t>(rng() & 0xff);
    b.d = random_scale(rng, unit);
  }
};
template <>
struct Fmt<BlockQ5_1> {
  static constexpr const char* kName = "Q5_1";
  static constexpr int kElems = QK;
  static QGemvFn fn(const Kernels& k) { return k.gemv_q5_1; }
  static int weight(const BlockQ5_1& b, int j) { return q5_weight(b.qs, b.qh, j); }
  static double scale(const BlockQ5_1& b, int) { return fp16_to_fp32(b.d); }
  static double offset(const BlockQ5_1& b, int) { return fp16_to_fp32(b.m); }
  static void random(BlockQ5_1& b, std::mt19937& rng, bool unit) {
    for (auto& q : b.qs) q = static_cast<uint8_t>(rng() & 0xff);
    for (auto& q : b.qh) q = static_cast<uint8_t>(rng() & 0xff);
    b.d = random_scale(rng, unit);
    b.m = unit ? (rng() % 2 ? 0x3c00 : 0xbc00) : fp32_to_fp16((static_cast<float>(rng() % 2001) - 1000.0f) / 300.0f);
  }
};
// K-quants. Scales and mins are random bytes (every bit of the packed 6-bit fields), kept small
// (< 4) in the unit-scale runs so that the exact sums stay below 2^24; d and dmin as above.
inline void random_k_scales(uint8_t scales[12], std::mt19937& rng, bool unit) {
  for (int i = 0; i < 12; ++i) scales[i] = static_cast<uint8_t>(rng() & 0xff);
  if (unit) {  // 6-bit values 0..3: low bits only, top bits (4, 5) cleared
    for (int i = 0; i < 8; ++i) scales[i] &= 0x03;
    for (int i = 8; i < 12; ++i) scales[i] &= 0x33;
  }
}
template <class Block>
struct FmtKMinMax {
  static constexpr int kElems = QK_K;
  static double scale(const Block& b, int e) {
    uint8_t sc[8], m[8];
    k_scales_mins(b.scales, sc, m);
    return static_cast<double>(fp16_to_fp32(b.d)) * sc[e / 32];
  }
  static double offset(const Block& b, int sub) {
    uint8_t sc[8], m[8];
    k_scales_mins(b.scales, sc, m);
    return -static_cast<double>(fp16_to_fp32(b.dmin)) * m[sub];
  }
  static int nibble(const Block& b, int e) { return (b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0f; }
  static void random_common(Block& b, std::mt19937& rng, bool unit) {
    for (auto& q : b.qs) q = static_cast<uint8_t>(rng() & 0xff);
    random_k_scales(b.scales, rng, unit);
    b.d = random_scale(rng, unit);
    b.dmin = random_scale(rng, unit);
  }
};
template <>
struct Fmt<BlockQ4_K> : FmtKMinMax<BlockQ4_K> {
  static constexpr const char* kName = "Q4_K";
  static QGemvFn fn(const Kernels& k) { return k.gemv_q4_k; }
  static int weight(const BlockQ4_K& b, int e) { return nibble(b, e); }
  static void random(BlockQ4_K& b, std::mt19937& rng, bool unit) { random_common(b, rng, unit); }
};
template <>
struct Fmt<BlockQ5_K> : FmtKMinMax<BlockQ5_K> {
  static constexpr const char* kName = "Q5_K";
  static QGemvFn fn(const Kernels& k) { return k.gemv_q5_k; }
  static int weight(const BlockQ5_K& b, int e) { return nibble(b, e) | (((b.qh[e % 32] >> (e / 32)) & 1) << 4); }
  static void random(BlockQ5_K& b, std::mt19937& rng, bool unit) {
    random_common(b, rng, unit);
    for (auto& q : b.qh) q = static_cast<uint8_t>(rng() & 0xff);
  }
};
template <>
struct Fmt<BlockQ6_K> {
  static constexpr const char* kName = "Q6_K";
  static constexpr int kElems = QK_K;
  static QGemvFn fn(const Kernels& k) { return k.gemv_q6_k; }
  // Signed q - 32 with the group scale: no offset term.
  static int weight(const BlockQ6_K& b, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int lo = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
    return (lo | (((b.qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
  }
  static double scale(const BlockQ6_K& b, int e) { return static_cast<double>(fp16_to_fp32(b.d)) * b.scales[e / 16]; }
  static double offset(const BlockQ6_K&, int) { return 0.0; }
  static void random(BlockQ6_K& b, std::mt19937& rng, bool unit) {
    for (auto& q : b.ql) q = static_cast<uint8_t>(rng() & 0xff);
    for (auto& q : b.qh) q = static_cast<uint8_t>(rng() & 0xff);
    for (auto& sc : b.scales)
      sc = static_cast<int8_t>(unit ? static_cast<int>(rng() % 5) - 2 : static_cast<int>(rng() & 0xff) - 128);
    b.d = random_scale(rng, unit);
  }
};

// Activation blocks: from random floats through the generic quantiser, or (unit) random bytes
// in [-127, 127] with d = 1 and s = sum q.
void random_act(BlockQ8A* a, int64_t nb, std::mt19937& rng, bool unit) {
  if (unit) {
    for (int64_t b = 0; b < nb; ++b) {
      int sum = 0;
      for (int j = 0; j < QK; ++j) sum += a[b].qs[j] = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      a[b].d = 1.0f;
      a[b].s = static_cast<float>(sum);
    }
    return;
  }
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(nb * QK);
  for (int64_t b = 0; b < nb; ++b) {
    const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 9) - 4);  // blocks of different magnitude
    for (int j = 0; j < QK; ++j) x[b * QK + j] = nd(rng) * scale;
  }
  generic_kernels()->quantize_q8a(x.data(), a, nb * QK);
}

template <class Block>
void check_gemv(bool unit) {
  using F = Fmt<Block>;
  constexpr int64_t kSub = F::kElems / QK;  // activation blocks per weight block
  std::mt19937 rng(unit ? 7 : 8);
  std::vector<const Kernels*> tables{generic_kernels(), avx512_kernels()};
  if (isa_supported(Isa::AVX2)) tables.push_back(avx2_kernels());
  // K-quants: 1, 2 and 6 super-blocks.
  const std::vector<int64_t> nbs =
      kSub == 1 ? std::vector<int64_t>{1, 2, 3, 17, 18, 48} : std::vector<int64_t>{8, 16, 48};
  for (int64_t nb : nbs)
    for (int64_t rows : {1, 3, 4, 5, 9})
      for (int64_t na : {1, 2, 3, 4, 5, 7}) {
        if (unit && nb > 18) continue;
        SCOPED_TRACE(testing::Message() << F::kName << (unit ? " unit scales" : "") << " nb=" << nb << " rows=" << rows
                                        << " na=" << na);
        // Rows padded by one block and activations by two, outputs strided: nothing may read or
        // write past the described extent.
        const int64_t nw = nb / kSub;  // weight blocks per row
        const size_t ws = static_cast<size_t>(nw + 1) * sizeof(Block);
        const int64_t as = nb + 2, ldy = rows + 3;
        std::vector<Block> w(static_cast<size_t>(rows * (nw + 1)));
        for (auto& b : w) F::random(b, rng, unit);
        std::vector<BlockQ8A> act(static_cast<size_t>(na * as));
        for (int64_t a = 0; a < na; ++a) random_act(act.data() + a * as, nb, rng, unit);
        // Exact value and the magnitude sum of the float terms, in double.
        std::vector<double> exact(na * rows), mag(na * rows);
        for (int64_t a = 0; a < na; ++a)
          for (int64_t r = 0; r < rows; ++r) {
            double s = 0, m = 0;
            for (int64_t b = 0; b < nb; ++b) {
              const Block& wb = w[r * (nw + 1) + b / kSub];
              const int sub = static_cast<int>(b % kSub);
              const BlockQ8A& ab = act[a * as + b];
              for (int j = 0; j < QK; ++j) {
                const int e = sub * QK + j;
                const double p = F::scale(wb, e) * ab.d * F::weight(wb, e) * ab.qs[j];
                s += p;
                m += std::fabs(p);
              }
              s += F::offset(wb, sub) * ab.s;
              m += std::fabs(F::offset(wb, sub) * ab.s);
            }
            exact[a * rows + r] = s;
            mag[a * rows + r] = m;
          }
        const double u = std::ldexp(1.0, -24), tol = (2.0 * nb + 8.0) * u;
        std::vector<std::vector<float>> got;
        for (const Kernels* t : tables) {
          std::vector<float> y(static_cast<size_t>(na * ldy), NAN);
          F::fn (*t)(w.data(), ws, rows, act.data(), as, na, nb * QK, y.data(), ldy);
          for (int64_t a = 0; a < na; ++a)
            for (int64_t r = ldy - 3; r < ldy; ++r) ASSERT_TRUE(std::isnan(y[a * ldy + r])) << "wrote past rows";
          for (int64_t a = 0; a < na; ++a)
            for (int64_t r = 0; r < rows; ++r) {
              const double v = y[a * ldy + r], e = exact[a * rows + r];
              if (unit)
                ASSERT_EQ(v, e) << isa_name(t->isa) << " a=" << a << " r=" << r;
              else
                ASSERT_NEAR(v, e, tol * mag[a * rows + r]) << isa_name(t->isa) << " a=" << a << " r=" << r;
            }
          got.push_back(std::move(y));
        }
        // AVX-512 against AVX2 (the last table) and generic: twice the per-table bound.
        for (size_t t = 0; t < tables.size(); ++t)
          for (int64_t a = 0; a < na; ++a)
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_NEAR(got[1][a * ldy + r], got[t][a * ldy + r], 2.0 * tol * mag[a * rows + r])
                  << "avx512 vs " << isa_name(tables[t]->isa);
      }
}

}  // namespace

TEST(Avx512Kernels, QuantizeActivationsBitForBitGeneric) {
  SKIP_WITHOUT_AVX512();
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t nb = 4096;
  std::vector<float> x(nb * QK);
  for (int64_t b = 0; b < nb; ++b) {
    const int kind = static_cast<int>(b % 8);
    const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 60) - 30);
    for (int j = 0; j < QK; ++j) {
      float v = nd(rng) * scale;
      if (kind == 1) v = 0.0f;                                                     // zero block
      if (kind == 2) v = static_cast<float>(static_cast<int>(rng() % 255) - 127);  // integers: amax 127 -> ties
      if (kind == 3) v = (static_cast<float>(rng() % 255) - 127.0f) + 0.5f;        // exact halves at scale ~1
      if (kind == 4 && j == 5) v = 1e30f;                                          // one huge value
      if (kind == 5) v = std::ldexp(nd(rng), -118);                                // tiny: 127 / amax near FLT_MAX
      x[b * QK + j] = v;
    }
    if (kind == 3) x[b * QK] = 127.5f;  // amax: id = 127 / 127.5, not 1
  }
  std::vector<BlockQ8A> want(nb), got(nb);
  generic_kernels()->quantize_q8a(x.data(), want.data(), nb * QK);
  avx512_kernels()->quantize_q8a(x.data(), got.data(), nb * QK);
  for (int64_t b = 0; b < nb; ++b) ASSERT_EQ(std::memcmp(&got[b], &want[b], sizeof(BlockQ8A)), 0) << "block " << b;
}

TEST(Avx512Kernels, IntegerGemvExactWithUnitScales) {
  SKIP_WITHOUT_AVX512();
  check_gemv<BlockQ8_0>(true);
  check_gemv<BlockQ4_0>(true);
  check_gemv<BlockQ4_1>(true);
  check_gemv<BlockQ5_0>(true);
  check_gemv<BlockQ5_1>(true);
  check_gemv<BlockQ4_K>(true);
  check_gemv<BlockQ5_K>(true);
  check_gemv<BlockQ6_K>(true);
}

TEST(Avx512Kernels, IntegerGemvMatchesOtherTables) {
  SKIP_WITHOUT_AVX512();
  check_gemv<BlockQ8_0>(false);
  check_gemv<BlockQ4_0>(false);
  check_gemv<BlockQ4_1>(false);
  check_gemv<BlockQ5_0>(false);
  check_gemv<BlockQ5_1>(false);
  check_gemv<BlockQ4_K>(false);
  check_gemv<BlockQ5_K>(false);
  check_gemv<BlockQ6_K>(false);
}

// Float GEMV kernels directly, with k not a multiple of 16 or 32 and strided rows.
TEST(Avx512Kernels, FloatGemvAgainstDouble) {
  SKIP_WITHOUT_AVX512();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const Kernels& k = *avx512_kernels();
  for (int64_t K : {1, 15, 16, 17, 31, 33, 64, 577})
    for (int64_t rows : {1, 5})
      for (int64_t na : {1, 3, 4, 7}) {
        const int64_t ldx = K + 5, ldy = rows + 2;
        std::vector<float> x(na * ldx), wf(rows * K);
        for (auto& v : x) v = nd(rng);
        for (auto& v : wf) v = nd(rng);
        std::vector<uint16_t> h(rows * K), bf(rows * K);
        std::vector<double> wh(rows * K), wb(rows * K);
        for (int64_t i = 0; i < rows * K; ++i) {
          h[i] = fp32_to_fp16(wf[i]), wh[i] = fp16_to_fp32(h[i]);
          bf[i] = fp32_to_bf16(wf[i]), wb[i] = bf16_to_fp32(bf[i]);
        }
        struct Case {
          FGemvFn fn;
          const void* w;
          size_t ws;
          const double* wd;
        };
        std::vector<double> w32(wf.begin(), wf.end());
        for (const Case& c :
             {Case{k.gemv_f32, wf.data(), K * 4ul, w32.data()}, Case{k.gemv_f16, h.data(), K * 2ul, wh.data()},
              Case{k.gemv_bf16, bf.data(), K * 2ul, wb.data()}}) {
          std::vector<float> y(na * ldy, NAN);
          c.fn(c.w, c.ws, rows, x.data(), ldx, na, K, y.data(), ldy);
          for (int64_t a = 0; a < na; ++a)
            for (int64_t r = 0; r < rows; ++r) {
              double s = 0, m = 0;
              for (int64_t j = 0; j < K; ++j)
                s += c.wd[r * K + j] * x[a * ldx + j], m += std::fabs(c.wd[r * K + j] * x[a * ldx + j]);
              // Recursive summation in 16 lanes (two accumulators) and a 16-lane reduction:
              // at most K / 16 + 8 roundings, each relative to sum |w x|.
              ASSERT_NEAR(y[a * ldy + r], s, (K / 16 + 8) * std::ldexp(1.0, -24) * m)
                  << "K=" << K << " a=" << a << " r=" << r;
            }
        }
      }
}
