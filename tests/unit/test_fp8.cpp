// FP8 (compressed-tensors) weights: the E4M3 rounding and row references, every ISA table's FP8
// kernels against them over odd sizes, both numerics of linear() against a float64 product,
// the checkpoint loader (folding, memory, errors naming the field) and the FP8 export pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "../fixtures/io/io_test_util.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/threads.h"
#include "backend/ops.h"
#include "io/compressed_tensors.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "kernel_test_util.h"

using namespace skv;
using namespace skv::backend::cpu;
using skv_test::TempDir;

namespace {

#define EXPECT_HAS(msg, needle) EXPECT_NE((msg).find(needle), std::string::npos) << "error message: " << (msg)

// Random FP8 rows: every finite E4M3 byte (0x7f / 0xff are NaN) and a scale per row.
Tensor random_fp8(int64_t out, int64_t in, std::mt19937& rng) {
  Tensor t = Tensor::empty(DType::FP8, {out, in});
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  for (int64_t r = 0; r < out; ++r) {
    uint8_t* row = static_cast<uint8_t*>(t.data) + r * t.row_bytes();
    const float s = scale(rng);
    std::memcpy(row, &s, sizeof s);
    for (int64_t j = 0; j < in; ++j) {
      int b = byte(rng);
      if ((b & 0x7f) == 0x7f) b &= 0xfe;
      row[4 + j] = static_cast<uint8_t>(b);
    }
  }
  return t;
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> dequantised(const Tensor& w) {
  std::vector<float> out(static_cast<size_t>(w.numel()));
  for (int64_t r = 0; r < w.rows(); ++r) dequantize_row_fp8(w.row_ptr(r), out.data() + r * w.cols(), w.cols());
  return out;
}

const int64_t kOddK[] = {1, 7, 16, 31, 33, 64, 100, 577};

}  // namespace

TEST(Fp8Reference, RoundToE4M3MatchesTheByteCodec) {
  std::mt19937 rng(1);
  std::vector<float> v = {0.0f,    -0.0f,          1.0f,          448.0f,       463.99f,       464.0f,
                          500.0f,  1e-6f,          0.0009765625f, 0.001953125f, 0.0029296875f, 0.015625f,
                          0.0155f, 0.01611328125f, 17.0f,         18.0f,        19.0f};
  for (float x : random_floats(20000, rng, 30.0f)) v.push_back(x);
  for (float x : random_floats(20000, rng, 0.01f)) v.push_back(x);
  for (float x : v) EXPECT_EQ(round_to_e4m3(x), e4m3_to_fp32(fp32_to_e4m3(x))) << "x = " << x;
}

TEST(Fp8Reference, RowRoundTrip) {
  std::mt19937 rng(2);
  const std::vector<float> x = random_floats(333, rng, 0.05f);
  std::vector<uint8_t> row(4 + x.size());
  quantize_row_fp8(x.data(), row.data(), static_cast<int64_t>(x.size()));
  float amax = 0;
  for (float f : x) amax = std::max(amax, std::fabs(f));
  EXPECT_EQ(fp8_row_scale(row.data()), amax / 448.0f);
  std::vector<float> y(x.size());
  dequantize_row_fp8(row.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], std::fabs(x[i]) / 16 + amax / 448 * 0x1p-9f);
}

TEST(Fp8Kernels, ToFloatAndToBf16ExactOnEveryTable) {
  IsaRestore restore;
  std::mt19937 rng(3);
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int64_t k : kOddK) {
      const Tensor w = random_fp8(2, k, rng);
      std::vector<float> want(k), got(k);
      std::vector<uint16_t> bf(k);
      for (int64_t r = 0; r < 2; ++r) {
        dequantize_row_fp8(w.row_ptr(r), want.data(), k);
        kernels().to_float_fp8(w.row_ptr(r), got.data(), k);
        kernels().fp8_to_bf16(w.row_ptr(r), bf.data(), k);
        for (int64_t j = 0; j < k; ++j) {
          ASSERT_EQ(std::memcmp(&got[j], &want[j], 4), 0) << isa_name(isa) << " k=" << k << " j=" << j;
          ASSERT_EQ(bf16_to_fp32(bf[j]) * fp8_row_scale(w.row_ptr(r)), want[j]) << isa_name(isa) << " k=" << k;
        }
      }
    }
  }
}

