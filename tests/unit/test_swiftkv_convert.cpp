// `swiftkv convert` building blocks: the SwiftKV initialisation (docs/swiftkv.md#checkpoint-layout), the setting
// checks, config.json writing (must read back to the same ModelConfig), llama.cpp's q/k row
// permutation undone, and whole exports of tiny HF and GGUF models read back from disk.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <tuple>

#include "../fixtures/io/io_test_util.h"
#include "backend/ops.h"
#include "io/config_json.h"
#include "io/gguf.h"
#include "io/hf_export.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "model/swiftkv.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_export.h"

using namespace skv_test;
using skv::DType;
using skv::Tensor;
using skv::io::ModelConfig;
using skv::io::ModelFiles;

namespace {

namespace fs = std::filesystem;

Tensor randn(std::vector<int64_t> shape, std::mt19937& rng, float mean = 0.0f) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::normal_distribution<float> dist(mean, 0.5f);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = dist(rng);
  return t;
}

std::vector<float> values(const Tensor& t) {
  const Tensor f = skv::backend::to_dtype(t, DType::F32);
  return std::vector<float>(f.as<float>(), f.as<float>() + f.numel());
}

std::string layer(int64_t i, const std::string& suffix) { return "model.layers." + std::to_string(i) + "." + suffix; }

struct Shape {
  int64_t layers = 6, heads = 4, kv_heads = 2, head_dim = 4, hidden = 16, ffn = 24, vocab = 32;
  bool tied = false, bias = false;
};

ModelFiles base_model(const Shape& s, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  ModelFiles f;
  f.path = "<memory>";
  ModelConfig& c = f.config;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.ffn;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.tie_word_embeddings = s.tied;
  c.attention_bias = s.bias;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  const int64_t d = s.hidden, qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  f.tensors["model.embed_tokens.weight"] = randn({s.vocab, d}, rng);
  f.tensors["model.norm.weight"] = randn({d}, rng, 1.0f);
  if (!s.tied) f.tensors["lm_head.weight"] = randn({s.vocab, d}, rng);
  for (int64_t i = 0; i < s.layers; ++i) {
    f.tensors[layer(i, "input_layernorm.weight")] = randn({d}, rng, 1.0f);
    f.tensors[layer(i, "post_attention_layernorm.weight")] = randn({d}, rng, 1.0f);
    f.tensors[layer(i, "self_attn.q_proj.weight")] = randn({qd, d}, rng);
    f.tensors[layer(i, "self_attn.k_proj.weight")] = randn({kvd, d}, rng);
    f.tensors[layer(i, "self_attn.v_proj.weight")] = randn({kvd, d}, rng);
    f.tensors[layer(i, "self_attn.o_proj.weight")] = randn({d, qd}, rng);
    if (s.bias) {
      f.tensors[layer(i, "self_attn.q_proj.bias")] = randn({qd}, rng);
      f.tensors[layer(i, "self_attn.k_proj.bias")] = randn({kvd}, rng);
      f.tensors[layer(i, "self_attn.v_proj.bias")] = randn({kvd}, rng);
    }
    f.tensors[layer(i, "mlp.gate_proj.weight")] = randn({s.ffn, d}, rng);
    f.tensors[layer(i, "mlp.up_proj.weight")] = randn({s.ffn, d}, rng);
    f.tensors[layer(i, "mlp.down_proj.weight")] = randn({d, s.ffn}, rng);
  }
  return f;
}

void expect_values_near(const Tensor& got, const std::vector<float>& want, float tol, const std::string& what) {
  const std::vector<float> g = values(got);
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], want[i], tol) << what << " element " << i;
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.swiftkv_checkpoint, b.swiftkv_checkpoint);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings, b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  EXPECT_EQ(a.swiftkv, b.swiftkv);
  EXPECT_EQ(a.num_key_value_layers, b.num_key_value_layers);
  EXPECT_EQ(a.key_value_group_size, b.key_value_group_size);
}

// ---------------------------------------------------------------------------------------------
// SwiftKV initialisation

struct InitCase {
  int64_t layers, m, g;
  bool bias;
};

void PrintTo(const InitCase& c, std::ostream* os) {
  *os << "L=" << c.layers << " M=" << c.m << " G=" << c.g << (c.bias ? " with biases" : "");
}

class ConvertInit : public ::testing::TestWithParam<InitCase> {};

