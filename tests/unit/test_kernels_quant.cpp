// fp16 / bf16 conversions, ggml block formats (bit compatibility with hand-built blocks),
// reference quantise / dequantise round trips, and the per-ISA to-float and activation
// quantisation kernels against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "kernel_test_util.h"

using namespace skv::backend::cpu;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Independent reference: round |f| to a binary format with `mant` fraction bits and minimum
// normal exponent `emin` (subnormals below), in double, ties to even. Returns +-inf past `max`.
double round_ref(float f, int mant, int emin, double max_finite) {
  const double a = std::fabs(static_cast<double>(f));
  if (a == 0.0) return static_cast<double>(f);
  int e = static_cast<int>(std::floor(std::log2(a)));
  if (std::ldexp(1.0, e) > a) --e;  // guard log2 rounding
  if (std::ldexp(1.0, e + 1) <= a) ++e;
  if (e < emin) e = emin;
  const double ulp = std::ldexp(1.0, e - mant);
  double q = std::nearbyint(a / ulp) * ulp;  // a / ulp exact (power of two); RNE
  // Overflow: anything that rounds above max_finite becomes inf.
  if (q > max_finite) q = INFINITY;
  return f < 0 ? -q : q;
}

}  // namespace

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(bits(fp16_to_fp32(0x8000)), 0x80000000u);
  EXPECT_EQ(fp16_to_fp32(0x7c00), INFINITY);
  EXPECT_EQ(fp16_to_fp32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65519.996f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);    // halfway: ties to even = inf
  EXPECT_EQ(fp32_to_fp16(1e9f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24: even
  EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp: tie to even (2)
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie, even mantissa
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie, odd -> up
  const uint16_t nan = fp32_to_fp16(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}

TEST(Fp16, AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0);
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << "h=" << h;
    // The value itself, independently: sign, exponent, mantissa.
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? INFINITY : std::ldexp(1024 + m, e - 25);
    if (h & 0x8000) v = -v;
    ASSERT_EQ(static_cast<double>(f), v) << "h=" << h;
  }
}

TEST(Fp16, RoundToNearestEvenAgainstReference) {
  std::vector<float> xs;
  // Every halfway point between adjacent halves, and its neighbours.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const double mid = 0.5 * (static_cast<double>(fp16_to_fp32(h)) + fp16_to_fp32(h + 1));
    const float f = static_cast<float>(mid);
    xs.push_back(f);
    xs.push_back(std::nextafter(f, 0.0f));
    xs.push_back(std::nextafter(f, INFINITY));
  }
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> u;
  for (int i = 0; i < 200000; ++i) {
    // Random floats over the fp16 range and a bit beyond (exponents 2^-30 .. 2^17).
    const uint32_t b = (u(rng) & 0x807fffffu) | ((97u + u(rng) % 48u) << 23);
    xs.push_back(from_bits(b));
  }
  for (float f : xs) {
    for (float g : {f, -f}) {
      const double want = round_ref(g, 10, -14, 65504.0);
      const double got = fp16_to_fp32(fp32_to_fp16(g));
      ASSERT_EQ(got, want) << "f=" << g << " bits=" << std::hex << bits(g);
    }
  }
}

TEST(E4m3, EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) {  // NaN
      EXPECT_TRUE(std::isnan(e4m3_to_fp32(static_cast<uint8_t>(c))));
      continue;
    }
    EXPECT_EQ(fp32_to_e4m3(e4m3_to_fp32(static_cast<uint8_t>(c))), c) << c;
  }
  EXPECT_EQ(e4m3_to_fp32(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_fp32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_fp32(0x08), std::ldexp(1.0f, -6));
}

TEST(E4m3, RoundToNearestEvenAgainstReferenceAndSaturates) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> exp(-12.0f, 9.5f);
  for (int i = 0; i < 200000; ++i) {
    const float f = (rng() & 1 ? -1.0f : 1.0f) * std::exp2(exp(rng));
    double want = round_ref(f, 3, -6, 448.0);
    if (std::isinf(want)) want = f < 0 ? -448.0 : 448.0;  // E4M3 has no infinity: saturate
    ASSERT_EQ(static_cast<double>(e4m3_to_fp32(fp32_to_e4m3(f))), want) << f;
  }
  EXPECT_EQ(e4m3_to_fp32(fp32_to_e4m3(1e9f)), 448.0f);
  EXPECT_EQ(e4m3_to_fp32(fp32_to_e4m3(-1e9f)), -448.0f);
}

