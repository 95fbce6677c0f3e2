#include "model/llama.h"

#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"
#include "model/rope_table.h"

namespace skv {
namespace {

std::string layer_name(int64_t i, const char* suffix) { return "model.layers." + std::to_string(i) + "." + suffix; }

Tensor bind(const ModelFiles& f, const std::string& name, std::vector<int64_t> shape) {
  const Tensor& t = f.get(name);
  if (t.shape != shape) {
    Tensor want;
    want.shape = shape;
    fail("tensor '", name, "' in ", f.path, " has shape ", t.shape_str(), " but the config implies ", want.shape_str());
  }
  if (t.dtype == DType::I32) fail("tensor '", name, "' has integer dtype, expected floating point or quantised");
  return t;
}

}  // namespace

LlamaModel::LlamaModel(ModelFiles files) : files_(std::move(files)) {
  const ModelConfig& c = files_.config;
  c.validate();
  const int64_t d = c.hidden_size, q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  w_.embed = bind(files_, "model.embed_tokens.weight", {c.vocab_size, d});
  w_.final_norm = bind(files_, "model.norm.weight", {d});
  if (c.tie_word_embeddings || !files_.find("lm_head.weight")) {
    w_.lm_head = w_.embed;
  } else {
    w_.lm_head = bind(files_, "lm_head.weight", {c.vocab_size, d});
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights l;
    l.attn_norm = bind(files_, layer_name(i, "input_layernorm.weight"), {d});
    l.wq = bind(files_, layer_name(i, "self_attn.q_proj.weight"), {q_dim, d});
    l.wk = bind(files_, layer_name(i, "self_attn.k_proj.weight"), {kv_dim, d});
    l.wv = bind(files_, layer_name(i, "self_attn.v_proj.weight"), {kv_dim, d});
    l.wo = bind(files_, layer_name(i, "self_attn.o_proj.weight"), {d, q_dim});
    if (c.attention_bias) {
      l.bq = bind(files_, layer_name(i, "self_attn.q_proj.bias"), {q_dim});
      l.bk = bind(files_, layer_name(i, "self_attn.k_proj.bias"), {kv_dim});
      l.bv = bind(files_, layer_name(i, "self_attn.v_proj.bias"), {kv_dim});
    }
    l.ffn_norm = bind(files_, layer_name(i, "post_attention_layernorm.weight"), {d});
    l.w_gate = bind(files_, layer_name(i, "mlp.gate_proj.weight"), {c.intermediate_size, d});
    l.w_up = bind(files_, layer_name(i, "mlp.up_proj.weight"), {c.intermediate_size, d});
    l.w_down = bind(files_, layer_name(i, "mlp.down_proj.weight"), {d, c.intermediate_size});
    w_.layers.push_back(std::move(l));
  }
  rope_ = make_rope(c, files_.rope_interleaved);
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path) {
  return std::make_unique<LlamaModel>(open_model_files(path));
}

Tensor LlamaModel::forward(KVCache& cache, const int32_t* ids, int64_t n, int64_t n_past, Logits which) {
  const ModelConfig& c = files_.config;
  if (n <= 0) fail("forward: no tokens");
  if (n_past + n > cache.capacity)
    fail("sequence of ", n_past + n, " tokens exceeds the context size ", cache.capacity);
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      fail("token id ", ids[i], " is out of range for vocabulary size ", c.vocab_size);

  const int64_t d = c.hidden_size, q_dim = c.num_heads * c.head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<int32_t> pos(n);
  std::iota(pos.begin(), pos.end(), static_cast<int32_t>(n_past));

  Tensor x = Tensor::empty(DType::F32, {n, d});
  Tensor xn = Tensor::empty(DType::F32, {n, d});
  Tensor q = Tensor::empty(DType::F32, {n, q_dim});
  Tensor attn = Tensor::empty(DType::F32, {n, q_dim});
  Tensor proj = Tensor::empty(DType::F32, {n, d});
  Tensor gate = Tensor::empty(DType::F32, {n, c.intermediate_size});
  Tensor up = Tensor::empty(DType::F32, {n, c.intermediate_size});

  ops::embedding(w_.embed, ids, n, x);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[l];
    ops::rms_norm(x, lw.attn_norm, eps, xn);
    Tensor k = cache.k_rows(l, n_past, n);
    Tensor v = cache.v_rows(l, n_past, n);
    ops::linear(xn, lw.wq, lw.bq.defined() ? &lw.bq : nullptr, q);
    ops::linear(xn, lw.wk, lw.bk.defined() ? &lw.bk : nullptr, k);
    ops::linear(xn, lw.wv, lw.bv.defined() ? &lw.bv : nullptr, v);
    ops::rope(q, c.num_heads, pos.data(), rope_);
    ops::rope(k, c.num_kv_heads, pos.data(), rope_);
    ops::attention(q, cache.k[l], cache.v[l], n_past, c.num_heads, c.num_kv_heads, scale, attn);
    ops::linear(attn, lw.wo, nullptr, proj);
    ops::add_inplace(x, proj);

    ops::rms_norm(x, lw.ffn_norm, eps, xn);
    ops::linear(xn, lw.w_gate, nullptr, gate);
    ops::linear(xn, lw.w_up, nullptr, up);
    ops::silu_mul(gate, up, gate);
    ops::linear(gate, lw.w_down, nullptr, proj);
    ops::add_inplace(x, proj);
  }
  if (which == Logits::None) return {};

  // Only the rows whose logits are wanted go through the final norm and the LM head, the
  // largest matrix of a small model.
  Tensor rows = which == Logits::All ? x : Tensor::view(DType::F32, {1, d}, x.as<float>() + (n - 1) * d, x.owner);
  Tensor normed = Tensor::empty(DType::F32, rows.shape);
  ops::rms_norm(rows, w_.final_norm, eps, normed);
  Tensor logits = Tensor::empty(DType::F32, {rows.shape[0], c.vocab_size});
  ops::linear(normed, w_.lm_head, nullptr, logits);
  return logits;
}

int64_t LlamaModel::parameter_count() const {
  int64_t n = 0;
  std::set<const void*> seen;
  for (const auto& [name, t] : files_.tensors)
    if (seen.insert(t.data).second) n += t.numel();
  return n;
}

size_t LlamaModel::weight_bytes() const {
  size_t b = 0;
  std::set<const void*> seen;
  for (const auto& [name, t] : files_.tensors)
    if (seen.insert(t.data).second) b += t.nbytes();
  return b;
}

}  // namespace skv