TEST_P(ConvertInit, CopiesAndGroupMeans) {
  const InitCase p = GetParam();
  Shape s;
  s.layers = p.layers;
  s.bias = p.bias;
  ModelFiles f = base_model(s);
  const ModelFiles base = base_model(s);  // same seed: the untouched originals
  const size_t base_count = f.tensors.size();
  skv::model::add_swiftkv_tensors(f, p.m, p.g);

  EXPECT_EQ(f.config.model_type(), "llama_swiftkv");
  EXPECT_TRUE(f.config.swiftkv);
  EXPECT_EQ(f.config.num_key_value_layers, p.m);
  EXPECT_EQ(f.config.key_value_group_size, p.g);
  expect_values_near(f.get(skv::model::swiftkv_norm_name()), values(base.get(layer(p.m, "input_layernorm.weight"))), 0,
                     "norm_swiftkv");

  std::vector<const char*> kinds = {"weight"};
  if (p.bias) kinds.push_back("bias");
  size_t added = 1;
  for (int64_t i = 0; i < p.layers; ++i) {
    for (const char* kind : kinds) {
      const std::string k = kind;
      const bool later = i >= p.m, leader = later && (i - p.m) % p.g == 0;
      ASSERT_EQ(f.find(skv::model::swiftkv_tensor_name(i, "q", kind)) != nullptr, later) << i << " " << k;
      ASSERT_EQ(f.find(skv::model::swiftkv_tensor_name(i, "k", kind)) != nullptr, leader) << i << " " << k;
      ASSERT_EQ(f.find(skv::model::swiftkv_tensor_name(i, "v", kind)) != nullptr, leader) << i << " " << k;
      if (!later) continue;
      ++added;
      expect_values_near(f.get(skv::model::swiftkv_tensor_name(i, "q", kind)),
                         values(base.get(layer(i, "self_attn.q_proj." + k))), 0, "q_proj_swiftkv." + k);
      if (!leader) continue;
      added += 2;
      for (const char* proj : {"k", "v"}) {
        std::vector<float> mean = values(base.get(layer(i, std::string("self_attn.") + proj + "_proj." + k)));
        for (int64_t j = i + 1; j < i + p.g; ++j) {
          const std::vector<float> other = values(base.get(layer(j, std::string("self_attn.") + proj + "_proj." + k)));
          for (size_t e = 0; e < mean.size(); ++e) mean[e] += other[e];
        }
        for (float& x : mean) x /= static_cast<float>(p.g);
        expect_values_near(f.get(skv::model::swiftkv_tensor_name(i, proj, kind)), mean, 1e-6f,
                           std::string(proj) + "_proj_swiftkv." + k + " of layer " + std::to_string(i));
      }
    }
  }
  EXPECT_EQ(f.tensors.size(), base_count + added);
  // The base tensors are left as they were (the file keeps serving as its own teacher).
  for (const auto& [name, t] : base.tensors) expect_values_near(f.get(name), values(t), 0, name);
}

INSTANTIATE_TEST_SUITE_P(Cases, ConvertInit,
                         ::testing::Values(InitCase{6, 3, 1, false}, InitCase{6, 2, 2, false}, InitCase{6, 2, 4, false},
                                           InitCase{6, 4, 2, true}, InitCase{5, 1, 4, true}, InitCase{2, 1, 1, false}),
                         [](const ::testing::TestParamInfo<InitCase>& info) {
                           const InitCase& c = info.param;
                           return "L" + std::to_string(c.layers) + "M" + std::to_string(c.m) + "G" +
                                  std::to_string(c.g) + (c.bias ? "Bias" : "");
                         });

TEST(ConvertInit, RefusesSwiftKVInput) {
  ModelFiles f = base_model(Shape{});
  skv::model::add_swiftkv_tensors(f, 3, 1);
  EXPECT_SKV_ERROR(skv::model::add_swiftkv_tensors(f, 3, 1), "already a SwiftKV model");
}

TEST(ConvertInit, QuantisedGroupMeanIsF32) {
  Shape s;
  ModelFiles f = base_model(s);
  for (int64_t i = 0; i < s.layers; ++i)
    for (const char* proj : {"k", "v"}) {
      Tensor& t = f.tensors[layer(i, std::string("self_attn.") + proj + "_proj.weight")];
      t = skv::backend::to_dtype(t, DType::BF16);
    }
  skv::model::add_swiftkv_tensors(f, 2, 2);
  const Tensor& k = f.get(skv::model::swiftkv_tensor_name(2, "k", "weight"));
  EXPECT_EQ(k.dtype, DType::F32);
  const std::vector<float> a = values(f.get(layer(2, "self_attn.k_proj.weight")));
  const std::vector<float> b = values(f.get(layer(3, "self_attn.k_proj.weight")));
  std::vector<float> mean(a.size());
  for (size_t i = 0; i < a.size(); ++i) mean[i] = (a[i] + b[i]) / 2;
  expect_values_near(k, mean, 1e-6f, "k mean of bf16");
}

// ---------------------------------------------------------------------------------------------
// Settings

