#pragma once
// Shared by the tests that run models: the fixture checkpoints and seeded random token ids.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/tensor.h"
#include "io/model_files.h"
#include "model/swiftkv.h"

namespace skv::testing {

inline std::string model_fixture(const std::string& name) {
  return std::string(SKV_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

inline std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

// Tiny random Llama-family checkpoints, built in memory.
inline Tensor randn(skv::Shape shape, std::mt19937& rng, float stddev, float mean = 0.0f) {
  Tensor t = Tensor::empty(DType::F32, shape);
  std::normal_distribution<float> dist(mean, stddev);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = dist(rng);
  return t;
}

struct TinyShape {
  int64_t layers = 5, heads = 4, kv_heads = 2, head_dim = 8, hidden = 32, ffn = 48, vocab = 64;
  bool tied = false, bias = false;
  skv::model::Arch arch = skv::model::Arch::Llama;
  int64_t window = 0;  // Mistral's sliding window
};

inline skv::io::ModelFiles base_model(const TinyShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  skv::io::ModelFiles f;
  f.path = "<memory>";
  skv::io::ModelConfig& c = f.config;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.ffn;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.tie_word_embeddings = s.tied;
  c.arch = s.arch;
  c.attention_bias = s.bias || c.arch_info().implicit_qkv_bias;
  c.sliding_window = s.window;
  c.max_position_embeddings = 256;
  const int64_t d = s.hidden, qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  f.tensors["model.embed_tokens.weight"] = randn({s.vocab, d}, rng, 0.3f);
  f.tensors["model.norm.weight"] = randn({d}, rng, 0.1f, 1.0f);
  if (!s.tied) f.tensors["lm_head.weight"] = randn({s.vocab, d}, rng, 0.3f);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    f.tensors[p + "input_layernorm.weight"] = randn({d}, rng, 0.1f, 1.0f);
    f.tensors[p + "post_attention_layernorm.weight"] = randn({d}, rng, 0.1f, 1.0f);
    f.tensors[p + "self_attn.q_proj.weight"] = randn({qd, d}, rng, 0.15f);
    f.tensors[p + "self_attn.k_proj.weight"] = randn({kvd, d}, rng, 0.15f);
    f.tensors[p + "self_attn.v_proj.weight"] = randn({kvd, d}, rng, 0.1f);
    f.tensors[p + "self_attn.o_proj.weight"] = randn({d, qd}, rng, 0.1f);
    if (c.attention_bias) {
      f.tensors[p + "self_attn.q_proj.bias"] = randn({qd}, rng, 0.1f);
      f.tensors[p + "self_attn.k_proj.bias"] = randn({kvd}, rng, 0.1f);
      f.tensors[p + "self_attn.v_proj.bias"] = randn({kvd}, rng, 0.1f);
      if (c.o_proj_bias()) f.tensors[p + "self_attn.o_proj.bias"] = randn({d}, rng, 0.1f);
    }
    if (c.qk_norm()) {
      f.tensors[p + "self_attn.q_norm.weight"] = randn({s.head_dim}, rng, 0.1f, 1.0f);
      f.tensors[p + "self_attn.k_norm.weight"] = randn({s.head_dim}, rng, 0.1f, 1.0f);
    }
    f.tensors[p + "mlp.gate_proj.weight"] = randn({s.ffn, d}, rng, 0.1f);
    f.tensors[p + "mlp.up_proj.weight"] = randn({s.ffn, d}, rng, 0.1f);
    f.tensors[p + "mlp.down_proj.weight"] = randn({d, s.ffn}, rng, 0.1f);
  }
  return f;
}

// A SwiftKV model whose SwiftKV tensors are random (not the conversion's copies), so the
// SwiftKV and teacher paths really differ.
inline skv::io::ModelFiles swiftkv_model(const TinyShape& s, int64_t m, int64_t g, uint32_t seed) {
  skv::io::ModelFiles f = base_model(s, seed);
  skv::model::add_swiftkv_tensors(f, m, g);
  std::mt19937 rng(seed + 1000);
  for (auto& [name, t] : f.tensors)
    if (name.find("swiftkv") != std::string::npos)
      t = randn(t.shape, rng, name.find("norm") != std::string::npos ? 0.1f : 0.15f,
                name.find("norm") != std::string::npos ? 1.0f : 0.0f);
  return f;
}

// The same checkpoint with every projection and the LM head in Q8_0: its integer kernels
// compute each row on its own, so results cannot depend on what else is in a batch.
inline void quantize_projections_q8_0(skv::io::ModelFiles& f) {
  for (auto& [name, t] : f.tensors) {
    const bool proj = name.find("_proj") != std::string::npos || name == "lm_head.weight";
    if (!proj || t.shape.size() != 2 || t.cols() % backend::cpu::QK != 0) continue;
    Tensor q = Tensor::empty(DType::Q8_0, t.shape);
    for (int64_t r = 0; r < t.rows(); ++r)
      backend::cpu::quantize_row_q8_0(t.as<float>() + r * t.cols(),
                                      reinterpret_cast<backend::cpu::BlockQ8_0*>(static_cast<uint8_t*>(q.data) +
                                                                                 r * q.row_bytes()),
                                      t.cols());
    t = q;
  }
}

}  // namespace skv::testing