TEST(Mxfp8, ScaleIsTheSmallestPowerOfTwoThatKeepsEveryValue) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(32 * 40), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = nd(rng) * std::exp2(static_cast<float>(static_cast<int>(i / 32) - 20));
  std::vector<BlockMXFP8> b(40);
  quantize_row_mxfp8(x.data(), b.data(), static_cast<int64_t>(x.size()));
  dequantize_row_mxfp8(b.data(), y.data(), static_cast<int64_t>(x.size()));
  for (int k = 0; k < 40; ++k) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[k * 32 + j]));
    const int s = static_cast<int>(b[k].e) - 127;
    EXPECT_LE(amax, std::ldexp(448.0f, s)) << k;      // nothing clips
    EXPECT_GT(amax, std::ldexp(448.0f, s - 1)) << k;  // and no smaller scale would do
    for (int j = 0; j < 32; ++j) {
      const double want = round_ref(std::ldexp(x[k * 32 + j], -s), 3, -6, 448.0);
      EXPECT_EQ(static_cast<double>(y[k * 32 + j]), std::ldexp(want, s)) << k << " " << j;
    }
  }
  std::vector<float> zeros(32, 0.0f), back(32, 1.0f);
  BlockMXFP8 z;
  quantize_row_mxfp8(zeros.data(), &z, 32);
  dequantize_row_mxfp8(&z, back.data(), 32);
  for (float v : back) EXPECT_EQ(v, 0.0f);
}

TEST(Bf16, RoundToNearestEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd -> up
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(from_bits(0x7f800001u)))));  // low-payload nan stays nan
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00000001u)), 0x0000);                      // tiny subnormal -> +0
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00018000u)), 0x0002);                      // subnormal tie, odd -> up
  std::mt19937 rng(2);
  std::uniform_int_distribution<uint32_t> u;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t b = (u(rng) & 0x807fffffu) | ((1u + u(rng) % 253u) << 23);  // normal floats
    const float f = from_bits(b);
    const double want = round_ref(f, 7, -126, 3.3895313892515355e38);
    ASSERT_EQ(static_cast<double>(bf16_to_fp32(fp32_to_bf16(f))), want) << std::hex << b;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(fp32_to_bf16(f), h);
    }
  }
}

// Blocks built by hand from ggml's quantize_row_*_ref definitions.
TEST(Blocks, Q4_0HandBuilt) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  // max by magnitude is x[0] = -16 -> d = -16 / -8 = 2, q = min(15, (int)(x / 2 + 8.5)).
  const uint8_t want[18] = {0x00, 0x40, 0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3,
                            0xC4, 0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0xF8};
  BlockQ4_0 b;
  quantize_row_q4_0(x, &b, 32);
  ASSERT_EQ(std::memcmp(&b, want, 18), 0);
  float y[32];
  dequantize_row_q4_0(&b, y, 32);
  for (int j = 0; j < 32; ++j) {
    const int q = j < 31 ? (j + 1) / 2 : 15;  // element j's nibble
    EXPECT_EQ(y[j], 2.0f * (q - 8)) << j;
  }
}

TEST(Blocks, Q4_1HandBuilt) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16 + 3);
  x[5] = 7.5f;  // (7.5 - 3) / 1 + 0.5 = 5.0 -> 5 (ggml rounds halves up; RNE would give 4)
  // min 3, max 18 -> d = 1, m = 3; q = j % 16.
  uint8_t want[20] = {0x00, 0x3c, 0x00, 0x42};
  for (int j = 0; j < 16; ++j) want[4 + j] = static_cast<uint8_t>(j | (j << 4));
  BlockQ4_1 b;
  quantize_row_q4_1(x, &b, 32);
  ASSERT_EQ(std::memcmp(&b, want, 20), 0);
  float y[32];
  dequantize_row_q4_1(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>(j % 16 + 3)) << j;
}