TEST(ConvertSettings, FractionToLayers) {
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(32, 0.5), 16);
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(32, 0.25), 24);
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(32, 0.625), 12);
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(30, 0.5), 15);
  EXPECT_SKV_ERROR(skv::model::num_key_value_layers_for_fraction(32, 0.0), "strictly between 0 and 1");
  EXPECT_SKV_ERROR(skv::model::num_key_value_layers_for_fraction(32, 1.0), "strictly between 0 and 1");
  EXPECT_SKV_ERROR(skv::model::num_key_value_layers_for_fraction(32, -0.5), "strictly between 0 and 1");
  EXPECT_SKV_ERROR(skv::model::num_key_value_layers_for_fraction(32, std::nan("")), "strictly between 0 and 1");
  // Rounds to all layers skipped (M = 0) or none (M = L).
  EXPECT_SKV_ERROR(skv::model::num_key_value_layers_for_fraction(4, 0.95), "num_key_value_layers = 0");
  EXPECT_SKV_ERROR(skv::model::num_key_value_layers_for_fraction(4, 0.05), "num_key_value_layers = 4");
}

TEST(ConvertSettings, Checks) {
  EXPECT_NO_THROW(skv::model::check_swiftkv_settings(32, 16, 4));
  EXPECT_NO_THROW(skv::model::check_swiftkv_settings(32, 31, 1));
  EXPECT_SKV_ERROR(skv::model::check_swiftkv_settings(32, 32, 1), "num_key_value_layers must be in [1, 31]");
  EXPECT_SKV_ERROR(skv::model::check_swiftkv_settings(32, 0, 1), "num_key_value_layers must be in [1, 31]");
  EXPECT_SKV_ERROR(skv::model::check_swiftkv_settings(32, 16, 0), "key_value_group_size must be at least 1");
  EXPECT_SKV_ERROR(skv::model::check_swiftkv_settings(32, 16, 3), "key_value_group_size 3 must divide the 16 layers");
  EXPECT_SKV_ERROR(skv::model::check_swiftkv_settings(1, 1, 1), "at least 2 layers");
  ModelFiles f = base_model(Shape{});
  EXPECT_SKV_ERROR(skv::model::add_swiftkv_tensors(f, 6, 1), "num_key_value_layers");
  EXPECT_FALSE(f.config.swiftkv_checkpoint);  // a refused conversion leaves the model alone
  EXPECT_EQ(f.find(skv::model::swiftkv_norm_name()), nullptr);
}

// ---------------------------------------------------------------------------------------------
// config.json

ModelConfig swiftkv_config() {
  ModelConfig c;
  c.swiftkv_checkpoint = true;
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.rms_norm_eps = static_cast<float>(1e-5);  // as read from GGUF: not a short decimal
  c.rope_theta = 100000.0;
  c.max_position_embeddings = 8192;
  c.tie_word_embeddings = true;
  c.torch_dtype = "float32";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.swiftkv = true;
  c.num_key_value_layers = 15;
  c.key_value_group_size = 3;
  return c;
}

