// Causal GQA attention against a naive double-precision softmax(Q K^T * scale) V with an
// explicit causal mask, for both ISA tables. Tolerance 2e-5 relative to the output scale:
// scores and the weighted sum are float, exp is a 1-2 ulp polynomial in the AVX2 table.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/ops.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernel_test_util.h"

using namespace skv;
using namespace skv::backend::cpu;

namespace {

void fill(Tensor& t, std::mt19937& rng, float sd) {
  std::normal_distribution<float> nd(0.0f, sd);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = nd(rng);
}

void check(int64_t n, int64_t n_past, int64_t H, int64_t KV, int64_t D, float qk_sd, int64_t extra_capacity,
           std::mt19937& rng, int64_t window = 0) {
  SCOPED_TRACE(testing::Message() << "n=" << n << " n_past=" << n_past << " H=" << H << " KV=" << KV << " D=" << D
                                  << " sd=" << qk_sd << " window=" << window);
  const int64_t cap = n_past + n + extra_capacity;
  Tensor q = Tensor::empty(DType::F32, {n, H * D});
  Tensor k = Tensor::empty(DType::F32, {cap, KV * D});
  Tensor v = Tensor::empty(DType::F32, {cap, KV * D});
  fill(q, rng, qk_sd);
  fill(k, rng, qk_sd);
  fill(v, rng, 1.0f);
  // Rows past n_past + n - 1 must never be read: poison them.
  for (int64_t i = (n_past + n) * KV * D; i < cap * KV * D; ++i) k.as<float>()[i] = v.as<float>()[i] = NAN;
  // Keys before the first row's window are masked for every row: they must be skipped, not read.
  const int64_t first_seen = window > 0 ? std::max<int64_t>(0, n_past - window + 1) : 0;
  for (int64_t i = 0; i < first_seen * KV * D; ++i) k.as<float>()[i] = v.as<float>()[i] = NAN;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t G = H / KV;
  std::vector<double> ref(n * H * D);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t T = n_past + i + 1, kvh = h / G;
      const int64_t t0 = window > 0 ? std::max<int64_t>(0, T - window) : 0;  // i - W < t <= i
      std::vector<double> s(T, 0.0);
      double mx = -INFINITY;
      for (int64_t t = t0; t < T; ++t) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += static_cast<double>(q.as<float>()[i * H * D + h * D + d]) * k.as<float>()[t * KV * D + kvh * D + d];
        s[t] = dot * scale;
        mx = std::max(mx, s[t]);
      }
      double sum = 0;
      for (int64_t t = t0; t < T; ++t) sum += (s[t] = std::exp(s[t] - mx));
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t t = t0; t < T; ++t) o += s[t] * v.as<float>()[t * KV * D + kvh * D + d];
        ref[i * H * D + h * D + d] = o / sum;
      }
    }
  Tensor out = Tensor::empty(DType::F32, {n, H * D});
  for (Isa isa : isas()) {
    set_isa(isa);
    SCOPED_TRACE(isa_name(isa));
    backend::attention(q, k, v, n_past, H, KV, scale, out, window);
    for (int64_t e = 0; e < n * H * D; ++e)
      ASSERT_NEAR(out.as<float>()[e], ref[e], 2e-5 * (1.0 + std::fabs(ref[e]))) << "row " << e / (H * D);
  }
}

}  // namespace

TEST(Attention, GqaRatiosAndOffsets) {
  IsaRestore restore;
  std::mt19937 rng(11);
  struct HK {
    int64_t H, KV;
  };
  for (HK hk : {HK{3, 3}, HK{9, 3}, HK{9, 1}})  // GQA ratios 1, 3, 9
    for (int64_t D : {64, 8, 20, 128})
      for (int64_t n : {1, 7, 65})
        for (int64_t n_past : {0, 5, 130}) {
          check(n, n_past, hk.H, hk.KV, D, 1.0f, 3, rng);
          if (HasFatalFailure()) return;
        }
}

TEST(Attention, LongContextAndPeakyScores) {
  IsaRestore restore;
  std::mt19937 rng(12);
  check(1, 3000, 9, 3, 64, 1.0f, 0, rng);  // decode at a long position: many key tiles
  check(2, 700, 4, 2, 64, 3.0f, 17, rng);  // scores ~ +-70: exp overflows without the running max
  check(33, 0, 2, 1, 32, 4.0f, 0, rng);    // prefill with very peaked softmax
}

TEST(Attention, SlidingWindow) {
  IsaRestore restore;
  std::mt19937 rng(13);
  for (int64_t window : {1, 4, 16, 300})
    for (int64_t n : {1, 7, 40})
      for (int64_t n_past : {0, 5, 30, 130}) {
        check(n, n_past, 4, 2, 16, 1.0f, 2, rng, window);
        if (HasFatalFailure()) return;
      }
  check(1, 3000, 9, 3, 64, 1.0f, 0, rng, 700);  // decode with split key ranges inside the window
  check(3, 2000, 8, 1, 64, 1.0f, 0, rng, 1024);
}

TEST(Attention, WindowKeyCount) {
  EXPECT_EQ(backend::attention_keys(0, 5, 0), 15);
  EXPECT_EQ(backend::attention_keys(0, 5, 5), 15);
  EXPECT_EQ(backend::attention_keys(0, 5, 2), 1 + 2 + 2 + 2 + 2);
  EXPECT_EQ(backend::attention_keys(10, 3, 4), 12);
  EXPECT_EQ(backend::attention_keys(1, 4, 3), 2 + 3 + 3 + 3);
}

TEST(Attention, Checks) {
  Tensor q = Tensor::zeros(DType::F32, {2, 64});
  Tensor k = Tensor::zeros(DType::F32, {4, 32});
  Tensor v = Tensor::zeros(DType::F32, {4, 32});
  Tensor out = Tensor::zeros(DType::F32, {2, 64});
  EXPECT_NO_THROW(backend::attention(q, k, v, 2, 2, 1, 0.1f, out));
  EXPECT_THROW(backend::attention(q, k, v, 3, 2, 1, 0.1f, out), Error);      // past capacity
  EXPECT_THROW(backend::attention(q, k, v, 0, 3, 1, 0.1f, out), Error);      // 64 % 3
  EXPECT_THROW(backend::attention(q, k, v, 0, 2, 2, 0.1f, out), Error);      // cache width
  EXPECT_THROW(backend::attention(q, k, v, 0, 2, 1, 0.1f, out, -1), Error);  // window
}