TEST(Blocks, Q8_0HandBuilt) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(8 * j - 127);
  x[1] = -118.5f;  // roundf: half away from zero -> -119
  x[2] = 2.5f;     // -> 3
  // amax = 127 -> d = 1 (fp16 0x3c00), q = roundf(x).
  int8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(8 * j - 127);
  q[1] = -119;
  q[2] = 3;
  uint8_t want[34] = {0x00, 0x3c};
  std::memcpy(want + 2, q, 32);
  BlockQ8_0 b;
  quantize_row_q8_0(x, &b, 32);
  ASSERT_EQ(std::memcmp(&b, want, 34), 0);
  float y[32];
  dequantize_row_q8_0(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>(q[j]));
}

TEST(Blocks, Q5_0HandBuilt) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  x[4] = -11.5f;  // -11.5 / 1 + 16.5 = 5.0 -> 5 (ggml truncates x + 16.5; RNE of 4.5 would give 4)
  // max by magnitude is x[0] = -16 -> d = -16 / -16 = 1; q = min(31, (int)(x + 16.5)) = j.
  // Elements 16..31 have q >= 16: bits 16..31 of qh; nibbles j | (j << 4) (q[j + 16] & 15 = j).
  uint8_t want[22] = {0x00, 0x3c, 0x00, 0x00, 0xff, 0xff};
  for (int j = 0; j < 16; ++j) want[6 + j] = static_cast<uint8_t>(j | (j << 4));
  want[6 + 4] = 0x45;  // q[4] = 5
  BlockQ5_0 b;
  quantize_row_q5_0(x, &b, 32);
  ASSERT_EQ(std::memcmp(&b, want, 22), 0);
  float y[32];
  dequantize_row_q5_0(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], j == 4 ? -11.0f : static_cast<float>(j - 16)) << j;
}

TEST(Blocks, Q5_1HandBuilt) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j + 3);
  x[5] = 7.5f;  // (7.5 - 3) / 1 + 0.5 = 5.0 -> 5 (RNE would give 4)
  // min 3, max 34 -> d = 31 / 31 = 1, m = 3 (fp16 0x4200); q = j.
  uint8_t want[24] = {0x00, 0x3c, 0x00, 0x42, 0x00, 0x00, 0xff, 0xff};
  for (int j = 0; j < 16; ++j) want[8 + j] = static_cast<uint8_t>(j | (j << 4));
  BlockQ5_1 b;
  quantize_row_q5_1(x, &b, 32);
  ASSERT_EQ(std::memcmp(&b, want, 24), 0);
  float y[32];
  dequantize_row_q5_1(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], j == 5 ? 8.0f : static_cast<float>(j + 3)) << j;
}

// K-quant super-blocks built byte by byte, decoded by hand from ggml-common.h's description
// (get_scale_min_k4 for the 6-bit scales and mins, the nibble / high-bit order of
// dequantize_row_q*_K), every value exact in float.
namespace {

// 12 packed scale bytes and what they hold, worked out by hand: sub-blocks 0..3 use the low 6
// bits of bytes j (scale) and j + 4 (min); 4..7 the nibbles of byte j + 4 (low: scale, high:
// min) with the top two bits of bytes j - 4 (scale) and j (min) as bits 4..5.
const uint8_t kScales[12] = {0x41, 0x02, 0xC3, 0x04, 0x85, 0x06, 0x07, 0x48, 0x9A, 0xBC, 0xDE, 0xF1};
// j = 4: 0x9A & 15 = 10, 0x41 >> 6 = 1 -> 26;  min 0x9A >> 4 = 9, 0x85 >> 6 = 2 -> 41
// j = 5: 0xBC & 15 = 12, 0x02 >> 6 = 0 -> 12;  min 11, 0x06 >> 6 = 0 -> 11
// j = 6: 0xDE & 15 = 14, 0xC3 >> 6 = 3 -> 62;  min 13, 0x07 >> 6 = 0 -> 13
// j = 7: 0xF1 & 15 = 1,  0x04 >> 6 = 0 -> 1;   min 15, 0x48 >> 6 = 1 -> 31
const int kSc[8] = {1, 2, 3, 4, 26, 12, 62, 1};
const int kMin[8] = {5, 6, 7, 8, 41, 11, 13, 31};

// Byte i of qs is i: element 64 c + l is the low nibble of qs[32 c + l], element 64 c + 32 + l
// its high nibble.
int k_nibble(int e) {
  const int c = e / 64, l = e % 32;
  const int byte = 32 * c + l;
  return e % 64 < 32 ? byte & 15 : byte >> 4;
}

}  // namespace