TEST(Fp8Kernels, GemvAndBf16GemmAgainstFloat64OnEveryTable) {
  IsaRestore restore;
  std::mt19937 rng(4);
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int64_t k : kOddK)
      for (int64_t rows : {1, 5, 9})
        for (int64_t na : {1, 3, 6}) {
          const Tensor w = random_fp8(rows, k, rng);
          const std::vector<float> wd = dequantised(w);
          const std::vector<float> x = random_floats(na * k, rng);
          std::vector<float> y(na * rows);
          kernels().gemv_fp8(w.data, w.row_bytes(), rows, x.data(), k, na, k, y.data(), rows);
          // The BF16 GEMM on the raw E4M3 values and E4M3-rounded activations.
          std::vector<uint16_t> wb(rows * k), xb(na * k);
          for (int64_t r = 0; r < rows; ++r) kernels().fp8_to_bf16(w.row_ptr(r), wb.data() + r * k, k);
          for (int64_t i = 0; i < na * k; ++i) xb[i] = fp32_to_bf16(round_to_e4m3(x[i] * 50));
          std::vector<float> z(na * rows);
          kernels().gemm_bf16(wb.data(), k, rows, xb.data(), k, na, k, z.data(), rows);
          for (int64_t a = 0; a < na; ++a)
            for (int64_t r = 0; r < rows; ++r) {
              double ref = 0, mag = 0, refb = 0, magb = 0;
              for (int64_t j = 0; j < k; ++j) {
                ref += double(wd[r * k + j]) * x[a * k + j];
                mag += std::fabs(double(wd[r * k + j]) * x[a * k + j]);
                const double p = double(bf16_to_fp32(wb[r * k + j])) * bf16_to_fp32(xb[a * k + j]);
                refb += p;
                magb += std::fabs(p);
              }
              EXPECT_NEAR(y[a * rows + r], ref, 1e-6 * mag + 1e-30)
                  << isa_name(isa) << " k=" << k << " rows=" << rows << " na=" << na;
              EXPECT_NEAR(z[a * rows + r], refb, 1e-6 * magb + 1e-30)
                  << isa_name(isa) << " k=" << k << " rows=" << rows << " na=" << na;
            }
        }
  }
}

// linear() on FP8 weights, both modes, every table, through the GEMV (n <= 8) and GEMM sizes.
TEST(Fp8Linear, BothModesAgainstFloat64) {
  IsaRestore restore;
  std::mt19937 rng(5);
  const int64_t in = 77, out = 45;
  const Tensor w = random_fp8(out, in, rng);
  const std::vector<float> wd = dequantised(w);
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int64_t n : {1, 3, 9, 40}) {
      std::vector<float> xv = random_floats(n * in, rng);
      Tensor x = Tensor::view(DType::F32, {n, in}, xv.data());
      for (backend::Fp8Activations mode : {backend::Fp8Activations::F32, backend::Fp8Activations::E4M3}) {
        backend::set_fp8_activations(mode);
        Tensor y = Tensor::empty(DType::F32, {n, out});
        backend::linear(x, w, nullptr, y);
        backend::set_fp8_activations(backend::Fp8Activations::F32);
        for (int64_t i = 0; i < n; ++i) {
          // E4M3: the activation row as the mode quantises it (reference codec, scale max|x|/448).
          std::vector<double> xr(in);
          if (mode == backend::Fp8Activations::E4M3) {
            float amax = 0;
            for (int64_t j = 0; j < in; ++j) amax = std::max(amax, std::fabs(xv[i * in + j]));
            const float s = amax / 448.0f;
            for (int64_t j = 0; j < in; ++j)
              xr[j] = double(s) * e4m3_to_fp32(fp32_to_e4m3(xv[i * in + j] * (1.0f / s)));
          } else {
            for (int64_t j = 0; j < in; ++j) xr[j] = xv[i * in + j];
          }
          for (int64_t r = 0; r < out; ++r) {
            double ref = 0, mag = 0;
            for (int64_t j = 0; j < in; ++j) {
              ref += double(wd[r * in + j]) * xr[j];
              mag += std::fabs(double(wd[r * in + j]) * xr[j]);
            }
            EXPECT_NEAR(y.as<float>()[i * out + r], ref, 2e-6 * mag)
                << isa_name(isa) << " n=" << n << " mode=" << int(mode) << " row " << r;
          }
        }
      }
    }
  }
}