TEST(ConvertConfigJson, SynthesisedRoundTrips) {
  std::vector<ModelConfig> cases;
  cases.push_back(swiftkv_config());
  ModelConfig llama3 = swiftkv_config();
  llama3.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 8192};
  llama3.rope_theta = 500000.0;
  llama3.eos_token_ids = {128001, 128008, 128009};
  llama3.bos_token_id = -1;
  llama3.torch_dtype = "bfloat16";
  llama3.head_dim = 48;  // differs from hidden / heads
  cases.push_back(llama3);
  ModelConfig linear = swiftkv_config();
  linear.rope_scaling.type = "linear";
  linear.rope_scaling.factor = 2.5;
  linear.attention_bias = true;
  linear.eos_token_ids.clear();
  linear.swiftkv = false;
  linear.key_value_group_size = 1;
  cases.push_back(linear);
  ModelConfig plain = swiftkv_config();
  plain.swiftkv_checkpoint = false;
  plain.swiftkv = false;
  plain.num_key_value_layers = 0;
  plain.key_value_group_size = 1;
  cases.push_back(plain);
  // Every architecture's SwiftKV variant, with its own fields (window, explicit head_dim).
  for (const skv::model::ArchInfo& a : skv::model::all_archs()) {
    ModelConfig v = swiftkv_config();
    v.arch = a.id;
    v.attention_bias = a.implicit_qkv_bias;
    if (a.reads_sliding_window) v.sliding_window = 4096;
    if (a.qk_norm) v.head_dim = 128;
    cases.push_back(v);
  }
  ModelConfig no_window = swiftkv_config();
  no_window.arch = skv::model::Arch::Mistral;
  cases.push_back(no_window);  // written as "sliding_window": null, not left to the 4096 default
  for (const ModelConfig& c : cases) {
    SCOPED_TRACE(c.model_type() + " rope " + c.rope_scaling.type);
    const std::string text = skv::io::config_to_json_text(c);
    expect_same_config(skv::io::config_from_json_text(text, "written"), c);
    const nlohmann::json j = nlohmann::json::parse(text);
    EXPECT_EQ(j["torch_dtype"], c.torch_dtype);
    EXPECT_TRUE(j.contains("rope_theta"));
    EXPECT_TRUE(j.contains("rope_scaling"));  // transformers 4.x style
    EXPECT_FALSE(j.contains("rope_parameters"));
  }
  const nlohmann::json j = nlohmann::json::parse(skv::io::config_to_json_text(swiftkv_config()));
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"LlamaSwiftKVForCausalLM"}));
  EXPECT_EQ(j["model_type"], "llama_swiftkv");
  EXPECT_EQ(j["swiftkv"], true);
  EXPECT_EQ(j["num_key_value_layers"], 15);
  EXPECT_EQ(j["key_value_group_size"], 3);
  EXPECT_EQ(j["attention_bias"], false);
  EXPECT_EQ(j["head_dim"], 64);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["bos_token_id"], 1);
  EXPECT_EQ(j["eos_token_id"], 2);
  const nlohmann::json l3 = nlohmann::json::parse(skv::io::config_to_json_text(cases[1]));
  EXPECT_EQ(l3["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(l3["rope_scaling"]["original_max_position_embeddings"], 8192);
  EXPECT_EQ(l3["eos_token_id"], nlohmann::json::array({128001, 128008, 128009}));
  EXPECT_FALSE(l3.contains("bos_token_id"));
}

// Starting from a source config keeps the fields swiftkv does not model and its rope style.
TEST(ConvertConfigJson, FromOriginalKeepsUnknownFields) {
  const std::string v4 = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-05, "hidden_act": "silu", "pretraining_tp": 1,
    "rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "torch_dtype": "bfloat16",
    "bos_token_id": 128000, "eos_token_id": [128001, 128009], "tie_word_embeddings": false,
    "custom_field": {"kept": [1, 2]}})";
  const std::string v5_qwen2 = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 512,
    "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
    "dtype": "float32", "use_sliding_window": false, "max_window_layers": 28, "bos_token_id": 1,
    "eos_token_id": 2})";
  for (const std::string& original : {v4, v5_qwen2}) {
    ModelConfig c = skv::io::config_from_json_text(original, "original");
    c.swiftkv_checkpoint = true;  // what add_swiftkv_tensors does
    c.swiftkv = true;
    c.num_key_value_layers = 2;
    c.key_value_group_size = 2;
    c.torch_dtype = "float16";  // --dtype f16
    const std::string text = skv::io::config_to_json_text(c, original);
    expect_same_config(skv::io::config_from_json_text(text, "written"), c);
    const nlohmann::json in = nlohmann::json::parse(original), out = nlohmann::json::parse(text);
    for (const auto& [key, value] : in.items()) {
      if (key != "architectures" && key != "model_type" && key != "torch_dtype" && key != "dtype") {
        EXPECT_EQ(out[key], value) << key;
      }
    }
    EXPECT_EQ(out["model_type"], c.model_type());
    EXPECT_EQ(out.value("dtype", out.value("torch_dtype", "")), "float16");
    if (in.contains("dtype")) {
      EXPECT_EQ(out["dtype"], "float16");
    }
    if (in.contains("torch_dtype")) {
      EXPECT_EQ(out["torch_dtype"], "float16");
    }
  }
  // A qwen2 base's implicit biases are stated in its qwen2_swiftkv config.
  ModelConfig q = skv::io::config_from_json_text(v5_qwen2, "original");
  EXPECT_TRUE(q.attention_bias);
  q.swiftkv_checkpoint = true;
  q.swiftkv = true;
  q.num_key_value_layers = 2;
  EXPECT_EQ(nlohmann::json::parse(skv::io::config_to_json_text(q, v5_qwen2))["attention_bias"], true);
  EXPECT_SKV_ERROR(skv::io::config_to_json_text(q, "[1, 2]"), "not a JSON object");
}