TEST(Blocks, KScalesMinsHandDecoded) {
  uint8_t sc[8], m[8];
  k_scales_mins(kScales, sc, m);
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(sc[j], kSc[j]) << j;
    EXPECT_EQ(m[j], kMin[j]) << j;
  }
}

TEST(Blocks, Q4_KHandBuilt) {
  BlockQ4_K b[2];
  for (BlockQ4_K& x : b) {
    x.d = 0x3800;     // 0.5
    x.dmin = 0x3400;  // 0.25
    std::memcpy(x.scales, kScales, 12);
    for (int i = 0; i < 128; ++i) x.qs[i] = static_cast<uint8_t>(i);
  }
  b[1].d = 0x4000;  // 2.0: the second super-block uses its own scales
  float y[512];
  dequantize_row_q4_K(b, y, 512);
  for (int e = 0; e < 512; ++e) {
    const int j = (e % 256) / 32;
    const float d = e < 256 ? 0.5f : 2.0f;
    ASSERT_EQ(y[e], d * kSc[j] * k_nibble(e % 256) - 0.25f * kMin[j]) << e;
  }
  EXPECT_EQ(y[0], -1.25f);                           // q 0, min 5: -0.25 * 5
  EXPECT_EQ(y[255], -4.25f);                         // high nibble of qs[127] = 7, sub-block 7: 0.5 * 1 * 7 - 0.25 * 31
  EXPECT_EQ(y[256 + 70], 2.0f * 3 * 6 - 0.25f * 7);  // qs[38] = 0x26 low nibble 6, sub-block 2
}

TEST(Blocks, Q5_KHandBuilt) {
  BlockQ5_K b;
  b.d = 0x3800;
  b.dmin = 0x3400;
  std::memcpy(b.scales, kScales, 12);
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>(i);
  for (int l = 0; l < 32; ++l) b.qh[l] = static_cast<uint8_t>(l * 37);
  float y[256];
  dequantize_row_q5_K(&b, y, 256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32, l = e % 32;
    const int q = k_nibble(e) + 16 * ((b.qh[l] >> j) & 1);  // sub-block j's fifth bit: bit j of qh[l]
    ASSERT_EQ(y[e], 0.5f * kSc[j] * q - 0.25f * kMin[j]) << e;
  }
  // qh[1] = 37 = 0b00100101: sub-blocks 0, 2, 5 have the fifth bit at l = 1.
  EXPECT_EQ(y[1], 0.5f * 1 * (1 + 16) - 0.25f * 5);
  EXPECT_EQ(y[33], 0.5f * 2 * 0 - 0.25f * 6);
  // Element 161 = 64 * 2 + 32 + 1: high nibble of qs[65] = 4, plus 16 -> 20; sub-block 5.
  EXPECT_EQ(y[161], 117.25f);
}

TEST(Blocks, Q6_KHandBuilt) {
  BlockQ6_K b;
  b.d = 0x3800;  // 0.5
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>(i * 37);
  float y[256];
  dequantize_row_q6_K(&b, y, 256);
  // Element 0: ql[0] = 0 low nibble, qh[0] = 0 -> q 0 -> (0 - 32) * 0.5 * (0 - 8) = 128.
  EXPECT_EQ(y[0], 128.0f);
  // Element 100 = quarter 3 of half 0, l = 4: ql[36] = 0x24 high nibble 2, qh[4] = 148 =
  // 0b10010100 bits 6..7 = 2 -> q = 2 + 32 = 34; group 6 (scale -2): 0.5 * -2 * (34 - 32) = -2.
  EXPECT_EQ(y[100], -2.0f);
  // Element 200 = half 1, quarter 2, l = 8: ql[72] = 0x48 high nibble 4, qh[40] = 1480 & 255 =
  // 200 = 0b11001000 bits 4..5 = 0 -> q = 4; group 12 (scale 4): 0.5 * 4 * (4 - 32) = -56.
  EXPECT_EQ(y[200], -56.0f);
  // Element 45 = quarter 1 of half 0, l = 13: ql[45] = 0x2D low nibble 13, qh[13] = 481 & 255 =
  // 225 = 0b11100001 bits 2..3 = 0 -> q = 13; group 2 (scale -6): 0.5 * -6 * (13 - 32) = 57.
  EXPECT_EQ(y[45], 57.0f);
  // Element 255 = half 1, quarter 3, l = 31: ql[127] = 0x7F high nibble 7, qh[63] = 2331 & 255 =
  // 27 = 0b00011011 bits 6..7 = 0 -> q = 7; group 15 (scale 7): 0.5 * 7 * (7 - 32) = -87.5.
  EXPECT_EQ(y[255], -87.5f);
}

