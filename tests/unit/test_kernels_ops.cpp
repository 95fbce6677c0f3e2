// rope (both pair styles), rms_norm, embedding, add_inplace, silu_mul, softmax / log-softmax
// against direct double-precision formulas, for both ISA tables.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "backend/ops.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernel_test_util.h"

using namespace skv;
using namespace skv::backend::cpu;

namespace {

Tensor randn(std::vector<int64_t> shape, std::mt19937& rng, float sd = 1.0f) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::normal_distribution<float> nd(0.0f, sd);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = nd(rng);
  return t;
}

}  // namespace

TEST(Rope, BothStylesAgainstFormula) {
  std::mt19937 rng(21);
  for (bool interleaved : {false, true})
    for (int64_t D : {64, 128, 6}) {
      backend::Rope rp;
      rp.head_dim = D;
      rp.interleaved = interleaved;
      rp.attention_factor = interleaved ? 1.0f : 1.1f;
      for (int64_t j = 0; j < D / 2; ++j)
        rp.inv_freq.push_back(static_cast<float>(1.0 / std::pow(10000.0, 2.0 * j / D)));
      const int64_t heads = 3, n = 9;
      std::vector<int32_t> pos = {0, 1, 2, 17, 511, 2047, 4095, 8191, 100000};
      Tensor x = randn({n, heads * D}, rng);
      std::vector<float> x0(x.as<float>(), x.as<float>() + x.numel());
      backend::rope(x, heads, backend::host_i32(pos.data(), n), rp);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < D / 2; ++j) {
            // HF: theta = fp32(pos) * inv_freq in fp32; cos/sin of that fp32 angle.
            const float theta = static_cast<float>(pos[i]) * rp.inv_freq[j];
            const double c = std::cos(static_cast<double>(theta)) * rp.attention_factor;
            const double s = std::sin(static_cast<double>(theta)) * rp.attention_factor;
            const int64_t a = interleaved ? 2 * j : j, b = interleaved ? 2 * j + 1 : j + D / 2;
            const double x1 = x0[i * heads * D + h * D + a], x2 = x0[i * heads * D + h * D + b];
            const float* got = x.as<float>() + i * heads * D + h * D;
            const double tol = 1e-6 * (1.0 + std::fabs(x1) + std::fabs(x2));
            ASSERT_NEAR(got[a], x1 * c - x2 * s, tol) << "pos " << pos[i] << " j " << j;
            ASSERT_NEAR(got[b], x2 * c + x1 * s, tol) << "pos " << pos[i] << " j " << j;
          }
    }
}

TEST(Rope, Checks) {
  backend::Rope rp;
  rp.head_dim = 8;
  rp.inv_freq = {1, 2, 3};  // should be 4
  Tensor x = Tensor::zeros(DType::F32, {1, 16});
  int32_t p = 0;
  EXPECT_THROW(backend::rope(x, 2, backend::host_i32(&p, 1), rp), Error);
  rp.inv_freq.push_back(4);
  EXPECT_NO_THROW(backend::rope(x, 2, backend::host_i32(&p, 1), rp));
  EXPECT_THROW(backend::rope(x, 3, backend::host_i32(&p, 1), rp), Error);
}

