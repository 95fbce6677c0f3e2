// linear() for every weight dtype, both ISA tables and both paths (GEMV / GEMM) against a
// double-precision reference over odd sizes.
//
// References and tolerances:
// - GEMM path (float activations): ref = sum_j w_j x_j in double with w the exactly
//   dequantised weights. Float accumulation error is bounded by k u sum|w_j x_j|; blocked /
//   pairwise sums stay far below that, so tol = 2e-5 * sum|w_j x_j| (about 170 u) + 1e-6.
// - GEMV path, quantised weights: the activations are quantised to 8 bits first (the kernel
//   contract), so ref = sum_j w_j xq_j with xq the dequantised Q8 activation computed by an
//   independent scalar quantiser here; same float tolerance. A second check bounds the
//   quantisation error itself against the float reference: |err| <= sum_j |w_j| d_j / 2.
// - GEMV path, float weights: like GEMM.
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

// Weight tensor of dtype t from float values (quantised with the ggml reference), plus the
// exact float values it represents.
struct Weight {
  Tensor t;
  std::vector<float> deq;  // [out, in]
};

Weight make_weight(DType t, int64_t out, int64_t in, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.2f, 2.0f);
  std::vector<float> w(out * in);
  for (int64_t r = 0; r < out; ++r) {
    const float s = scale(rng);  // rows of different magnitude
    for (int64_t j = 0; j < in; ++j) w[r * in + j] = nd(rng) * s + (j % 7 == 0 ? 0.3f : 0.0f);
  }
  Weight W;
  W.t = Tensor::empty(t, {out, in});
  W.deq.resize(out * in);
  for (int64_t r = 0; r < out; ++r) {
    const float* src = w.data() + r * in;
    float* dq = W.deq.data() + r * in;
    void* row = const_cast<uint8_t*>(W.t.row_ptr(r));
    switch (t) {
      case DType::F32:
        std::memcpy(row, src, in * 4);
        std::memcpy(dq, src, in * 4);
        break;
      case DType::F16:
        for (int64_t j = 0; j < in; ++j) {
          static_cast<uint16_t*>(row)[j] = fp32_to_fp16(src[j]);
          dq[j] = fp16_to_fp32(static_cast<uint16_t*>(row)[j]);
        }
        break;
      case DType::BF16:
        for (int64_t j = 0; j < in; ++j) {
          static_cast<uint16_t*>(row)[j] = fp32_to_bf16(src[j]);
          dq[j] = bf16_to_fp32(static_cast<uint16_t*>(row)[j]);
        }
        break;
      case DType::Q8_0:
        quantize_row_q8_0(src, static_cast<BlockQ8_0*>(row), in);
        dequantize_row_q8_0(static_cast<BlockQ8_0*>(row), dq, in);
        break;
      case DType::Q4_0:
        quantize_row_q4_0(src, static_cast<BlockQ4_0*>(row), in);
        dequantize_row_q4_0(static_cast<BlockQ4_0*>(row), dq, in);
        break;
      case DType::Q4_1:
        quantize_row_q4_1(src, static_cast<BlockQ4_1*>(row), in);
        dequantize_row_q4_1(static_cast<BlockQ4_1*>(row), dq, in);
        break;
      case DType::Q5_0:
      case DType::Q5_1:
      case DType::Q4_K:
      case DType::Q5_K:
      case DType::Q6_K:
        quantize_row(t, src, row, in);
        dequantize_row(t, row, dq, in);
        break;
      default:
        ADD_FAILURE();
    }
  }
  return W;
}

// Independent 8-bit activation quantiser (the BlockQ8A contract): values and block scales.
void quantize_act_ref(const float* x, int64_t in, float* xq, float* dblk) {
  for (int64_t b = 0; b < in / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
    dblk[b] = d;
    for (int j = 0; j < 32; ++j) xq[b * 32 + j] = std::nearbyint(x[b * 32 + j] * id) * d;
  }
}

struct Case {
  int64_t n, in, out;
};

