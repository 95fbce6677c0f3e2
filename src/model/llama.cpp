#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "model/rope_table.h"

namespace skv::model {
namespace {

// Qwen3's q_norm / k_norm: RMSNorm over each head_dim slice of every row, in place.
void head_norm(Tensor& x, int64_t heads, const Tensor& w, float eps) {
  Tensor per_head = x.reshaped({x.rows() * heads, x.cols() / heads});
  backend::rms_norm(per_head, w, eps, per_head);
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

ForwardContext::ForwardContext(const LlamaModel& model) : device_(model.device()) { one_.resize(1); }

Tensor ForwardContext::take(Tensor& buf, int64_t rows, int64_t cols, DType dtype) {
  if (!buf.defined() || buf.cols() != cols || buf.rows() < rows) {
    buf = Tensor();  // free the old buffer before the bigger one is made
    buf = Tensor::empty(dtype, {rows, cols}, device_);
  }
  return buf.row_block(0, rows);
}

Tensor ForwardContext::stage_i32(const std::vector<int32_t>& host, Tensor& dev) {
  const int64_t n = static_cast<int64_t>(host.size());
  const Tensor h = Tensor::view(DType::I32, {n, 1}, host.data());
  if (device_.is_host()) return h;
  Tensor d = take(dev, n, 1, DType::I32);
  backend::copy(h, d);
  return d;
}

LlamaModel::LlamaModel(io::ModelFiles files, ModelOptions opts) : files_(std::move(files)), opts_(opts) {
  const io::ModelConfig& c = files_.config;
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
  if (!opts_.device.is_host()) upload_weights();
}

// Weights are bound and stacked in host memory (views of the file mappings), then copied to the
// device once; the model keeps only the device copies in w_.
void LlamaModel::upload_weights() {
  std::map<const void*, Tensor> done;  // tied weights stay one tensor
  auto up = [&](Tensor& t) {
    if (!t.defined()) return;
    auto it = done.find(t.data);
    if (it == done.end()) it = done.emplace(t.data, backend::clone(t, opts_.device)).first;
    t = it->second;
  };
  w_.for_each(up);
}

void LlamaModel::bind_swiftkv() {
  const io::ModelConfig& c = files_.config;
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
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor src = parts[i].dtype == dt ? parts[i] : backend::to_dtype(parts[i], dt);
    Tensor dst = stacked.row_block(static_cast<int64_t>(i) * kv_dim, kv_dim);
    backend::copy(src, dst);
    files_.release_pages(parts[i]);  // its values live on in the stacked copy only
  }
  w_.kv_swiftkv = stacked;
  owned_["model.kv_proj_swiftkv.stacked.weight"] = stacked;
  if (!biases.empty()) {
    Tensor b = Tensor::empty(DType::F32, {static_cast<int64_t>(biases.size()), kv_dim});
    for (size_t i = 0; i < biases.size(); ++i) {
      Tensor dst = b.row_block(static_cast<int64_t>(i), 1);
      backend::copy(backend::to_dtype(biases[i], DType::F32), dst);
    }
    b = b.reshaped({static_cast<int64_t>(biases.size()) * kv_dim});
    w_.kv_swiftkv_bias = b;
    owned_["model.kv_proj_swiftkv.stacked.bias"] = b;
  }
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path, ModelOptions opts) {
  return std::make_unique<LlamaModel>(io::open_model_files(path), opts);
}

KVSpec LlamaModel::kv_spec() const {
  const io::ModelConfig& c = files_.config;
  return {layout_.cache_layers(), c.num_kv_heads * c.head_dim, opts_.device};
}

size_t LlamaModel::kv_bytes_per_token(const io::ModelConfig& c, const KVLayout& layout) {
  return static_cast<size_t>(layout.cache_layers()) * c.num_kv_heads * c.head_dim * sizeof(float) * 2;
}

size_t LlamaModel::kv_bytes_per_token() const { return kv_bytes_per_token(files_.config, layout_); }

namespace {

void count_linear(FlopCount& f, int64_t n, const Tensor& w) {
  f.linear += 2.0 * static_cast<double>(n) * static_cast<double>(w.numel());
}

// Whether the span's new rows can be written by the projection itself: an F32 cache whose
// new positions sit in one block.
bool in_one_block(const ForwardContext::Span& sp) {
  const int64_t bs = sp.kv->block_size;
  return sp.kv->k[0].dtype == DType::F32 && sp.n_past / bs == (sp.n_past + sp.n - 1) / bs;
}

// Rows k / v (positions n_past .. n_past + n - 1 of the span's sequence) into the sequence's
// pages of cache layer ci, one copy per block touched, rounded to the cache's dtype.
void store_kv(const ForwardContext::Span& sp, int64_t ci, const Tensor& k, const Tensor& v) {
  const int64_t bs = sp.kv->block_size;
  for (int64_t p = sp.n_past; p < sp.n_past + sp.n;) {
    const int64_t run = std::min(sp.n_past + sp.n, (p / bs + 1) * bs) - p;
    const int64_t slot = sp.kv->slot(p);
    Tensor kd = sp.kv->k[ci].row_block(slot, run), vd = sp.kv->v[ci].row_block(slot, run);
    backend::store_rows(k.row_block(p - sp.n_past, run), kd);
    backend::store_rows(v.row_block(p - sp.n_past, run), vd);
    p += run;
  }
}

}  // namespace

// One decoder layer over the rows of x (positions pos), which belong to the sequences of
// `spans`. Layers that own their K/V write them into each sequence's cache first; SwiftKV
// layers find theirs already there (swiftkv_kv).
void LlamaModel::layer(ForwardContext& ctx, int64_t l, Tensor& x, const std::vector<Span>& spans,
                       const Tensor& pos) const {
  const io::ModelConfig& c = files_.config;
  const LayerWeights& lw = w_.layers[l];
  const int64_t n = x.rows(), q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int64_t ci = layout_.cache_index(l);
  FlopCount& flops = ctx.flops_;
  Tensor xn = ctx.take(ctx.xn_, n, c.hidden_size), q = ctx.take(ctx.q_, n, q_dim);
  backend::rms_norm(x, lw.attn_norm, eps, xn);
  backend::linear(xn, lw.wq, lw.bq.defined() ? &lw.bq : nullptr, q);
  count_linear(flops, n, lw.wq);
  if (lw.q_norm.defined()) head_norm(q, c.num_heads, lw.q_norm, eps);
  backend::rope(q, c.num_heads, pos, rope_);
  if (lw.wk.defined()) {
    // One sequence whose new positions sit in one block of its cache gets its K/V rows straight
    // from the projection (a contiguous cache is one block); otherwise the rows are computed as
    // one block and copied into each sequence's pages.
    const bool direct = spans.size() == 1 && in_one_block(spans[0]);
    const int64_t slot0 = direct ? spans[0].kv->slot(spans[0].n_past) : 0;
    Tensor k = direct ? spans[0].kv->k[ci].row_block(slot0, n) : ctx.take(ctx.k_, n, kv_dim);
    Tensor v = direct ? spans[0].kv->v[ci].row_block(slot0, n) : ctx.take(ctx.v_, n, kv_dim);
    backend::linear(xn, lw.wk, lw.bk.defined() ? &lw.bk : nullptr, k);
    backend::linear(xn, lw.wv, lw.bv.defined() ? &lw.bv : nullptr, v);
    count_linear(flops, n, lw.wk);
    count_linear(flops, n, lw.wv);
    if (lw.k_norm.defined()) head_norm(k, c.num_kv_heads, lw.k_norm, eps);
    backend::rope(k, c.num_kv_heads, pos, rope_);
    if (!direct)
      for (const Span& sp : spans) store_kv(sp, ci, k.row_block(sp.row0, sp.n), v.row_block(sp.row0, sp.n));
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  Tensor attn = ctx.take(ctx.attn_, n, q_dim);
  for (const Span& sp : spans) {
    Tensor out = attn.row_block(sp.row0, sp.n);
    backend::attention(q.row_block(sp.row0, sp.n), sp.kv->k[ci], sp.kv->v[ci], sp.table, sp.kv->block_size, sp.n_past,
                       c.num_heads, c.num_kv_heads, scale, out, c.sliding_window, sp.split_from);
    // QK^T and PV are 2 * H * D FLOPs per visible key each.
    flops.attention += 4.0 * c.num_heads * c.head_dim * backend::attention_keys(sp.n_past, sp.n, c.sliding_window);
  }
  Tensor proj = ctx.take(ctx.proj_, n, c.hidden_size);
  backend::linear(attn, lw.wo, lw.bo.defined() ? &lw.bo : nullptr, proj);
  count_linear(flops, n, lw.wo);
  backend::add_inplace(x, proj);

  Tensor gate = ctx.take(ctx.gate_, n, c.intermediate_size), up = ctx.take(ctx.up_, n, c.intermediate_size);
  backend::rms_norm(x, lw.ffn_norm, eps, xn);
  backend::linear(xn, lw.w_gate, nullptr, gate);
  backend::linear(xn, lw.w_up, nullptr, up);
  backend::silu_mul(gate, up, gate);
  backend::linear(gate, lw.w_down, nullptr, proj);
  count_linear(flops, n, lw.w_gate);
  count_linear(flops, n, lw.w_up);
  count_linear(flops, n, lw.w_down);
  backend::add_inplace(x, proj);
}

// K/V of every layer >= M for all rows of x = x_M: one GEMM of norm_swiftkv(x_M) against the
// stacked leaders' k/v weights, then each leader's slice is RoPE'd into each sequence's cache
// layer. Each position's later-layer K/V is written exactly once.
void LlamaModel::swiftkv_kv(ForwardContext& ctx, const Tensor& x, const std::vector<Span>& spans,
                            const Tensor& pos) const {
  const io::ModelConfig& c = files_.config;
  const int64_t n = x.rows(), kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t width = w_.kv_swiftkv.rows();
  Tensor h = ctx.take(ctx.h_, n, c.hidden_size);
  backend::rms_norm(x, w_.norm_swiftkv, static_cast<float>(c.rms_norm_eps), h);
  Tensor kv = ctx.take(ctx.kv_, n, width);
  backend::linear(h, w_.kv_swiftkv, w_.kv_swiftkv_bias.defined() ? &w_.kv_swiftkv_bias : nullptr, kv);
  count_linear(ctx.flops_, n, w_.kv_swiftkv);
  const int64_t groups = width / (2 * kv_dim);
  const bool direct = spans.size() == 1 && in_one_block(spans[0]);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t ci = layout_.first_skip + g;
    // Straight into one block of the cache when the rows fit one (as in layer()), else through
    // staging rows copied into the pages.
    Tensor k =
        direct ? spans[0].kv->k[ci].row_block(spans[0].kv->slot(spans[0].n_past), n) : ctx.take(ctx.k_, n, kv_dim);
    Tensor v =
        direct ? spans[0].kv->v[ci].row_block(spans[0].kv->slot(spans[0].n_past), n) : ctx.take(ctx.v_, n, kv_dim);
    backend::copy_cols(kv, 2 * g * kv_dim, k);
    backend::copy_cols(kv, 2 * g * kv_dim + kv_dim, v);
    if (!w_.k_norm_swiftkv.empty())
      head_norm(k, c.num_kv_heads, w_.k_norm_swiftkv[g], static_cast<float>(c.rms_norm_eps));
    backend::rope(k, c.num_kv_heads, pos, rope_);
    if (!direct)
      for (const Span& sp : spans) store_kv(sp, ci, k.row_block(sp.row0, sp.n), v.row_block(sp.row0, sp.n));
  }
}

Tensor LlamaModel::head(ForwardContext& ctx, const Tensor& rows) const {
  const io::ModelConfig& c = files_.config;
  const int64_t n = rows.rows();
  Tensor normed = ctx.take(ctx.xn_, n, c.hidden_size);
  backend::rms_norm(rows, w_.final_norm, static_cast<float>(c.rms_norm_eps), normed);
  Tensor logits = ctx.take(ctx.logits_, n, c.vocab_size);
  backend::linear(normed, w_.lm_head, nullptr, logits);
  count_linear(ctx.flops_, n, w_.lm_head);
  return logits;
}

Tensor LlamaModel::forward(ForwardContext& ctx, const SeqKV& kv, const int32_t* ids, int64_t n, int64_t n_past,
                           Logits which) const {
  ctx.one_[0] = {.kv = kv, .ids = ids, .n = n, .n_past = n_past, .which = which};
  forward_batch(ctx, ctx.one_);
  return std::move(ctx.one_[0].logits);
}

void LlamaModel::forward_batch(ForwardContext& ctx, std::vector<SeqChunk>& chunks) const {
  const io::ModelConfig& c = files_.config;
  if (ctx.device_ != opts_.device) fail_internal("forward: the context was made for another device");
  if (chunks.empty()) fail_internal("forward: no sequences");
  int64_t total = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SeqChunk& ch = chunks[i];
    if (!ch.kv.k || !ch.kv.v) fail_internal("forward: sequence ", i, " has no KV cache");
    if (ch.n <= 0) fail_internal("forward: no tokens");
    if (ch.kv.layers != layout_.cache_layers())
      fail_internal("forward: KV cache has ", ch.kv.layers, " layers, this model's path needs ",
                    layout_.cache_layers());
    if (ch.kv.block_size <= 0 || !ch.kv.blocks) fail_internal("forward: sequence ", i, " has no block table");
    if (ch.n_past < 0 || ch.n_past + ch.n > ch.kv.capacity())
      fail_resource("sequence of ", ch.n_past + ch.n, " tokens exceeds the context size ", ch.kv.capacity());
    for (int64_t j = 0; j < ch.n; ++j)
      if (ch.ids[j] < 0 || ch.ids[j] >= c.vocab_size)
        fail("token id ", ch.ids[j], " is out of range for vocabulary size ", c.vocab_size);
    total += ch.n;
  }
  // Chunks may share blocks they only read (a cached prefix), never one they write: the rows
  // of one block written by two chunks would depend on their order.
  auto& written = ctx.written_;
  written.clear();
  for (const SeqChunk& ch : chunks) {
    const int64_t bs = ch.kv.block_size;
    for (int64_t b = ch.n_past / bs; b <= (ch.n_past + ch.n - 1) / bs; ++b)
      written.emplace_back(ch.kv.k, ch.kv.blocks[b]);
  }
  std::sort(written.begin(), written.end());
  if (std::adjacent_find(written.begin(), written.end()) != written.end())
    fail_internal("forward: two sequences of one step write the same KV block");