TEST(Blocks, ZeroBlocks) {
  float x[32] = {};
  BlockQ8_0 a;
  BlockQ4_0 b;
  BlockQ4_1 c;
  quantize_row_q8_0(x, &a, 32);
  quantize_row_q4_0(x, &b, 32);
  quantize_row_q4_1(x, &c, 32);
  float y[32];
  dequantize_row_q8_0(&a, y, 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  dequantize_row_q4_0(&b, y, 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  dequantize_row_q4_1(&c, y, 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  float z[256] = {}, w[256];
  for (skv::DType t : {skv::DType::Q5_0, skv::DType::Q5_1, skv::DType::Q4_K, skv::DType::Q5_K, skv::DType::Q6_K}) {
    std::vector<uint8_t> blk(skv::dtype_row_bytes(t, 256));
    quantize_row(t, z, blk.data(), 256);
    dequantize_row(t, blk.data(), w, 256);
    for (float v : w) EXPECT_EQ(v, 0.0f) << skv::dtype_name(t);
  }
}

// The quantisers for the 5-bit and K formats: Q5_0 / Q5_1 are bounded like Q4_0 / Q4_1 with 32
// levels. The K-quant ones (ours, not ggml's search) are held to their normalised error on
// Gaussian rows with sub-blocks of different scale; 4 bits give about 1e-2, each further bit 4x
// less.
TEST(Blocks, FiveBitAndKRoundTrips) {
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 256 * 12;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i)
    x[i] = nd(rng) * (0.2f + static_cast<float>((i / 32) % 5)) + ((i / 16) % 3 == 0 ? 0.7f : 0.0f);
  std::vector<BlockQ5_0> q50(n / 32);
  quantize_row_q5_0(x.data(), q50.data(), n);
  dequantize_row_q5_0(q50.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), amax / 16 * (1.0f + 16.0f / 2048) * 1.001f);
  }
  std::vector<BlockQ5_1> q51(n / 32);
  quantize_row_q5_1(x.data(), q51.data(), n);
  dequantize_row_q5_1(q51.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float mn = 1e30f, mx = -1e30f;
    for (int j = 0; j < 32; ++j) mn = std::min(mn, x[b * 32 + j]), mx = std::max(mx, x[b * 32 + j]);
    const float d = (mx - mn) / 31;
    const float bound = d * (0.5f + 31.0f / 2048) + std::fabs(mn) / 2048;
    for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound * 1.001f + 1e-6f);
  }
  struct KCase {
    skv::DType t;
    double max_nmse;
  };
  for (const KCase& c : {KCase{skv::DType::Q4_K, 2e-2}, KCase{skv::DType::Q5_K, 5e-3}, KCase{skv::DType::Q6_K, 2e-3}}) {
    std::vector<uint8_t> q(skv::dtype_row_bytes(c.t, n));
    quantize_row(c.t, x.data(), q.data(), n);
    dequantize_row(c.t, q.data(), y.data(), n);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i)
      num += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]), den += x[i] * static_cast<double>(x[i]);
    EXPECT_LT(num / den, c.max_nmse) << skv::dtype_name(c.t);
    std::printf("  %s round trip NMSE %.2e\n", skv::dtype_name(c.t), num / den);
  }
}