void run_case(DType dt, int64_t n, int64_t in, int64_t out, bool with_bias, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " n=" << n << " in=" << in << " out=" << out
                                  << " bias=" << with_bias);
  Weight W = make_weight(dt, out, in, rng);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor x = Tensor::empty(DType::F32, {n, in});
  for (int64_t i = 0; i < n * in; ++i) x.as<float>()[i] = nd(rng) * (i % 11 == 0 ? 4.0f : 1.0f);
  Tensor bias;
  std::vector<float> bias_f(out, 0.0f);
  if (with_bias) {
    bias = Tensor::empty(DType::BF16, {out});
    for (int64_t r = 0; r < out; ++r) {
      bias.as<uint16_t>()[r] = fp32_to_bf16(nd(rng));
      bias_f[r] = bf16_to_fp32(bias.as<uint16_t>()[r]);
    }
  }
  const bool quant = dtype_is_quantized(dt);
  // References.
  std::vector<double> ref(n * out), ref_q(n * out), mag(n * out), mag_q(n * out), qbound(n * out);
  std::vector<float> xq(quant ? in : 0), dblk(quant ? in / 32 : 0);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.as<float>() + i * in;
    if (quant) quantize_act_ref(xi, in, xq.data(), dblk.data());
    for (int64_t r = 0; r < out; ++r) {
      const float* wr = W.deq.data() + r * in;
      double s = 0, m = 0, sq = 0, mq = 0, qb = 0;
      for (int64_t j = 0; j < in; ++j) {
        s += static_cast<double>(wr[j]) * xi[j];
        m += std::fabs(static_cast<double>(wr[j]) * xi[j]);
        if (quant) {
          sq += static_cast<double>(wr[j]) * xq[j];
          mq += std::fabs(static_cast<double>(wr[j]) * xq[j]);
          qb += std::fabs(static_cast<double>(wr[j])) * dblk[j / 32] * 0.5;
        }
      }
      ref[i * out + r] = s + bias_f[r];
      mag[i * out + r] = m + std::fabs(bias_f[r]);
      ref_q[i * out + r] = sq + bias_f[r];
      mag_q[i * out + r] = mq + std::fabs(bias_f[r]);
      qbound[i * out + r] = qb;
    }
  }
  Tensor y = Tensor::empty(DType::F32, {n, out});
  for (Isa isa : isas()) {
    set_isa(isa);
    for (LinearPath path : {LinearPath::Gemv, LinearPath::Gemm, LinearPath::Auto}) {
      if (path == LinearPath::Gemv && n > 17) continue;  // the GEMV path serves small n only
      SCOPED_TRACE(testing::Message() << isa_name(isa)
                                      << (path == LinearPath::Gemv   ? " gemv"
                                          : path == LinearPath::Gemm ? " gemm"
                                                                     : " auto"));
      std::fill(y.as<float>(), y.as<float>() + n * out, NAN);
      backend::cpu::linear(x, W.t, with_bias ? &bias : nullptr, y, path);
      const bool int_path =
          quant && (path == LinearPath::Gemv || (path == LinearPath::Auto && n <= linear_gemv_max_rows(dt)));
      for (int64_t e = 0; e < n * out; ++e) {
        const double got = y.as<float>()[e];
        if (int_path) {
          ASSERT_NEAR(got, ref_q[e], 2e-5 * mag_q[e] + 1e-6) << "at " << e / out << "," << e % out;
          ASSERT_LE(std::fabs(got - ref[e]), qbound[e] * 1.0001 + 2e-5 * mag[e] + 1e-6);
        } else {
          ASSERT_NEAR(got, ref[e], 2e-5 * mag[e] + 1e-6) << "at " << e / out << "," << e % out;
        }
      }
    }
  }
}

}  // namespace

class LinearAllDtypes : public testing::TestWithParam<DType> {};

TEST_P(LinearAllDtypes, OddSizesBothIsasBothPaths) {
  IsaRestore restore;
  const DType dt = GetParam();
  std::mt19937 rng(static_cast<unsigned>(dt) * 7919u + 1);
  std::vector<int64_t> ins = {32, 96, 576, 1536};
  if (!dtype_is_quantized(dt)) ins.insert(ins.end(), {7, 33});  // vector tails
  if (dtype_block_size(dt) == QK_K) ins = {256, 768, 1536};     // 1, 3 and 6 super-blocks
  for (int64_t in : ins)
    for (int64_t out : {1, 3, 33, 192, 577})
      for (int64_t n : {1, 2, 3, 7, 17, 64, 129}) {
        if (in * out * n > 20'000'000) continue;  // keeps the suite fast (1536 x 192 x 64 still runs)
        run_case(dt, n, in, out, (n + out) % 3 == 0, rng);
        if (HasFatalFailure()) return;
      }
}