TEST(ConvertConfigJson, GenerationConfig) {
  const nlohmann::json g = nlohmann::json::parse(skv::io::generation_config_to_json_text(swiftkv_config()));
  EXPECT_EQ(g, (nlohmann::json{{"bos_token_id", 1}, {"eos_token_id", 2}}));
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's rope permutation

// convert_hf_to_gguf.py: w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)
Tensor llamacpp_permute(const Tensor& hf, int64_t n_head) {
  const int64_t rows = hf.shape[0], cols = hf.shape.size() == 2 ? hf.shape[1] : 1, half = rows / n_head / 2;
  Tensor out = Tensor::empty(hf.dtype, hf.shape);
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t two = 0; two < 2; ++two)
        for (int64_t c = 0; c < cols; ++c)  // out[h, j, two] = in[h, two, j]
          out.as<float>()[((h * half + j) * 2 + two) * cols + c] =
              hf.as<float>()[((h * 2 + two) * half + j) * cols + c];
  return out;
}

TEST(ConvertRopeUnpermute, InvertsLlamaCppPermutation) {
  std::mt19937 rng(5);
  for (auto [n_head, head_dim, cols] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 2, 3}, {4, 8, 5}, {3, 64, 2}, {9, 6, 1}}) {
    const Tensor hf = randn({n_head * head_dim, cols}, rng);
    const Tensor back = skv::io::unpermute_rope_rows(llamacpp_permute(hf, n_head), n_head);
    expect_values_near(back, values(hf), 0, "weight");
    const Tensor bias = randn({n_head * head_dim}, rng);
    expect_values_near(skv::io::unpermute_rope_rows(llamacpp_permute(bias, n_head), n_head), values(bias), 0, "bias");
  }
  // Row moves work in any plain dtype.
  const Tensor hf = randn({16, 3}, rng);
  const Tensor bf = skv::backend::to_dtype(llamacpp_permute(hf, 2), DType::BF16);
  const Tensor back = skv::io::unpermute_rope_rows(bf, 2);
  EXPECT_EQ(back.dtype, DType::BF16);
  expect_values_near(back, values(skv::backend::to_dtype(hf, DType::BF16)), 0, "bf16");
  // The spec's row formula: HF row h*D + half*(D/2) + j = GGUF row h*D + 2*j + half.
  Tensor gguf = Tensor::empty(DType::F32, {8, 1});
  for (int i = 0; i < 8; ++i) gguf.as<float>()[i] = static_cast<float>(i);
  EXPECT_EQ(values(skv::io::unpermute_rope_rows(gguf, 2)), (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_SKV_ERROR(skv::io::unpermute_rope_rows(gguf, 3), "do not split into 3 heads");
  EXPECT_SKV_ERROR(skv::io::unpermute_rope_rows(Tensor::empty(DType::F32, {6, 1}), 2), "heads of even size");
}

// ---------------------------------------------------------------------------------------------
// Whole exports

void write_hf_model(const fs::path& dir, const ModelFiles& f, const std::string& config_text) {
  fs::create_directories(dir);
  write_file((dir / "config.json").string(), config_text);
  skv::io::write_safetensors((dir / "model.safetensors").string(), f.tensors);
  write_file((dir / "tokenizer.json").string(), std::string("{\"stub\": 1}"));
  write_file((dir / "generation_config.json").string(), std::string("{\"bos_token_id\": 1}"));
  write_file((dir / "unrelated.txt").string(), std::string("not copied"));
}

const char* kTinyConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32,
  "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 6, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 4, "rms_norm_eps": 1e-05, "tie_word_embeddings": TIED,
  "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32", "hidden_act": "silu"})";

std::string tiny_config(bool tied) {
  std::string s = kTinyConfig;
  s.replace(s.find("TIED"), 4, tied ? "true" : "false");
  return s;
}

TEST(ConvertHfExport, HfDirectoryRoundTrip) {
  TempDir tmp;
  Shape s;
  s.tied = true;
  const fs::path src = tmp.path / "base", out = tmp.path / "out";
  write_hf_model(src, base_model(s), tiny_config(true));
  ModelFiles f = skv::io::open_model_files(src.string());
  EXPECT_EQ(skv::io::default_export_dtype(f), DType::F32);
  skv::model::add_swiftkv_tensors(f, 2, 2);
  skv::io::HfExportOptions opt;
  opt.dtype = DType::BF16;
  const skv::io::HfExportResult r = skv::io::export_hf_directory(f, out.string(), opt);
  EXPECT_EQ(r.num_tensors, static_cast<int64_t>(f.tensors.size()));
  EXPECT_GT(r.bytes_written, 0u);
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "generation_config.json"));
  EXPECT_FALSE(fs::exists(out / "unrelated.txt"));
  for (const auto& e : fs::directory_iterator(tmp.path))  // no temporary directory left next to it
    EXPECT_TRUE(e.path() == src || e.path() == out) << e.path();

  const ModelFiles back = skv::io::open_model_files(out.string());
  ModelConfig want = f.config;
  want.torch_dtype = "bfloat16";
  expect_same_config(back.config, want);
  EXPECT_EQ(nlohmann::json::parse(read_file((out / "config.json").string()))["hidden_act"], "silu");
  ASSERT_EQ(back.tensors.size(), f.tensors.size());
  for (const auto& [name, t] : f.tensors) {
    const Tensor& b = back.get(name);
    EXPECT_EQ(b.dtype, DType::BF16) << name;
    EXPECT_EQ(b.shape, t.shape) << name;
    expect_values_near(b, values(skv::backend::to_dtype(t, DType::BF16)), 0, name);
  }
  // The output is refused as input to another conversion.
  ModelFiles again = skv::io::open_model_files(out.string());
  EXPECT_SKV_ERROR(skv::model::add_swiftkv_tensors(again, 2, 1), "already a SwiftKV model");
}