// Big enough for the pool's threads: each row's bits must not depend on the thread count, in
// the E4M3 mode at any n and the F32 mode's GEMV (its GEMM is sgemm on panels whose size follows
// the thread count, as for BF16 weights, which OpenBLAS does not compute bit-identically).
TEST(Fp8Linear, ThreadCountsAgree) {
  std::mt19937 rng(8);
  const int64_t in = 256, out = 300;
  const Tensor w = random_fp8(out, in, rng);
  for (backend::Fp8Activations mode : {backend::Fp8Activations::F32, backend::Fp8Activations::E4M3}) {
    const int64_t n = mode == backend::Fp8Activations::F32 ? 8 : 33;
    std::vector<float> xv = random_floats(n * in, rng);
    const Tensor x = Tensor::view(DType::F32, {n, in}, xv.data());
    backend::set_fp8_activations(mode);
    std::vector<Tensor> ys;
    for (int threads : {1, 2, 3}) {
      backend::cpu::set_num_threads(threads);
      ys.push_back(Tensor::empty(DType::F32, {n, out}));
      backend::linear(x, w, nullptr, ys.back());
    }
    backend::cpu::set_num_threads(0);
    backend::set_fp8_activations(backend::Fp8Activations::F32);
    for (size_t k = 1; k < ys.size(); ++k)
      EXPECT_EQ(std::memcmp(ys[0].data, ys[k].data, ys[0].nbytes()), 0) << "mode " << int(mode) << " run " << k;
  }
}

TEST(Fp8Linear, ParseMode) {
  EXPECT_EQ(backend::parse_fp8_activations("f32"), backend::Fp8Activations::F32);
  EXPECT_EQ(backend::parse_fp8_activations("fp8"), backend::Fp8Activations::E4M3);
  EXPECT_THROW(backend::parse_fp8_activations("int8"), Error);
}

TEST(Fp8Export, ToDtypeAndSplit) {
  std::mt19937 rng(6);
  const std::vector<float> v = random_floats(5 * 40, rng);
  const Tensor f = Tensor::view(DType::F32, {5, 40}, v.data());
  const Tensor q = backend::to_dtype(f, DType::FP8);
  ASSERT_EQ(q.dtype, DType::FP8);
  EXPECT_EQ(q.nbytes(), 5u * (40 + 4));
  const io::Fp8Pair p = io::split_fp8_weight(q);
  EXPECT_EQ(p.weight.dtype, DType::F8_E4M3);
  EXPECT_EQ(p.weight_scale.shape, (Shape{5, 1}));
  const Tensor back = backend::to_dtype(q, DType::F32);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t j = 0; j < 40; ++j) {
      const float s = p.weight_scale.as<float>()[r];
      EXPECT_EQ(back.as<float>()[r * 40 + j], s * e4m3_to_fp32(static_cast<const uint8_t*>(p.weight.data)[r * 40 + j]));
    }
}

// ---- the checkpoint loader

namespace {

nlohmann::json fp8_config(const std::string& strategy = "channel") {
  nlohmann::json q = {
      {"quant_method", "compressed-tensors"},
      {"format", "float-quantized"},
      {"quantization_status", "compressed"},
      {"ignore", {"lm_head"}},
      {"kv_cache_scheme", nullptr},
      {"config_groups",
       {{"group_0",
         {{"targets", {"Linear"}},
          {"weights",
           {{"num_bits", 8}, {"type", "float"}, {"strategy", strategy}, {"symmetric", true}, {"dynamic", false}}},
          {"input_activations",
           {{"num_bits", 8}, {"type", "float"}, {"strategy", "token"}, {"symmetric", true}, {"dynamic", true}}}}}}}};
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", 6},
          {"hidden_size", 8},
          {"intermediate_size", 16},
          {"num_hidden_layers", 1},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"tie_word_embeddings", true},
          {"quantization_config", q}};
}