  // The row block: every chunk's rows in order, each with its own position.
  const int64_t d = c.hidden_size;
  std::vector<Span>& spans = ctx.spans_;
  spans.clear();
  ctx.ids_.clear();
  ctx.pos_.clear();
  ctx.tables_.clear();
  for (const SeqChunk& ch : chunks) {
    const int64_t row0 = spans.empty() ? 0 : spans.back().row0 + spans.back().n;
    spans.push_back({&ch.kv, row0, ch.n, ch.n_past, Tensor(), ch.split_from});
    ctx.ids_.insert(ctx.ids_.end(), ch.ids, ch.ids + ch.n);
    for (int64_t j = 0; j < ch.n; ++j) ctx.pos_.push_back(static_cast<int32_t>(ch.n_past + j));
    const int64_t nb = (ch.n_past + ch.n + ch.kv.block_size - 1) / ch.kv.block_size;
    ctx.tables_.insert(ctx.tables_.end(), ch.kv.blocks, ch.kv.blocks + nb);
  }
  const Tensor ids = ctx.stage_i32(ctx.ids_, ctx.ids_dev_);
  const Tensor pos = ctx.stage_i32(ctx.pos_, ctx.pos_dev_);
  const Tensor tables = ctx.stage_i32(ctx.tables_, ctx.tables_dev_);
  for (int64_t off = 0; Span & sp : spans) {
    const int64_t nb = (sp.n_past + sp.n + sp.kv->block_size - 1) / sp.kv->block_size;
    sp.table = tables.row_block(off, nb);
    off += nb;
  }
  Tensor x = ctx.take(ctx.x_, total, d);
  backend::embedding(w_.embed, ids, x);
  for (int64_t l = 0; l < layout_.first_skip; ++l) layer(ctx, l, x, spans, pos);
  if (layout_.active()) swiftkv_kv(ctx, x, spans, pos);