TEST(ConvertHfExport, TiedLmHeadIsNotWritten) {
  TempDir tmp;
  Shape s;
  ModelFiles f = base_model(s);
  f.config.tie_word_embeddings = true;  // an HF file that stores the tied head anyway
  f.path = (tmp.path / "nowhere.gguf").string();
  f.format = skv::io::ModelFormat::GGUF;
  skv::model::add_swiftkv_tensors(f, 3, 1);
  skv::io::export_hf_directory(f, (tmp.path / "out").string(), {});
  const ModelFiles back = skv::io::open_model_files((tmp.path / "out").string());
  EXPECT_EQ(back.find("lm_head.weight"), nullptr);
  EXPECT_EQ(back.tensors.size(), f.tensors.size() - 1);
}

TEST(ConvertHfExport, DefaultDtype) {
  TempDir tmp;
  Shape s;
  ModelFiles f = base_model(s);
  for (auto& [name, t] : f.tensors) t = skv::backend::to_dtype(t, DType::BF16);
  write_hf_model(tmp.path / "bf16", f, tiny_config(false));
  EXPECT_EQ(skv::io::default_export_dtype(skv::io::open_model_files((tmp.path / "bf16").string())), DType::BF16);
  // Mixed tensor dtypes: the config's torch_dtype decides.
  f.tensors["model.norm.weight"] = skv::backend::to_dtype(f.tensors["model.norm.weight"], DType::F32);
  std::string cfg = tiny_config(false);
  cfg.replace(cfg.find("\"float32\""), 9, "\"float16\"");
  write_hf_model(tmp.path / "mixed", f, cfg);
  EXPECT_EQ(skv::io::default_export_dtype(skv::io::open_model_files((tmp.path / "mixed").string())), DType::F16);
  EXPECT_EQ(skv::io::parse_export_dtype("bf16"), DType::BF16);
  EXPECT_EQ(skv::io::parse_export_dtype("float16"), DType::F16);
  EXPECT_SKV_ERROR(skv::io::parse_export_dtype("q4_1"), "unknown dtype 'q4_1'");
}

TEST(ConvertHfExport, OutputDirectoryRules) {
  TempDir tmp;
  const fs::path src = tmp.path / "base", out = tmp.path / "out";
  write_hf_model(src, base_model(Shape{}), tiny_config(false));
  ModelFiles f = skv::io::open_model_files(src.string());
  skv::model::add_swiftkv_tensors(f, 3, 1);

  fs::create_directories(out);  // an empty directory is fine
  skv::io::export_hf_directory(f, out.string() + "/", {});
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  // Non-empty: refused without replace_existing, and left untouched.
  write_file((out / "marker").string(), std::string("x"));
  EXPECT_SKV_ERROR(skv::io::export_hf_directory(f, out.string(), {}), "is not empty (pass --force to replace it)");
  EXPECT_TRUE(fs::exists(out / "marker"));
  skv::io::HfExportOptions force;
  force.replace_existing = true;
  skv::io::export_hf_directory(f, out.string(), force);
  EXPECT_FALSE(fs::exists(out / "marker"));
  EXPECT_TRUE(fs::exists(out / "config.json"));
  // --force only ever replaces a model directory.
  const fs::path other = tmp.path / "other";
  fs::create_directories(other);
  write_file((other / "notes.txt").string(), std::string("keep me"));
  EXPECT_SKV_ERROR(skv::io::export_hf_directory(f, other.string(), force), "not a model directory");
  EXPECT_TRUE(fs::exists(other / "notes.txt"));
  // Never over the input, never into a missing parent or over a file.
  EXPECT_SKV_ERROR(skv::io::export_hf_directory(f, src.string(), force), "holds the input model");
  EXPECT_SKV_ERROR(skv::io::export_hf_directory(f, tmp.path.string(), force), "holds the input model");
  EXPECT_SKV_ERROR(skv::io::export_hf_directory(f, (tmp.path / "a" / "b").string(), {}), "does not exist");
  EXPECT_SKV_ERROR(skv::io::export_hf_directory(f, (other / "notes.txt").string(), force), "is not a directory");
  // A failure part-way leaves neither the output nor a temporary directory behind.
  ModelFiles bad = f;
  bad.tensors["bad.weight"] = Tensor::empty(DType::Q8_0, {1, 32});  // cannot be converted
  bad.tensors["bad.weight"].data = nullptr;
  EXPECT_THROW(skv::io::export_hf_directory(bad, (tmp.path / "failed").string(), {}), std::exception);
  EXPECT_FALSE(fs::exists(tmp.path / "failed"));
  for (const auto& e : fs::directory_iterator(tmp.path))
    EXPECT_NE(e.path().filename().string().front(), '.') << "left behind: " << e.path();
}

