#include "model/llama.h"

#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>

#include "core/error.h"
#include "model/rope_table.h"

namespace skv {
namespace {

// Rows [r0, r0 + n) of a 2-D F32 tensor, sharing its memory.
Tensor row_block(const Tensor& t, int64_t r0, int64_t n) {
  return Tensor::view(DType::F32, {n, t.cols()}, t.as<float>() + r0 * t.cols(), t.owner);
}

void copy_rows(const Tensor& src, int64_t r0, Tensor& dst) {
  std::memcpy(dst.data, src.as<float>() + r0 * src.cols(), dst.nbytes());
}

// Qwen3's q_norm / k_norm: RMSNorm over each head_dim slice of every row, in place.
void head_norm(Tensor& x, int64_t heads, const Tensor& w, float eps) {
  Tensor per_head = Tensor::view(DType::F32, {x.rows() * heads, x.cols() / heads}, x.data, x.owner);
  ops::rms_norm(per_head, w, eps, per_head);
}

bool is_swiftkv_tensor(const std::string& name) { return name.find("_swiftkv.") != std::string::npos; }

// Teacher q/k/v projections and q/k norms of a layer >= m ("model.layers.<i>.self_attn.{q,k,v}_proj.*",
// "...self_attn.{q,k}_norm.weight").
bool is_teacher_attn_from(const std::string& name, int64_t m) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return false;
  const std::string rest = name.substr(dot + 1);
  const bool qkv = rest.rfind("self_attn.q_proj.", 0) == 0 || rest.rfind("self_attn.k_proj.", 0) == 0 ||
                   rest.rfind("self_attn.v_proj.", 0) == 0 || rest == "self_attn.q_norm.weight" ||
                   rest == "self_attn.k_norm.weight";
  return qkv && std::stoll(name.substr(prefix.size(), dot - prefix.size())) >= m;
}

}  // namespace

// Activation buffers for one forward over n rows. k / v only when the rows belong to several
// sequences: one sequence's new K/V rows are written by the projection straight into its cache,
// several sequences' are computed as one block and then copied into each cache.
struct LlamaModel::Scratch {
  Tensor xn, q, attn, proj, gate, up, k, v;
  Scratch(const ModelConfig& c, int64_t n, bool kv_block)
      : xn(Tensor::empty(DType::F32, {n, c.hidden_size})),
        q(Tensor::empty(DType::F32, {n, c.num_heads * c.head_dim})),
        attn(Tensor::empty(DType::F32, {n, c.num_heads * c.head_dim})),
        proj(Tensor::empty(DType::F32, {n, c.hidden_size})),
        gate(Tensor::empty(DType::F32, {n, c.intermediate_size})),
        up(Tensor::empty(DType::F32, {n, c.intermediate_size})) {
    if (kv_block) {
      k = Tensor::empty(DType::F32, {n, c.num_kv_heads * c.head_dim});
      v = Tensor::empty(DType::F32, {n, c.num_kv_heads * c.head_dim});
    }
  }
};

LlamaModel::LlamaModel(ModelFiles files, ModelOptions opts) : files_(std::move(files)) {
  const ModelConfig& c = files_.config;
  c.validate();
  const bool swiftkv = c.swiftkv_checkpoint && c.swiftkv && opts.swiftkv;
  layout_ = swiftkv ? KVLayout::swiftkv(c) : KVLayout::teacher(c);
  const int64_t m = layout_.first_skip;
  bind_globals(files_, w_);
  for (int64_t i = 0; i < c.num_layers; ++i)
    w_.layers.push_back(bind_layer(files_, i, i < m ? LayerPath::Teacher : LayerPath::SwiftKV));
  if (layout_.active()) bind_swiftkv();
  for (auto it = files_.tensors.begin(); it != files_.tensors.end();) {
    // On the SwiftKV path the leaders' k/v_proj_swiftkv live on in the stacked copy.
    const std::string& name = it->first;
    const bool kv_swiftkv =
        name.find("k_proj_swiftkv.") != std::string::npos || name.find("v_proj_swiftkv.") != std::string::npos;
    const bool unused = layout_.active() ? is_teacher_attn_from(name, m) || kv_swiftkv
                                         : is_swiftkv_tensor(name) || name == swiftkv_norm_name();
    it = unused ? files_.tensors.erase(it) : std::next(it);
  }
  rope_ = make_rope(c, files_.rope_interleaved);
}