INSTANTIATE_TEST_SUITE_P(Kernels, LinearAllDtypes,
                         testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                                         DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         [](const testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

// Extreme inputs: zero rows, constant rows, large magnitudes.
TEST(Linear, DegenerateActivations) {
  IsaRestore restore;
  std::mt19937 rng(99);
  for (DType dt : {DType::Q4_1, DType::Q4_0, DType::Q8_0, DType::F16, DType::Q5_0, DType::Q5_1, DType::Q4_K,
                   DType::Q5_K, DType::Q6_K}) {
    const int64_t in = dtype_block_size(dt) == QK_K ? 256 : 64;
    Weight W = make_weight(dt, 19, in, rng);
    Tensor x = Tensor::zeros(DType::F32, {3, in});
    for (int64_t j = 0; j < in; ++j) x.as<float>()[in + j] = 1000.0f;                    // constant large row
    for (int64_t j = 0; j < in; ++j) x.as<float>()[2 * in + j] = j == 5 ? -3.0f : 0.0f;  // one-hot
    Tensor y = Tensor::empty(DType::F32, {3, 19});
    for (Isa isa : isas()) {
      set_isa(isa);
      for (LinearPath path : {LinearPath::Gemv, LinearPath::Gemm}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " " << isa_name(isa));
        backend::cpu::linear(x, W.t, nullptr, y, path);
        for (int r = 0; r < 19; ++r) {
          EXPECT_EQ(y.as<float>()[r], 0.0f);
          double s = 0, m = 0;
          for (int64_t j = 0; j < in; ++j) s += 1000.0 * W.deq[r * in + j], m += std::fabs(1000.0 * W.deq[r * in + j]);
          EXPECT_NEAR(y.as<float>()[19 + r], s, 2e-5 * m);  // 1000 quantises exactly (q = 127)
          EXPECT_NEAR(y.as<float>()[38 + r], -3.0 * W.deq[r * in + 5], 1e-5);
        }
      }
    }
  }
}

TEST(Linear, FrontChecks) {
  Tensor x = Tensor::zeros(DType::F32, {2, 64});
  Tensor w = Tensor::zeros(DType::Q4_1, {8, 64});
  Tensor y = Tensor::zeros(DType::F32, {2, 8});
  EXPECT_NO_THROW(backend::linear(x, w, nullptr, y));
  Tensor bad_y = Tensor::zeros(DType::F32, {2, 9});
  EXPECT_THROW(backend::linear(x, w, nullptr, bad_y), Error);
  Tensor bad_x = Tensor::zeros(DType::F32, {2, 32});
  EXPECT_THROW(backend::linear(bad_x, w, nullptr, y), Error);
  Tensor bias = Tensor::zeros(DType::F32, {7});
  EXPECT_THROW(backend::linear(x, w, &bias, y), Error);
  Tensor xi = Tensor::zeros(DType::I32, {2, 64});
  EXPECT_THROW(backend::linear(xi, w, nullptr, y), Error);
  try {
    backend::linear(x, w, nullptr, bad_y);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear"), std::string::npos);
  }
}

TEST(Linear, ThreadCountsAgree) {
  std::mt19937 rng(5);
  Weight W = make_weight(DType::Q4_1, 577, 576, rng);
  Tensor x = Tensor::empty(DType::F32, {5, 576});
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < 5 * 576; ++i) x.as<float>()[i] = nd(rng);
  Tensor y1 = Tensor::empty(DType::F32, {5, 577}), y2 = Tensor::empty(DType::F32, {5, 577});
  const int saved = backend::cpu::num_threads();
  for (LinearPath path : {LinearPath::Gemv, LinearPath::Gemm}) {
    backend::cpu::set_num_threads(1);
    backend::cpu::linear(x, W.t, nullptr, y1, path);
    backend::cpu::set_num_threads(3);
    backend::cpu::linear(x, W.t, nullptr, y2, path);
    // Each output is computed by one thread with the same code: identical bits.
    EXPECT_EQ(std::memcmp(y1.data, y2.data, y1.nbytes()), 0);
  }
  backend::cpu::set_num_threads(saved);
}

// Batch invariance of the integer path (docs/engine.md): every activation row gives the same
// bits alone as among n rows, whatever tiles the kernels cut the rows into, in every table.
TEST(Linear, QuantisedRowsIndependentOfBatch) {
  IsaRestore restore;
  std::mt19937 rng(77);
  std::normal_distribution<float> nd;
  for (DType dt :
       {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const int64_t in = dtype_block_size(dt) == QK_K ? 512 : 96, out = 37, n = 7;
    Weight W = make_weight(dt, out, in, rng);
    Tensor x = Tensor::empty(DType::F32, {n, in});
    for (int64_t i = 0; i < n * in; ++i) x.as<float>()[i] = nd(rng);
    Tensor y = Tensor::empty(DType::F32, {n, out}), one = Tensor::empty(DType::F32, {1, out});
    for (Isa isa : isas()) {
      set_isa(isa);
      backend::cpu::linear(x, W.t, nullptr, y, LinearPath::Gemv);
      for (int64_t i = 0; i < n; ++i) {
        backend::cpu::linear(x.row_block(i, 1), W.t, nullptr, one, LinearPath::Gemv);
        EXPECT_EQ(std::memcmp(one.data, y.as<float>() + i * out, out * sizeof(float)), 0)
            << dtype_name(dt) << " " << isa_name(isa) << " row " << i;
      }
    }
  }
}