// Round trips: the error of each element is bounded by half a step, plus what the fp16
// rounding of the scale (and offset) adds: |q| * |d - fp16(d)| <= |q| d 2^-11.
TEST(Blocks, RoundTripErrorBounds) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 32 * 64;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng) * 3.0f;
  std::vector<BlockQ8_0> q8(n / 32);
  std::vector<BlockQ4_0> q40(n / 32);
  std::vector<BlockQ4_1> q41(n / 32);
  quantize_row_q8_0(x.data(), q8.data(), n);
  dequantize_row_q8_0(q8.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), amax / 127 * (0.5f + 127.0f / 2048) * 1.001f);
  }
  quantize_row_q4_0(x.data(), q40.data(), n);
  dequantize_row_q4_0(q40.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    // Step amax / 8; the side opposite the max element can clip by up to one step.
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), amax / 8 * (1.0f + 8.0f / 2048) * 1.001f);
  }
  quantize_row_q4_1(x.data(), q41.data(), n);
  dequantize_row_q4_1(q41.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float mn = 1e30f, mx = -1e30f;
    for (int j = 0; j < 32; ++j) mn = std::min(mn, x[b * 32 + j]), mx = std::max(mx, x[b * 32 + j]);
    const float d = (mx - mn) / 15;
    const float bound = d * (0.5f + 15.0f / 2048) + std::fabs(mn) / 2048;
    for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound * 1.001f + 1e-6f);
  }
}

