#include "model/weights.h"

#include "core/error.h"
#include "model/swiftkv.h"

namespace skv::model {

namespace {

struct Dims {
  int64_t d, q_dim, kv_dim, D, I;
  explicit Dims(const io::ModelConfig& c)
      : d(c.hidden_size),
        q_dim(c.num_heads * c.head_dim),
        kv_dim(c.num_kv_heads * c.head_dim),
        D(c.head_dim),
        I(c.intermediate_size) {}
};

}  // namespace

LayerWeights bind_layer(const io::ModelFiles& f, int64_t i, LayerPath path) {
  const io::ModelConfig& c = f.config;
  const Dims n(c);
  auto get = [&](const std::string& suffix, std::vector<int64_t> shape) {
    return f.get(io::layer_tensor_name(i, suffix), shape);
  };
  LayerWeights l;
  l.attn_norm = get("input_layernorm.weight", {n.d});
  const bool own = path == LayerPath::Teacher;
  const std::string q = own ? "self_attn.q_proj." : "self_attn.q_proj_swiftkv.";
  l.wq = get(q + "weight", {n.q_dim, n.d});
  if (c.attention_bias) l.bq = get(q + "bias", {n.q_dim});
  if (c.qk_norm()) l.q_norm = own ? get("self_attn.q_norm.weight", {n.D}) : f.get(swiftkv_qk_norm_name(i, "q"), {n.D});
  if (own) {
    l.wk = get("self_attn.k_proj.weight", {n.kv_dim, n.d});
    l.wv = get("self_attn.v_proj.weight", {n.kv_dim, n.d});
    if (c.attention_bias) {
      l.bk = get("self_attn.k_proj.bias", {n.kv_dim});
      l.bv = get("self_attn.v_proj.bias", {n.kv_dim});
    }
    if (c.qk_norm()) l.k_norm = get("self_attn.k_norm.weight", {n.D});
  }
  l.wo = get("self_attn.o_proj.weight", {n.d, n.q_dim});
  if (c.o_proj_bias()) l.bo = get("self_attn.o_proj.bias", {n.d});
  l.ffn_norm = get("post_attention_layernorm.weight", {n.d});
  l.w_gate = get("mlp.gate_proj.weight", {n.I, n.d});
  l.w_up = get("mlp.up_proj.weight", {n.I, n.d});
  l.w_down = get("mlp.down_proj.weight", {n.d, n.I});
  return l;
}

void bind_globals(const io::ModelFiles& f, ModelWeights& w) {
  const io::ModelConfig& c = f.config;
  w.embed = f.get("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  w.final_norm = f.get("model.norm.weight", {c.hidden_size});
  // Checkpoints that tie often omit lm_head; some untied exporters omit it too and mean the same.
  if (c.tie_word_embeddings || !f.find("lm_head.weight")) {
    w.lm_head = w.embed;
  } else {
    w.lm_head = f.get("lm_head.weight", {c.vocab_size, c.hidden_size});
  }
}

SwiftKVLeaderWeights bind_swiftkv_leader(const io::ModelFiles& f, int64_t i) {
  const io::ModelConfig& c = f.config;
  const Dims n(c);
  SwiftKVLeaderWeights l;
  l.wk = f.get(swiftkv_tensor_name(i, "k", "weight"), {n.kv_dim, n.d});
  l.wv = f.get(swiftkv_tensor_name(i, "v", "weight"), {n.kv_dim, n.d});
  if (c.attention_bias) {
    l.bk = f.get(swiftkv_tensor_name(i, "k", "bias"), {n.kv_dim});
    l.bv = f.get(swiftkv_tensor_name(i, "v", "bias"), {n.kv_dim});
  }
  if (c.qk_norm()) l.k_norm = f.get(swiftkv_qk_norm_name(i, "k"), {n.D});
  return l;
}

std::vector<SwiftKVTensorSpec> swiftkv_tensor_specs(const io::ModelConfig& c, int64_t m, int64_t g) {
  const Dims n(c);
  std::vector<SwiftKVTensorSpec> out;
  out.push_back({swiftkv_norm_name(), {n.d}, m, "input_layernorm.weight", false});
  for (int64_t i = m; i < c.num_layers; ++i) {
    out.push_back({swiftkv_tensor_name(i, "q", "weight"), {n.q_dim, n.d}, i, "self_attn.q_proj.weight", false});
    if (c.attention_bias)
      out.push_back({swiftkv_tensor_name(i, "q", "bias"), {n.q_dim}, i, "self_attn.q_proj.bias", false});
    if (c.qk_norm()) out.push_back({swiftkv_qk_norm_name(i, "q"), {n.D}, i, "self_attn.q_norm.weight", false});
  }
  for (int64_t i = m; i < c.num_layers; i += g) {
    // Order k, v, k bias, v bias: the order distillation checkpoints have always used.
    for (const char* kind : {"weight", "bias"}) {
      if (std::string(kind) == "bias" && !c.attention_bias) continue;
      const std::vector<int64_t> shape =
          std::string(kind) == "weight" ? std::vector<int64_t>{n.kv_dim, n.d} : std::vector<int64_t>{n.kv_dim};
      for (const char* proj : {"k", "v"})
        out.push_back(
            {swiftkv_tensor_name(i, proj, kind), shape, i, std::string("self_attn.") + proj + "_proj." + kind, true});
    }
    if (c.qk_norm()) out.push_back({swiftkv_qk_norm_name(i, "k"), {n.D}, i, "self_attn.k_norm.weight", true});
  }
  return out;
}

}  // namespace skv::model