void LlamaModel::bind_swiftkv() {
  const ModelConfig& c = files_.config;
  const int64_t d = c.hidden_size, kv_dim = c.num_kv_heads * c.head_dim;
  w_.norm_swiftkv = files_.get(swiftkv_norm_name(), {d});
  std::vector<Tensor> parts, biases;  // k, v of each leader in layer order
  for (int64_t i = layout_.first_skip; i < c.num_layers; i += layout_.group) {
    const SwiftKVLeaderWeights l = bind_swiftkv_leader(files_, i);
    parts.push_back(l.wk);
    parts.push_back(l.wv);
    if (l.bk.defined()) {
      biases.push_back(l.bk);
      biases.push_back(l.bv);
    }
    if (l.k_norm.defined()) w_.k_norm_swiftkv.push_back(l.k_norm);
  }
  // Stacking needs one dtype; mixed checkpoints are widened to F32 once, at load.
  DType dt = parts.front().dtype;
  for (const Tensor& p : parts)
    if (p.dtype != dt) dt = DType::F32;
  Tensor stacked = Tensor::empty(dt, {static_cast<int64_t>(parts.size()) * kv_dim, d});
  auto* dst = static_cast<uint8_t*>(stacked.data);
  for (const Tensor& p : parts) {
    const Tensor src = p.dtype == dt ? p : ops::to_dtype(p, dt);
    std::memcpy(dst, src.data, src.nbytes());
    dst += src.nbytes();
    files_.release_pages(p);  // its values live on in the stacked copy only
  }
  w_.kv_swiftkv = stacked;
  owned_["model.kv_proj_swiftkv.stacked.weight"] = stacked;
  if (!biases.empty()) {
    Tensor b = Tensor::empty(DType::F32, {static_cast<int64_t>(biases.size()) * kv_dim});
    for (size_t i = 0; i < biases.size(); ++i) {
      const Tensor f = ops::to_dtype(biases[i], DType::F32);
      std::memcpy(b.as<float>() + i * kv_dim, f.data, f.nbytes());
    }
    w_.kv_swiftkv_bias = b;
    owned_["model.kv_proj_swiftkv.stacked.bias"] = b;
  }
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path, ModelOptions opts) {
  return std::make_unique<LlamaModel>(open_model_files(path), opts);
}

KVCache LlamaModel::make_cache(int64_t capacity) const {
  const ModelConfig& c = files_.config;
  return KVCache(layout_.cache_layers(), c.num_kv_heads * c.head_dim, capacity);
}

size_t LlamaModel::kv_bytes_per_token(const ModelConfig& c, const KVLayout& layout) {
  return static_cast<size_t>(layout.cache_layers()) * c.num_kv_heads * c.head_dim * sizeof(float) * 2;
}

size_t LlamaModel::kv_bytes_per_token() const { return kv_bytes_per_token(files_.config, layout_); }

void LlamaModel::count_linear(int64_t n, const Tensor& w) {
  flops_.linear += 2.0 * static_cast<double>(n) * static_cast<double>(w.numel());
}