TEST(IsaKernels, ToFloatMatchesReference) {
  IsaRestore restore;
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int64_t n : {32, 96, 576, 1536}) {
    std::vector<float> x(n), want(n), got(n);
    for (auto& v : x) v = nd(rng);
    std::vector<uint16_t> h(n), bf(n);
    for (int64_t j = 0; j < n; ++j) h[j] = fp32_to_fp16(x[j]), bf[j] = fp32_to_bf16(x[j]);
    std::vector<BlockQ8_0> q8(n / 32);
    std::vector<BlockQ4_0> q40(n / 32);
    std::vector<BlockQ4_1> q41(n / 32);
    quantize_row_q8_0(x.data(), q8.data(), n);
    quantize_row_q4_0(x.data(), q40.data(), n);
    quantize_row_q4_1(x.data(), q41.data(), n);
    for (Isa isa : isas()) {
      set_isa(isa);
      SCOPED_TRACE(isa_name(isa));
      const Kernels& k = kernels();
      k.to_float_f16(h.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got[j], fp16_to_fp32(h[j]));
      k.to_float_bf16(bf.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got[j], bf16_to_fp32(bf[j]));
      // Quantised: exact up to the fused multiply-add of d * q + m (one rounding fewer).
      dequantize_row_q8_0(q8.data(), want.data(), n);
      k.to_float_q8_0(q8.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got[j], want[j]);
      dequantize_row_q4_0(q40.data(), want.data(), n);
      k.to_float_q4_0(q40.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got[j], want[j]);
      dequantize_row_q4_1(q41.data(), want.data(), n);
      k.to_float_q4_1(q41.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_NEAR(got[j], want[j], 1e-6f * (1.0f + std::fabs(want[j])));
    }
  }
  // The 5-bit and K formats: rows of 1 and 6 super-blocks, random bytes (every bit pattern, any
  // scale) as well as quantised values. Exact up to the fused multiply-add of d * q + m for Q5_1.
  for (int64_t n : {256, 1536}) {
    for (skv::DType t : {skv::DType::Q5_0, skv::DType::Q5_1, skv::DType::Q4_K, skv::DType::Q5_K, skv::DType::Q6_K}) {
      for (bool random_bytes : {false, true}) {
        std::vector<float> x(n), want(n), got(n);
        for (auto& v : x) v = nd(rng);
        std::vector<uint8_t> q(skv::dtype_row_bytes(t, n));
        quantize_row(t, x.data(), q.data(), n);
        if (random_bytes) {
          for (auto& b : q) b = static_cast<uint8_t>(rng());
          // Keep the fp16 scales finite: exponent field at most 29 (bit 11 cleared).
          const size_t bb = skv::dtype_block_bytes(t);
          for (size_t off = 0; off < q.size(); off += bb) {
            const size_t pos = t == skv::DType::Q6_K ? 208 : 0;  // Q6_K's d is last
            const int nscales = t == skv::DType::Q6_K || t == skv::DType::Q5_0 ? 1 : 2;
            for (int s = 0; s < nscales; ++s) q[off + pos + 2 * s + 1] &= 0xF7;
          }
        }
        dequantize_row(t, q.data(), want.data(), n);
        for (Isa isa : isas()) {
          set_isa(isa);
          SCOPED_TRACE(testing::Message() << isa_name(isa) << " " << skv::dtype_name(t) << " n=" << n);
          to_float_for(kernels(), t)(q.data(), got.data(), n);
          for (int64_t j = 0; j < n; ++j) ASSERT_NEAR(got[j], want[j], 1e-6f * (1.0f + std::fabs(want[j]))) << j;
        }
      }
    }
  }
  // Odd lengths for the plain formats (tails of the 8- and 16-lane loops).
  for (int64_t n : {1, 7, 9, 15, 17, 31, 33}) {
    std::vector<uint16_t> h(n);
    std::vector<float> got(n);
    for (int64_t j = 0; j < n; ++j) h[j] = static_cast<uint16_t>(0x3c00 + 37 * j);
    for (Isa isa : isas()) {
      set_isa(isa);
      kernels().to_float_f16(h.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got[j], fp16_to_fp32(h[j]));
      kernels().to_float_bf16(h.data(), got.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(got[j], bf16_to_fp32(h[j]));
    }
  }
}

// Activation quantisation: d = amax / 127, q = round-half-even(x * 127 / amax), s = d sum q;
// every ISA must produce identical blocks.
TEST(IsaKernels, QuantizeActivationsIdenticalAcrossIsas) {
  IsaRestore restore;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 1536;
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  for (int j = 0; j < 32; ++j) x[32 + j] = 0.0f;                          // all-zero block
  for (int j = 0; j < 32; ++j) x[64 + j] = static_cast<float>(j) - 0.5f;  // a ramp
  x[96] = 127.0f;
  x[97] = 0.5f;   // exactly a tie at scale 1: RNE -> 0
  x[98] = 1.5f;   // -> 2
  x[99] = -2.5f;  // -> -2
  std::vector<BlockQ8A> ref(n / 32), got(n / 32);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      ref[b].qs[j] = static_cast<int8_t>(std::nearbyint(x[b * 32 + j] * id));
      sum += ref[b].qs[j];
    }
    ref[b].d = amax / 127.0f;
    ref[b].s = ref[b].d * static_cast<float>(sum);
  }
  EXPECT_EQ(ref[3].qs[1], 0);
  EXPECT_EQ(ref[3].qs[2], 2);
  EXPECT_EQ(ref[3].qs[3], -2);
  for (Isa isa : isas()) {
    set_isa(isa);
    SCOPED_TRACE(isa_name(isa));
    kernels().quantize_q8a(x.data(), got.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      ASSERT_EQ(got[b].d, ref[b].d) << b;
      ASSERT_EQ(got[b].s, ref[b].s) << b;
      ASSERT_EQ(std::memcmp(got[b].qs, ref[b].qs, 32), 0) << b;
    }
  }
}

TEST(Dispatch, ParseAndSelect) {
  IsaRestore restore;
  EXPECT_EQ(parse_isa("generic"), Isa::Generic);
  EXPECT_EQ(parse_isa("AVX2"), Isa::AVX2);
  EXPECT_EQ(parse_isa("avx512"), Isa::AVX512);
  EXPECT_ANY_THROW(parse_isa("sse9"));
  set_isa(Isa::Generic);
  EXPECT_EQ(active_isa(), Isa::Generic);
  if (isa_supported(Isa::AVX2)) {
    set_isa(Isa::AVX2);
    EXPECT_EQ(active_isa(), Isa::AVX2);
  }
  if (isa_supported(Isa::AVX512)) {
    set_isa(Isa::AVX512);
    EXPECT_EQ(active_isa(), Isa::AVX512);
    EXPECT_EQ(detected_isa(), Isa::AVX512);
    EXPECT_EQ(isa_missing(Isa::AVX512), nullptr);
  } else {
    EXPECT_ANY_THROW(set_isa(Isa::AVX512));
    EXPECT_NE(isa_missing(Isa::AVX512), nullptr);
  }
}