// A GGUF llama model (F32, random) with a small byte-level BPE tokenizer.
GGUFBuilder tiny_gguf(std::vector<float>& q0_ggml, const std::string& pre = "smollm",
                      std::optional<bool> add_bos = std::nullopt) {
  GGUFBuilder g;
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a", "b", "c", "ab", "Ġ", "Ġa", "<tool>", "1", "2"};
  const std::vector<int32_t> types = {3, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1, 1};
  g.kv_str("general.architecture", "llama")
      .kv_u32("llama.block_count", 2)
      .kv_u32("llama.context_length", 128)
      .kv_u32("llama.embedding_length", 8)
      .kv_u32("llama.feed_forward_length", 16)
      .kv_u32("llama.attention.head_count", 2)
      .kv_u32("llama.attention.head_count_kv", 1)
      .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .kv_f32("llama.rope.freq_base", 100000.0f)
      .kv_str("tokenizer.ggml.model", "gpt2")
      .kv_str("tokenizer.ggml.pre", pre)
      .kv_strs("tokenizer.ggml.tokens", tokens)
      .kv_array<int32_t>("tokenizer.ggml.token_type", I32, types)
      .kv_strs("tokenizer.ggml.merges", {"a b", "Ġ a"})
      .kv_u32("tokenizer.ggml.bos_token_id", 1)
      .kv_u32("tokenizer.ggml.eos_token_id", 2)
      .kv_u32("tokenizer.ggml.unknown_token_id", 0)
      .kv_str("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  if (add_bos) g.kv<uint8_t>("tokenizer.ggml.add_bos_token", BOOL, *add_bos ? 1 : 0);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0, 1);
  auto tensor = [&](const std::string& name, std::vector<int64_t> ne, std::vector<float>* keep = nullptr) {
    int64_t n = 1;
    for (auto d : ne) n *= d;
    Bytes b;
    for (int64_t i = 0; i < n; ++i) {
      const float v = dist(rng);
      if (keep) keep->push_back(v);
      GGUFBuilder::put<float>(b, v);
    }
    g.tensor(name, std::move(ne), 0, std::move(b));
  };
  tensor("token_embd.weight", {8, 12});
  tensor("output_norm.weight", {8});
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", {8});
    tensor(p + "ffn_norm.weight", {8});
    tensor(p + "attn_q.weight", {8, 8}, l == 0 ? &q0_ggml : nullptr);
    tensor(p + "attn_k.weight", {8, 4});
    tensor(p + "attn_v.weight", {8, 4});
    tensor(p + "attn_output.weight", {8, 8});
    tensor(p + "ffn_gate.weight", {8, 16});
    tensor(p + "ffn_up.weight", {8, 16});
    tensor(p + "ffn_down.weight", {16, 8});
  }
  return g;
}