  // Only the rows whose logits are wanted go on: through the SwiftKV layers, the final norm
  // and the LM head (the largest matrix of a small model).
  std::vector<Span>& out_spans = ctx.out_spans_;
  std::vector<size_t>& out_chunk = ctx.out_chunk_;  // chunk of each out span
  out_spans.clear();
  out_chunk.clear();
  ctx.out_pos_.clear();
  int64_t out_rows = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    SeqChunk& ch = chunks[i];
    ch.logits = Tensor();
    if (ch.which == Logits::None) continue;
    if (ch.logits_from < 0 || ch.logits_from >= ch.n)
      fail_internal("forward: logits_from ", ch.logits_from, " of ", ch.n);
    const int64_t first = ch.which == Logits::All ? ch.logits_from : ch.n - 1;
    out_spans.push_back({&ch.kv, out_rows, ch.n - first, ch.n_past + first, spans[i].table, ch.split_from});
    ctx.out_pos_.insert(ctx.out_pos_.end(), ctx.pos_.begin() + spans[i].row0 + first,
                        ctx.pos_.begin() + spans[i].row0 + ch.n);
    out_chunk.push_back(i);
    out_rows += ch.n - first;
  }
  ctx.rows_count_.early += total;
  if (layout_.active()) ctx.rows_count_.late += out_rows;
  ctx.rows_count_.head += out_rows;
  if (out_rows == 0) return;
  Tensor rows = x;
  if (out_rows < total) {
    rows = ctx.take(ctx.rows_, out_rows, d);
    for (size_t j = 0; j < out_spans.size(); ++j) {
      const Span& src = spans[out_chunk[j]];
      Tensor dst = rows.row_block(out_spans[j].row0, out_spans[j].n);
      backend::copy(x.row_block(src.row0 + src.n - out_spans[j].n, out_spans[j].n), dst);
    }
  }
  if (layout_.active()) {
    const Tensor out_pos = ctx.stage_i32(ctx.out_pos_, ctx.out_pos_dev_);
    for (int64_t l = layout_.first_skip; l < c.num_layers; ++l) layer(ctx, l, rows, out_spans, out_pos);
  }
  Tensor logits = head(ctx, rows);
  for (size_t j = 0; j < out_spans.size(); ++j)
    chunks[out_chunk[j]].logits = logits.row_block(out_spans[j].row0, out_spans[j].n);
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

}  // namespace skv::model