TEST(RmsNorm, AgainstDoubleAllWeightDtypes) {
  IsaRestore restore;
  std::mt19937 rng(22);
  for (int64_t d : {1, 7, 64, 576, 1000})
    for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
      const int64_t n = 5;
      Tensor x = randn({n, d}, rng, 3.0f);
      Tensor wf = randn({d}, rng);
      Tensor w = Tensor::empty(wt, {d});
      std::vector<double> wd(d);
      for (int64_t j = 0; j < d; ++j) {
        const float v = wf.as<float>()[j];
        if (wt == DType::F32) w.as<float>()[j] = v, wd[j] = v;
        if (wt == DType::BF16) w.as<uint16_t>()[j] = fp32_to_bf16(v), wd[j] = bf16_to_fp32(w.as<uint16_t>()[j]);
        if (wt == DType::F16) w.as<uint16_t>()[j] = fp32_to_fp16(v), wd[j] = fp16_to_fp32(w.as<uint16_t>()[j]);
      }
      for (Isa isa : isas()) {
        set_isa(isa);
        Tensor y = Tensor::empty(DType::F32, {n, d});
        backend::rms_norm(x, w, 1e-5f, y);
        Tensor xa = Tensor::empty(DType::F32, {n, d});  // in place (y aliases x)
        std::memcpy(xa.data, x.data, x.nbytes());
        backend::rms_norm(xa, w, 1e-5f, xa);
        for (int64_t i = 0; i < n; ++i) {
          double ss = 0;
          for (int64_t j = 0; j < d; ++j)
            ss += static_cast<double>(x.as<float>()[i * d + j]) * x.as<float>()[i * d + j];
          const double r = 1.0 / std::sqrt(ss / d + 1e-5);
          for (int64_t j = 0; j < d; ++j) {
            const double want = x.as<float>()[i * d + j] * r * wd[j];
            ASSERT_NEAR(y.as<float>()[i * d + j], want, 2e-6 * (1 + std::fabs(want)));
            ASSERT_EQ(xa.as<float>()[i * d + j], y.as<float>()[i * d + j]);
          }
        }
      }
    }
}

TEST(Embedding, AllTableDtypes) {
  IsaRestore restore;
  std::mt19937 rng(23);
  const int64_t vocab = 50;
  std::vector<int32_t> ids = {0, 49, 7, 7, 23};
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                   DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const int64_t d = dtype_block_size(dt) == QK_K ? 512 : 96;
    Tensor src = randn({vocab, d}, rng);
    Tensor table = Tensor::empty(dt, {vocab, d});
    std::vector<float> deq(vocab * d);
    for (int64_t r = 0; r < vocab; ++r) {
      const float* s = src.as<float>() + r * d;
      void* row = const_cast<uint8_t*>(table.row_ptr(r));
      float* dq = deq.data() + r * d;
      switch (dt) {
        case DType::F32:
          std::memcpy(row, s, d * 4), std::memcpy(dq, s, d * 4);
          break;
        case DType::F16:
          for (int64_t j = 0; j < d; ++j)
            static_cast<uint16_t*>(row)[j] = fp32_to_fp16(s[j]), dq[j] = fp16_to_fp32(fp32_to_fp16(s[j]));
          break;
        case DType::BF16:
          for (int64_t j = 0; j < d; ++j)
            static_cast<uint16_t*>(row)[j] = fp32_to_bf16(s[j]), dq[j] = bf16_to_fp32(fp32_to_bf16(s[j]));
          break;
        case DType::Q8_0:
          quantize_row_q8_0(s, static_cast<BlockQ8_0*>(row), d),
              dequantize_row_q8_0(static_cast<BlockQ8_0*>(row), dq, d);
          break;
        case DType::Q4_0:
          quantize_row_q4_0(s, static_cast<BlockQ4_0*>(row), d),
              dequantize_row_q4_0(static_cast<BlockQ4_0*>(row), dq, d);
          break;
        case DType::Q4_1:
          quantize_row_q4_1(s, static_cast<BlockQ4_1*>(row), d),
              dequantize_row_q4_1(static_cast<BlockQ4_1*>(row), dq, d);
          break;
        default:
          quantize_row(dt, s, row, d), dequantize_row(dt, row, dq, d);
          break;
      }
    }
    for (Isa isa : isas()) {
      set_isa(isa);
      Tensor out = Tensor::empty(DType::F32, {static_cast<int64_t>(ids.size()), d});
      backend::embedding(table, backend::host_i32(ids.data(), static_cast<int64_t>(ids.size())), out);
      for (size_t i = 0; i < ids.size(); ++i)
        for (int64_t j = 0; j < d; ++j)
          ASSERT_NEAR(out.as<float>()[i * d + j], deq[ids[i] * d + j], 1e-6f * (1 + std::fabs(deq[ids[i] * d + j])))
              << dtype_name(dt);
    }
    int32_t bad = 50;
    Tensor out1 = Tensor::empty(DType::F32, {1, d});
    EXPECT_THROW(backend::embedding(table, backend::host_i32(&bad, 1), out1), Error);
  }
}

