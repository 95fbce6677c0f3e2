// The one weight binding (model/weights.h): which tensors each architecture's layers have comes
// from the config and the architecture table, never from what happens to be in the file.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "model/weights.h"

namespace {

using skv::DType;
using skv::Tensor;
using skv::io::ModelFiles;
using skv::model::Arch;
using skv::model::LayerPath;

constexpr int64_t kD = 16, kH = 4, kKV = 2, kHD = 6, kFFN = 24, kVocab = 10, kLayers = 3;

// Every tensor any architecture could have, so the binding alone decides what is used.
ModelFiles all_tensors(Arch arch, bool attention_bias) {
  ModelFiles f;
  f.path = "<memory>";
  skv::io::ModelConfig& c = f.config;
  c.arch = arch;
  c.attention_bias = attention_bias || c.arch_info().implicit_qkv_bias;
  c.vocab_size = kVocab;
  c.hidden_size = kD;
  c.intermediate_size = kFFN;
  c.num_layers = kLayers;
  c.num_heads = kH;
  c.num_kv_heads = kKV;
  c.head_dim = kHD;
  auto put = [&](const std::string& name, std::vector<int64_t> shape) {
    f.tensors[name] = Tensor::zeros(DType::F32, shape);
  };
  put("model.embed_tokens.weight", {kVocab, kD});
  put("model.norm.weight", {kD});
  for (int64_t i = 0; i < kLayers; ++i) {
    auto p = [&](const std::string& s) { return skv::io::layer_tensor_name(i, s); };
    put(p("input_layernorm.weight"), {kD});
    put(p("post_attention_layernorm.weight"), {kD});
    for (const char* q : {"q", "k", "v"}) {
      const int64_t out = std::string(q) == "q" ? kH * kHD : kKV * kHD;
      put(p(std::string("self_attn.") + q + "_proj.weight"), {out, kD});
      put(p(std::string("self_attn.") + q + "_proj.bias"), {out});
    }
    put(p("self_attn.o_proj.weight"), {kD, kH * kHD});
    put(p("self_attn.o_proj.bias"), {kD});
    put(p("self_attn.q_norm.weight"), {kHD});
    put(p("self_attn.k_norm.weight"), {kHD});
    put(p("mlp.gate_proj.weight"), {kFFN, kD});
    put(p("mlp.up_proj.weight"), {kFFN, kD});
    put(p("mlp.down_proj.weight"), {kD, kFFN});
  }
  return f;
}

TEST(ModelWeights, BiasAndNormRulesFollowTheArchitecture) {
  struct Want {
    Arch arch;
    bool attention_bias, qkv_bias, o_bias, qk_norm;
  };
  // transformers: Llama / Qwen3 bias q/k/v/o iff attention_bias; Qwen2 q/k/v always, o never;
  // Mistral never (its config's attention_bias is ignored when parsed, so it is false here).
  for (const Want& w : {Want{Arch::Llama, false, false, false, false}, Want{Arch::Llama, true, true, true, false},
                        Want{Arch::Qwen2, false, true, false, false}, Want{Arch::Qwen3, false, false, false, true},
                        Want{Arch::Qwen3, true, true, true, true}, Want{Arch::Mistral, false, false, false, false}}) {
    const ModelFiles f = all_tensors(w.arch, w.attention_bias);
    SCOPED_TRACE(f.config.model_type() + (w.attention_bias ? " attention_bias" : ""));
    const skv::model::LayerWeights l = skv::model::bind_layer(f, 1, LayerPath::Teacher);
    EXPECT_EQ(l.bq.defined(), w.qkv_bias);
    EXPECT_EQ(l.bk.defined(), w.qkv_bias);
    EXPECT_EQ(l.bv.defined(), w.qkv_bias);
    EXPECT_EQ(l.bo.defined(), w.o_bias);
    EXPECT_EQ(l.q_norm.defined(), w.qk_norm);
    EXPECT_EQ(l.k_norm.defined(), w.qk_norm);
    EXPECT_TRUE(l.wk.defined() && l.wv.defined());
  }
}

TEST(ModelWeights, MissingOrMisshapenTensorsAreNamed) {
  ModelFiles f = all_tensors(Arch::Llama, true);
  f.tensors.erase("model.layers.2.self_attn.o_proj.bias");
  EXPECT_THROW(
      {
        try {
          skv::model::bind_layer(f, 2, LayerPath::Teacher);
        } catch (const skv::Error& e) {
          EXPECT_NE(std::string(e.what()).find("model.layers.2.self_attn.o_proj.bias"), std::string::npos) << e.what();
          throw;
        }
      },
      skv::Error);
  ModelFiles q = all_tensors(Arch::Qwen3, false);
  q.tensors["model.layers.0.self_attn.k_norm.weight"] = Tensor::zeros(DType::F32, {kD});  // hidden, not head_dim
  EXPECT_THROW(skv::model::bind_layer(q, 0, LayerPath::Teacher), skv::Error);
}

TEST(ModelWeights, SwiftKVSpecsPerArchitecture) {
  const int64_t m = 1, g = 2;  // layers 1, 2 are SwiftKV layers; 1 leads their group
  for (Arch arch : {Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Mistral}) {
    const ModelFiles f = all_tensors(arch, false);
    SCOPED_TRACE(f.config.model_type());
    std::set<std::string> names;
    for (const skv::model::SwiftKVTensorSpec& s : skv::model::swiftkv_tensor_specs(f.config, m, g)) {
      EXPECT_TRUE(names.insert(s.name).second) << s.name;
      // Every spec starts from a base tensor of the same shape; leaders' k/v (and k_norm) are group means.
      EXPECT_EQ(f.get(skv::io::layer_tensor_name(s.layer, s.init_from)).shape, s.shape) << s.name;
      EXPECT_EQ(s.group_mean, s.name.find("k_") != std::string::npos || s.name.find("v_proj") != std::string::npos)
          << s.name;
    }
    std::set<std::string> want = {"model.norm_swiftkv.weight", "model.layers.1.self_attn.q_proj_swiftkv.weight",
                                  "model.layers.2.self_attn.q_proj_swiftkv.weight",
                                  "model.layers.1.self_attn.k_proj_swiftkv.weight",
                                  "model.layers.1.self_attn.v_proj_swiftkv.weight"};
    if (arch == Arch::Qwen2)
      for (const char* n :
           {"model.layers.1.self_attn.q_proj_swiftkv.bias", "model.layers.2.self_attn.q_proj_swiftkv.bias",
            "model.layers.1.self_attn.k_proj_swiftkv.bias", "model.layers.1.self_attn.v_proj_swiftkv.bias"})
        want.insert(n);
    if (arch == Arch::Qwen3)
      for (const char* n :
           {"model.layers.1.self_attn.q_norm_swiftkv.weight", "model.layers.2.self_attn.q_norm_swiftkv.weight",
            "model.layers.1.self_attn.k_norm_swiftkv.weight"})
        want.insert(n);
    EXPECT_EQ(names, want);
  }
}

TEST(ModelWeights, SwiftKVLayersBindTheirOwnQuery) {
  ModelFiles f = all_tensors(Arch::Qwen3, false);
  for (const skv::model::SwiftKVTensorSpec& s : skv::model::swiftkv_tensor_specs(f.config, 1, 1))
    f.tensors[s.name] = Tensor::zeros(DType::F32, s.shape);
  const skv::model::LayerWeights l = skv::model::bind_layer(f, 2, LayerPath::SwiftKV);
  EXPECT_EQ(l.wq.data, f.get("model.layers.2.self_attn.q_proj_swiftkv.weight").data);
  EXPECT_EQ(l.q_norm.data, f.get("model.layers.2.self_attn.q_norm_swiftkv.weight").data);
  EXPECT_FALSE(l.wk.defined() || l.wv.defined() || l.k_norm.defined());  // K/V come from x_M
  const skv::model::SwiftKVLeaderWeights lead = skv::model::bind_swiftkv_leader(f, 2);
  EXPECT_EQ(lead.k_norm.data, f.get("model.layers.2.self_attn.k_norm_swiftkv.weight").data);
}

}  // namespace