TEST(ConvertHfExport, GgufToHfDirectory) {
  // Every pre-tokenizer family, BOS on / off / left to the family's default (llama-bpe adds it).
  const std::vector<std::tuple<std::string, std::optional<bool>, bool>> cases = {
      {"smollm", false, false},          {"smollm", true, true},
      {"smollm", std::nullopt, false},   {"llama-bpe", false, false},
      {"llama-bpe", std::nullopt, true}, {"gpt2", true, true}};
  for (const auto& [pre, add_bos_key, add_bos] : cases) {
    SCOPED_TRACE(pre + (add_bos_key ? (*add_bos_key ? " add_bos" : " no bos") : " default bos"));
    TempDir tmp;
    std::vector<float> q0;
    tiny_gguf(q0, pre, add_bos_key).write(tmp.file("m.gguf"));
    ModelFiles f = skv::io::open_model_files(tmp.file("m.gguf"));
    ASSERT_TRUE(f.rope_interleaved);
    EXPECT_EQ(skv::io::default_export_dtype(f), DType::F32);
    skv::io::HfExportOptions opt;
    opt.extra_files = skv::tokenizer::hf_tokenizer_files_from_gguf(*f.gguf);
    opt.extra_files["generation_config.json"] = skv::io::generation_config_to_json_text(f.config);
    skv::model::add_swiftkv_tensors(f, 1, 1);
    const fs::path out = tmp.path / "out";
    skv::io::export_hf_directory(f, out.string(), opt);

    const ModelFiles back = skv::io::open_model_files(out.string());
    EXPECT_FALSE(back.rope_interleaved);
    EXPECT_EQ(back.config.model_type(), "llama_swiftkv");
    EXPECT_TRUE(back.config.tie_word_embeddings);
    EXPECT_EQ(back.find("lm_head.weight"), nullptr);
    // q rows back in HF order: HF row h*4 + half*2 + j = GGUF row h*4 + 2*j + half.
    for (const char* name : {"model.layers.0.self_attn.q_proj.weight"}) {
      const std::vector<float> got = values(back.get(name));
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t j = 0; j < 2; ++j)
            for (int64_t c = 0; c < 8; ++c)
              ASSERT_EQ(got[(h * 4 + half * 2 + j) * 8 + c], q0[(h * 4 + 2 * j + half) * 8 + c]) << name;
    }
    // Layer 1's SwiftKV copies are un-permuted like the originals.
    expect_values_near(back.get(skv::model::swiftkv_tensor_name(1, "q", "weight")),
                       values(back.get("model.layers.1.self_attn.q_proj.weight")), 0, "q_proj_swiftkv");
    expect_values_near(back.get(skv::model::swiftkv_tensor_name(1, "k", "weight")),
                       values(back.get("model.layers.1.self_attn.k_proj.weight")), 0, "k_proj_swiftkv");
    // Tensors rope does not touch are copied exactly.
    expect_values_near(back.get("model.layers.1.self_attn.v_proj.weight"),
                       values(f.gguf->tensor("blk.1.attn_v.weight")), 0, "v_proj");

    // The written tokenizer encodes like the GGUF one.
    const auto from_gguf = skv::tokenizer::Tokenizer::from_gguf(*f.gguf);
    const auto from_json = skv::tokenizer::Tokenizer::from_path(out.string());
    for (const std::string text : {"ab", "abc ab", " a a  b", "<s>ab</s>", "c<tool>a", "12 a1b2", "", "</s>"}) {
      EXPECT_EQ(from_json->encode(text), from_gguf->encode(text)) << text;
      EXPECT_EQ(from_json->encode(text, false, false), from_gguf->encode(text, false, false)) << text;
    }
    EXPECT_EQ(from_json->adds_bos(), add_bos);
    EXPECT_EQ(from_json->bos_id(), from_gguf->bos_id());
    EXPECT_EQ(from_json->eos_id(), from_gguf->eos_id());
    EXPECT_EQ(from_json->unk_id(), from_gguf->unk_id());
    EXPECT_EQ(from_json->chat_template(), from_gguf->chat_template());
    for (int32_t id = 0; id < 12; ++id) EXPECT_EQ(from_json->is_special(id), from_gguf->is_special(id)) << id;
    const nlohmann::json tc = nlohmann::json::parse(read_file((out / "tokenizer_config.json").string()));
    EXPECT_EQ(tc["add_bos_token"], add_bos);
    EXPECT_EQ(tc["bos_token"], "<s>");
    EXPECT_EQ(tc["eos_token"], "</s>");
    const nlohmann::json gen = nlohmann::json::parse(read_file((out / "generation_config.json").string()));
    EXPECT_EQ(gen["eos_token_id"], 2);
  }
}

TEST(ConvertTokenizerExport, RefusesNonBpeGguf) {
  TempDir tmp;
  GGUFBuilder spm;
  spm.kv_str("general.architecture", "llama").kv_str("tokenizer.ggml.model", "llama");
  spm.kv_strs("tokenizer.ggml.tokens", {"a"});
  spm.write(tmp.file("spm.gguf"));
  skv::io::GGUFFile file(tmp.file("spm.gguf"));
  EXPECT_SKV_ERROR(skv::tokenizer::hf_tokenizer_files_from_gguf(file), "tokenizer.ggml.model 'llama' is not supported");
  GGUFBuilder pre;
  pre.kv_str("tokenizer.ggml.model", "gpt2")
      .kv_str("tokenizer.ggml.pre", "qwen9")
      .kv_strs("tokenizer.ggml.tokens", {"a"});
  pre.write(tmp.file("pre.gguf"));
  skv::io::GGUFFile pre_file(tmp.file("pre.gguf"));
  EXPECT_SKV_ERROR(skv::tokenizer::hf_tokenizer_files_from_gguf(pre_file), "unsupported tokenizer.ggml.pre 'qwen9'");
}

}  // namespace