Tensor e4m3_bytes(int64_t out, int64_t in, int seed) {
  Tensor t = Tensor::empty(DType::F8_E4M3, {out, in});
  for (int64_t i = 0; i < t.numel(); ++i)
    static_cast<uint8_t*>(t.data)[i] = static_cast<uint8_t>((i * 37 + seed) % 126);
  return t;
}

Tensor bf16_scales(std::vector<int64_t> shape, float base) {
  Tensor t = Tensor::empty(DType::BF16, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<uint16_t>()[i] = fp32_to_bf16(base * static_cast<float>(i + 1));
  return t;
}

class Fp8LoaderTest : public ::testing::Test {
 protected:
  TempDir dir;
  void write(const nlohmann::json& config, std::map<std::string, Tensor> tensors) {
    skv_test::write_file(dir.file("config.json"), config.dump());
    io::write_safetensors(dir.file("model.safetensors"), tensors);
  }
  std::string error() {
    return skv_test::error_of([&] { io::open_model_files(dir.path.string()); });
  }
  std::map<std::string, Tensor> tensors() {
    return {{"model.layers.0.mlp.up_proj.weight", e4m3_bytes(16, 8, 1)},
            {"model.layers.0.mlp.up_proj.weight_scale", bf16_scales({16, 1}, 0.001f)},
            {"model.norm.weight", Tensor::zeros(DType::BF16, {8})}};
  }
};

}  // namespace

TEST_F(Fp8LoaderTest, FoldsWeightAndScaleIntoRows) {
  const auto t = tensors();
  write(fp8_config(), t);
  const io::ModelFiles m = io::open_model_files(dir.path.string());
  EXPECT_TRUE(m.config.fp8.enabled);
  EXPECT_EQ(m.config.fp8.strategy, "channel");
  EXPECT_FALSE(m.find("model.layers.0.mlp.up_proj.weight_scale"));
  const Tensor& w = m.get("model.layers.0.mlp.up_proj.weight");
  ASSERT_EQ(w.dtype, DType::FP8);
  EXPECT_EQ(w.shape, (Shape{16, 8}));
  std::vector<float> row(8);
  const Tensor& src = t.at("model.layers.0.mlp.up_proj.weight");
  for (int64_t r = 0; r < 16; ++r) {
    dequantize_row_fp8(w.row_ptr(r), row.data(), 8);
    const float s = bf16_to_fp32(t.at("model.layers.0.mlp.up_proj.weight_scale").as<uint16_t>()[r]);
    for (int64_t j = 0; j < 8; ++j)
      EXPECT_EQ(row[j], s * e4m3_to_fp32(static_cast<const uint8_t*>(src.data)[r * 8 + j]));
  }
  // Resident bytes: one byte a weight plus an F32 scale a row, against the file's byte a weight
  // plus a BF16 scale a row.
  const double file_bytes = 16 * 8 + 16 * 2, resident = static_cast<double>(w.nbytes());
  EXPECT_LE(resident / file_bytes, 1.1 + 16 * 2 / file_bytes);
}

TEST_F(Fp8LoaderTest, PerTensorScale) {
  auto t = tensors();
  t["model.layers.0.mlp.up_proj.weight_scale"] = bf16_scales({}, 0.5f);
  write(fp8_config("tensor"), t);
  const io::ModelFiles m = io::open_model_files(dir.path.string());
  const Tensor& w = m.get("model.layers.0.mlp.up_proj.weight");
  for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(fp8_row_scale(w.row_ptr(r)), 0.5f);
}