TEST(Elementwise, AddSiluMul) {
  IsaRestore restore;
  std::mt19937 rng(24);
  for (int64_t n : {1, 7, 8, 9, 1536, 100003}) {
    Tensor a = randn({1, n}, rng, 4.0f), b = randn({1, n}, rng);
    for (Isa isa : isas()) {
      set_isa(isa);
      Tensor y = Tensor::empty(DType::F32, {1, n});
      std::memcpy(y.data, a.data, a.nbytes());
      backend::add_inplace(y, b);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(y.as<float>()[j], a.as<float>()[j] + b.as<float>()[j]);
      backend::silu_mul(a, b, y);
      for (int64_t j = 0; j < n; ++j) {
        const double g = a.as<float>()[j];
        const double want = g / (1.0 + std::exp(-g)) * b.as<float>()[j];
        ASSERT_NEAR(y.as<float>()[j], want, 1e-6 * (1 + std::fabs(want))) << j;
      }
      // out aliasing gate, as the model does.
      Tensor g2 = Tensor::empty(DType::F32, {1, n});
      std::memcpy(g2.data, a.data, a.nbytes());
      backend::silu_mul(g2, b, g2);
      ASSERT_EQ(std::memcmp(g2.data, y.data, y.nbytes()), 0);
    }
  }
  // Extreme gates.
  Tensor g = Tensor::empty(DType::F32, {1, 8}), u = Tensor::empty(DType::F32, {1, 8}),
         o = Tensor::empty(DType::F32, {1, 8});
  const float gv[8] = {-200.f, -88.f, -30.f, 0.f, 1e-30f, 30.f, 88.f, 200.f};
  for (int j = 0; j < 8; ++j) g.as<float>()[j] = gv[j], u.as<float>()[j] = 1.0f;
  for (Isa isa : isas()) {
    set_isa(isa);
    backend::silu_mul(g, u, o);
    for (int j = 0; j < 8; ++j) {
      const double want = gv[j] / (1.0 + std::exp(-static_cast<double>(gv[j])));
      EXPECT_NEAR(o.as<float>()[j], want, 1e-6 * (1 + std::fabs(want))) << gv[j];
    }
  }
}

TEST(Softmax, LogSoftmaxAndSoftmax) {
  std::mt19937 rng(25);
  for (int64_t v : {1, 5, 49152}) {
    Tensor x = randn({3, v}, rng, 5.0f);
    x.as<float>()[0] = 80.0f;  // large logit
    Tensor ls = Tensor::empty(DType::F32, {3, v}), sm = Tensor::empty(DType::F32, {3, v});
    std::memcpy(ls.data, x.data, x.nbytes());
    std::memcpy(sm.data, x.data, x.nbytes());
    backend::log_softmax_rows(ls);
    backend::softmax_rows(sm);
    for (int64_t i = 0; i < 3; ++i) {
      const float* r = x.as<float>() + i * v;
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(r[j]));
      for (int64_t j = 0; j < v; ++j) sum += std::exp(r[j] - mx);
      double total = 0;
      for (int64_t j = 0; j < v; ++j) {
        const double want = r[j] - mx - std::log(sum);
        ASSERT_NEAR(ls.as<float>()[i * v + j], want, 2e-5 * (1 + std::fabs(want)));
        ASSERT_NEAR(sm.as<float>()[i * v + j], std::exp(want), 1e-6 + 1e-5 * std::exp(want));
        total += sm.as<float>()[i * v + j];
      }
      EXPECT_NEAR(total, 1.0, 1e-4);
    }
  }
}

TEST(Threads, SetAndGet) {
  const int saved = backend::cpu::num_threads();
  backend::cpu::set_num_threads(3);
  EXPECT_EQ(backend::cpu::num_threads(), 3);
  backend::cpu::set_num_threads(0);
  EXPECT_GE(backend::cpu::num_threads(), 1);
  backend::cpu::set_num_threads(saved);
}