// One decoder layer over the rows of x (positions pos[0..n)), which belong to the sequences of
// `spans`. Layers that own their K/V write them into each sequence's cache first; SwiftKV
// layers find theirs already there (swiftkv_kv).
void LlamaModel::layer(int64_t l, Tensor& x, const std::vector<Span>& spans, const int32_t* pos, Scratch& s) {
  const ModelConfig& c = files_.config;
  const LayerWeights& lw = w_.layers[l];
  const int64_t n = x.rows();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int64_t ci = layout_.cache_index(l);
  ops::rms_norm(x, lw.attn_norm, eps, s.xn);
  ops::linear(s.xn, lw.wq, lw.bq.defined() ? &lw.bq : nullptr, s.q);
  count_linear(n, lw.wq);
  if (lw.q_norm.defined()) head_norm(s.q, c.num_heads, lw.q_norm, eps);
  ops::rope(s.q, c.num_heads, pos, rope_);
  if (lw.wk.defined()) {
    const bool direct = spans.size() == 1;
    Tensor k = direct ? spans[0].cache->k_rows(ci, spans[0].n_past, n) : s.k;
    Tensor v = direct ? spans[0].cache->v_rows(ci, spans[0].n_past, n) : s.v;
    ops::linear(s.xn, lw.wk, lw.bk.defined() ? &lw.bk : nullptr, k);
    ops::linear(s.xn, lw.wv, lw.bv.defined() ? &lw.bv : nullptr, v);
    count_linear(n, lw.wk);
    count_linear(n, lw.wv);
    if (lw.k_norm.defined()) head_norm(k, c.num_kv_heads, lw.k_norm, eps);
    ops::rope(k, c.num_kv_heads, pos, rope_);
    if (!direct) {
      for (const Span& sp : spans) {
        Tensor kc = sp.cache->k_rows(ci, sp.n_past, sp.n), vc = sp.cache->v_rows(ci, sp.n_past, sp.n);
        copy_rows(k, sp.row0, kc);
        copy_rows(v, sp.row0, vc);
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (const Span& sp : spans) {
    Tensor q = row_block(s.q, sp.row0, sp.n), out = row_block(s.attn, sp.row0, sp.n);
    ops::attention(q, sp.cache->k[ci], sp.cache->v[ci], sp.n_past, c.num_heads, c.num_kv_heads, scale, out,
                   c.sliding_window);
    // QK^T and PV are 2 * H * D FLOPs per visible key each.
    flops_.attention += 4.0 * c.num_heads * c.head_dim * ops::attention_keys(sp.n_past, sp.n, c.sliding_window);
  }
  ops::linear(s.attn, lw.wo, lw.bo.defined() ? &lw.bo : nullptr, s.proj);
  count_linear(n, lw.wo);
  ops::add_inplace(x, s.proj);

  ops::rms_norm(x, lw.ffn_norm, eps, s.xn);
  ops::linear(s.xn, lw.w_gate, nullptr, s.gate);
  ops::linear(s.xn, lw.w_up, nullptr, s.up);
  ops::silu_mul(s.gate, s.up, s.gate);
  ops::linear(s.gate, lw.w_down, nullptr, s.proj);
  count_linear(n, lw.w_gate);
  count_linear(n, lw.w_up);
  count_linear(n, lw.w_down);
  ops::add_inplace(x, s.proj);
}

// K/V of every layer >= M for all rows of x = x_M: one GEMM of norm_swiftkv(x_M) against the
// stacked leaders' k/v weights, then each leader's slice is RoPE'd into each sequence's cache
// layer. Each position's later-layer K/V is written exactly once.
void LlamaModel::swiftkv_kv(const Tensor& x, const std::vector<Span>& spans, const int32_t* pos) {
  const ModelConfig& c = files_.config;
  const int64_t n = x.rows(), kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t width = w_.kv_swiftkv.rows();
  Tensor h = Tensor::empty(DType::F32, x.shape);
  ops::rms_norm(x, w_.norm_swiftkv, static_cast<float>(c.rms_norm_eps), h);
  Tensor kv = Tensor::empty(DType::F32, {n, width});
  ops::linear(h, w_.kv_swiftkv, w_.kv_swiftkv_bias.defined() ? &w_.kv_swiftkv_bias : nullptr, kv);
  count_linear(n, w_.kv_swiftkv);
  const int64_t groups = width / (2 * kv_dim);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t ci = layout_.first_skip + g;
    for (const Span& sp : spans) {
      Tensor k = sp.cache->k_rows(ci, sp.n_past, sp.n);
      Tensor v = sp.cache->v_rows(ci, sp.n_past, sp.n);
      const float* src = kv.as<float>() + sp.row0 * width + 2 * g * kv_dim;
      for (int64_t r = 0; r < sp.n; ++r) {
        std::memcpy(k.as<float>() + r * kv_dim, src + r * width, kv_dim * sizeof(float));
        std::memcpy(v.as<float>() + r * kv_dim, src + r * width + kv_dim, kv_dim * sizeof(float));
      }
      if (!w_.k_norm_swiftkv.empty())
        head_norm(k, c.num_kv_heads, w_.k_norm_swiftkv[g], static_cast<float>(c.rms_norm_eps));
      ops::rope(k, c.num_kv_heads, pos + sp.row0, rope_);
    }
  }
}

Tensor LlamaModel::head(const Tensor& rows) {
  const ModelConfig& c = files_.config;
  Tensor normed = Tensor::empty(DType::F32, rows.shape);
  ops::rms_norm(rows, w_.final_norm, static_cast<float>(c.rms_norm_eps), normed);
  Tensor logits = Tensor::empty(DType::F32, {rows.shape[0], c.vocab_size});
  ops::linear(normed, w_.lm_head, nullptr, logits);
  count_linear(rows.shape[0], w_.lm_head);
  return logits;
}

Tensor LlamaModel::forward(KVCache& cache, const int32_t* ids, int64_t n, int64_t n_past, Logits which) {
  std::vector<SeqChunk> one(1);
  one[0] = {.cache = &cache, .ids = ids, .n = n, .n_past = n_past, .which = which};
  forward_batch(one);
  return std::move(one[0].logits);
}

void LlamaModel::forward_batch(std::vector<SeqChunk>& chunks) {
  const ModelConfig& c = files_.config;
  if (chunks.empty()) fail("forward: no sequences");
  int64_t total = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SeqChunk& ch = chunks[i];
    if (!ch.cache) fail("forward: sequence ", i, " has no KV cache");
    if (ch.n <= 0) fail("forward: no tokens");
    if (ch.cache->num_layers() != layout_.cache_layers())
      fail("forward: KV cache has ", ch.cache->num_layers(), " layers, this model's path needs ",
           layout_.cache_layers());
    if (ch.n_past < 0 || ch.n_past + ch.n > ch.cache->capacity)
      fail("sequence of ", ch.n_past + ch.n, " tokens exceeds the context size ", ch.cache->capacity);
    for (int64_t j = 0; j < ch.n; ++j)
      if (ch.ids[j] < 0 || ch.ids[j] >= c.vocab_size)
        fail("token id ", ch.ids[j], " is out of range for vocabulary size ", c.vocab_size);
    for (size_t j = 0; j < i; ++j)
      if (chunks[j].cache == ch.cache)
        fail("forward: sequences ", j, " and ", i, " share one KV cache; each needs its own");
    total += ch.n;
  }

  // The row block: every chunk's rows in order, each with its own position.
  const int64_t d = c.hidden_size;
  std::vector<Span> spans;
  std::vector<int32_t> pos(total);
  std::vector<int32_t> ids_block;
  if (chunks.size() > 1) ids_block.reserve(total);
  for (const SeqChunk& ch : chunks) {
    const int64_t row0 = spans.empty() ? 0 : spans.back().row0 + spans.back().n;
    spans.push_back({ch.cache, row0, ch.n, ch.n_past});
    std::iota(pos.begin() + row0, pos.begin() + row0 + ch.n, static_cast<int32_t>(ch.n_past));
    if (chunks.size() > 1) ids_block.insert(ids_block.end(), ch.ids, ch.ids + ch.n);
  }
  Tensor x = Tensor::empty(DType::F32, {total, d});
  ops::embedding(w_.embed, chunks.size() > 1 ? ids_block.data() : chunks[0].ids, total, x);
  {
    Scratch s(c, total, spans.size() > 1);
    for (int64_t l = 0; l < layout_.first_skip; ++l) layer(l, x, spans, pos.data(), s);
  }
  if (layout_.active()) swiftkv_kv(x, spans, pos.data());

  // Only the rows whose logits are wanted go on: through the SwiftKV layers, the final norm
  // and the LM head (the largest matrix of a small model).
  std::vector<Span> out_spans;
  std::vector<int32_t> out_pos;
  std::vector<size_t> out_chunk;  // chunk of each out span
  int64_t out_rows = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    SeqChunk& ch = chunks[i];
    ch.logits = Tensor();
    if (ch.which == Logits::None) continue;
    const int64_t first = ch.which == Logits::All ? 0 : ch.n - 1;
    out_spans.push_back({ch.cache, out_rows, ch.n - first, ch.n_past + first});
    out_pos.insert(out_pos.end(), pos.begin() + spans[i].row0 + first, pos.begin() + spans[i].row0 + ch.n);
    out_chunk.push_back(i);
    out_rows += ch.n - first;
  }
  if (out_rows == 0) return;
  Tensor rows = x;
  if (out_rows < total) {
    rows = Tensor::empty(DType::F32, {out_rows, d});
    for (size_t j = 0; j < out_spans.size(); ++j) {
      const Span& src = spans[out_chunk[j]];
      Tensor dst = row_block(rows, out_spans[j].row0, out_spans[j].n);
      copy_rows(x, src.row0 + src.n - out_spans[j].n, dst);
    }
  }
  if (layout_.active()) {
    Scratch s(c, out_rows, false);  // layers >= M own no K/V
    for (int64_t l = layout_.first_skip; l < c.num_layers; ++l) layer(l, rows, out_spans, out_pos.data(), s);
  }
  Tensor logits = head(rows);
  if (out_spans.size() == 1) {
    chunks[out_chunk[0]].logits = std::move(logits);
    return;
  }
  for (size_t j = 0; j < out_spans.size(); ++j)
    chunks[out_chunk[j]].logits = row_block(logits, out_spans[j].row0, out_spans[j].n);
}

std::map<std::string, Tensor> LlamaModel::tensors_in_use() const {
  std::map<std::string, Tensor> all = files_.tensors;
  all.insert(owned_.begin(), owned_.end());
  return all;
}

int64_t LlamaModel::parameter_count() const {
  int64_t n = 0;
  std::set<const void*> seen;
  for (const auto& [name, t] : tensors_in_use())
    if (seen.insert(t.data).second) n += t.numel();
  return n;
}

size_t LlamaModel::weight_bytes() const {
  size_t b = 0;
  std::set<const void*> seen;
  for (const auto& [name, t] : tensors_in_use())
    if (seen.insert(t.data).second) b += t.nbytes();
  return b;
}

}  // namespace skv