TEST_F(Fp8LoaderTest, TensorErrorsNameTheTensor) {
  auto t = tensors();
  t.erase("model.layers.0.mlp.up_proj.weight_scale");
  write(fp8_config(), t);
  EXPECT_HAS(error(), "has no 'model.layers.0.mlp.up_proj.weight_scale'");

  t = tensors();
  write(fp8_config("tensor"), t);
  EXPECT_HAS(error(), "weights.strategy \"tensor\" needs one value");

  t = tensors();
  t["model.layers.0.mlp.up_proj.input_scale"] = bf16_scales({1}, 1.0f);
  write(fp8_config(), t);
  EXPECT_HAS(error(), "static input scale");

  t = tensors();
  nlohmann::json c = fp8_config();
  c.erase("quantization_config");
  write(c, t);
  EXPECT_HAS(error(), "no compressed-tensors quantization_config");

  t = tensors();
  c = fp8_config();
  c["quantization_config"]["ignore"] = {"re:.*up_proj"};
  write(c, t);
  EXPECT_HAS(error(), "is in quantization_config.ignore");

  t = tensors();
  t["model.norm.weight_scale"] = bf16_scales({1}, 1.0f);
  write(fp8_config(), t);
  EXPECT_HAS(error(), "'model.norm.weight_scale' scales 'model.norm.weight', which is stored as BF16");
}

TEST_F(Fp8LoaderTest, ConfigErrorsNameTheField) {
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string needle;
  };
  const std::string g = "quantization_config.config_groups.group_0";
  const std::vector<Case> cases = {
      {[](auto& q) { q["quant_method"] = "fp8"; }, "'quantization_config.quant_method'"},
      {[](auto& q) { q["format"] = "int-quantized"; }, "'quantization_config.format'"},
      {[](auto& q) { q["format"] = "pack-quantized"; }, "'quantization_config.format'"},
      {[](auto& q) {
         q["kv_cache_scheme"] = {{"num_bits", 8}};
       },
       "'quantization_config.kv_cache_scheme'"},
      {[](auto& q) { q["config_groups"]["group_1"] = q["config_groups"]["group_0"]; },
       "'quantization_config.config_groups'"},
      {[](auto& q) { q["config_groups"]["group_0"]["weights"]["type"] = "int"; }, g + ".weights.type'"},
      {[](auto& q) { q["config_groups"]["group_0"]["weights"]["num_bits"] = 4; }, g + ".weights.num_bits'"},
      {[](auto& q) { q["config_groups"]["group_0"]["weights"]["strategy"] = "group"; }, g + ".weights.strategy'"},
      {[](auto& q) { q["config_groups"]["group_0"]["weights"]["group_size"] = 128; }, g + ".weights.group_size'"},
      {[](auto& q) { q["config_groups"]["group_0"]["input_activations"]["dynamic"] = false; },
       g + ".input_activations.dynamic'"},
      {[](auto& q) { q["config_groups"]["group_0"]["input_activations"]["type"] = "int"; },
       g + ".input_activations.type'"},
      {[](auto& q) { q["config_groups"]["group_0"]["targets"] = {"Embedding"}; }, g + ".targets'"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = fp8_config();
    c.edit(j["quantization_config"]);
    write(j, tensors());
    EXPECT_HAS(error(), c.needle);
  }
  // Weights-only schemes (no input_activations) load.
  nlohmann::json j = fp8_config();
  j["quantization_config"]["config_groups"]["group_0"]["input_activations"] = nullptr;
  write(j, tensors());
  EXPECT_FALSE(io::open_model_files(dir.path.string()).config.fp8.dynamic_activations);
}

TEST(Fp8Config, JsonRoundTrip) {
  io::Fp8Scheme s;
  s.enabled = true;
  s.strategy = "tensor";
  s.ignore = {"lm_head", "re:.*gate.*"};
  const io::Fp8Scheme back =
      io::parse_compressed_tensors(nlohmann::json::parse(io::compressed_tensors_json(s).dump()), "x");
  EXPECT_EQ(back.strategy, "tensor");
  EXPECT_EQ(back.ignore, s.ignore);
  EXPECT_TRUE(io::fp8_ignored(back, "model.layers.3.mlp.gate_proj"));
  EXPECT_FALSE(io::fp8_ignored(back, "model.layers.3.mlp.up_proj"));
}
