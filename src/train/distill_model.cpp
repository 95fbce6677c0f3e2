#include "train/distill_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "core/error.h"
#include "model/rope_table.h"
#include "model/weights.h"
#include "train/grad_ops.h"

namespace skv::train {
namespace {

using Buf = std::vector<float>;

// The teacher cache keeps hidden states in bf16; these are its two conversions.
Buf widen_bf16(const uint16_t* v, int64_t count) {
  Buf out(count);
  backend::cpu::kernels().to_float_bf16(v, out.data(), count);
  return out;
}

std::vector<uint16_t> round_to_bf16(const Buf& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = backend::cpu::fp32_to_bf16(v[i]);
  return out;
}

}  // namespace

struct DistillModel::Acts {
  std::vector<LayerSave> layers;   // student layers M..L-1
  Buf x_m, rstd_kv, h_kv;          // x_M, norm_swiftkv's rstd and output
  std::vector<Buf> k, v;           // per group: RoPE'd keys, values
  std::vector<Buf> k_raw, rstd_k;  // per group, k_norm_swiftkv only: keys before the norm, its rstd
  Buf x_s, rstd_f, fn_s;           // student final hidden, final norm
};

DistillModel::DistillModel(io::ModelFiles files) : files_(std::move(files)) {
  const io::ModelConfig& c = files_.config;
  c.validate();
  if (!c.swiftkv_checkpoint || !c.swiftkv || c.num_key_value_layers >= c.num_layers)
    fail(files_.path, " is not a SwiftKV checkpoint (model_type '", c.model_type(),
         "'); make one with `swiftkv convert --swiftkv-fraction F`");
  if (files_.format != io::ModelFormat::HFDirectory)
    fail("distillation needs a SwiftKV model directory (from `swiftkv convert`), not ", files_.path);
  layout_ = model::KVLayout::swiftkv(c);
  rope_ = model::make_rope(c, files_.rope_interleaved);
  const int64_t m = layout_.first_skip;
  model::ModelWeights w;
  model::bind_globals(files_, w);
  embed_ = freeze(w.embed);
  final_norm_ = freeze(w.final_norm);
  lm_head_ = w.lm_head.data == w.embed.data ? embed_ : freeze(w.lm_head);
  // Every layer's own tensors: layers < M serve both paths, layers >= M the teacher's.
  for (int64_t i = 0; i < c.num_layers; ++i)
    layers_.push_back(freeze_layer(model::bind_layer(files_, i, model::LayerPath::Teacher)));

  // The trainable tensors (docs/swiftkv.md#distillation, docs/architectures.md), initialised from the checkpoint.
  std::vector<FrozenTensor> init;
  for (const model::SwiftKVTensorSpec& spec : model::swiftkv_tensor_specs(c, m, layout_.group)) {
    ParamSlot s;
    s.name = spec.name;
    s.shape = spec.shape;
    s.numel = 1;
    for (int64_t x : spec.shape) s.numel *= x;
    s.offset = slots_.empty() ? 0 : slots_.back().offset + slots_.back().numel;
    init.push_back(freeze(files_.get(spec.name, spec.shape)));
    slots_.push_back(std::move(s));
    const int64_t slot = static_cast<int64_t>(slots_.size()) - 1;
    const std::string& n = spec.name;
    auto is = [&](const char* suffix) { return n.ends_with(suffix); };
    if (n == model::swiftkv_norm_name())
      slot_norm_ = slot;
    else if (is("q_proj_swiftkv.weight"))
      slot_q_.push_back(slot);
    else if (is("q_proj_swiftkv.bias"))
      slot_bq_.push_back(slot);
    else if (is("q_norm_swiftkv.weight"))
      slot_qn_.push_back(slot);
    else if (is("k_proj_swiftkv.weight"))
      slot_k_.push_back(slot);
    else if (is("v_proj_swiftkv.weight"))
      slot_v_.push_back(slot);
    else if (is("k_proj_swiftkv.bias"))
      slot_bk_.push_back(slot);
    else if (is("v_proj_swiftkv.bias"))
      slot_bv_.push_back(slot);
    else if (is("k_norm_swiftkv.weight"))
      slot_kn_.push_back(slot);
    else
      fail("distill: no role for SwiftKV tensor ", quote_bounded(n));
  }
  params_.resize(slots_.back().offset + slots_.back().numel);
  grads_.assign(params_.size(), 0.0f);
  for (size_t s = 0; s < slots_.size(); ++s)
    std::memcpy(params_.data() + slots_[s].offset, init[s].p(), slots_[s].numel * sizeof(float));
}

void DistillModel::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

StepStats DistillModel::accumulate(const int32_t* ids, const int32_t* positions, const int32_t* doc_start, int64_t n,
                                   const LossWeights& w) {
  return run(ids, positions, doc_start, n, w, true);
}

StepStats DistillModel::evaluate(const int32_t* ids, const int32_t* positions, const int32_t* doc_start, int64_t n,
                                 const LossWeights& w) {
  return run(ids, positions, doc_start, n, w, false);
}

struct DistillModel::Teacher {
  Buf x_m, h_last, fn;  // x_M; hidden state at the last layer's input; final-normed output
};

void DistillModel::check_sequence(const int32_t* ids, const int32_t* doc_start, int64_t n) const {
  const io::ModelConfig& c = files_.config;
  if (n <= 0) fail("distill: empty sequence");
  for (int64_t i = 0; i < n; ++i) {
    if (ids != nullptr && (ids[i] < 0 || ids[i] >= c.vocab_size))
      fail("token id ", ids[i], " is out of range for vocabulary size ", c.vocab_size);
    if (doc_start[i] < 0 || doc_start[i] > i) fail("distill: bad document start ", doc_start[i], " at row ", i);
  }
}

void DistillModel::run_teacher(const LayerDims& m, const int32_t* ids, Teacher& t) const {
  const int64_t L = files_.config.num_layers, M = layout_.first_skip, n = m.n, d = m.d;
  auto own_q_norm = [](const FrozenLayer& fl) { return fl.q_norm.defined() ? fl.q_norm.p() : nullptr; };
  auto own_layer = [&](int64_t l, float* x) {
    const FrozenLayer& fl = layers_[l];
    layer_forward(m, fl, fl.wq.p(), fl.bq.defined() ? fl.bq.p() : nullptr, own_q_norm(fl), nullptr, nullptr, x,
                  nullptr);
  };
  // Layers 0..M-1 are the same for both paths: their output x_M is also the student's input.
  t.x_m.resize(n * d);
  for (int64_t i = 0; i < n; ++i) std::memcpy(t.x_m.data() + i * d, embed_.p() + ids[i] * d, d * sizeof(float));
  for (int64_t l = 0; l < M; ++l) own_layer(l, t.x_m.data());
  Buf xt(t.x_m), rstd(n);
  for (int64_t l = M; l < L; ++l) {
    if (l == L - 1) t.h_last = xt;
    own_layer(l, xt.data());
  }
  t.fn.resize(n * d);
  rms_norm_forward(xt.data(), final_norm_.p(), m.eps, t.fn.data(), rstd.data(), n, d);
}

StepStats DistillModel::run(const int32_t* ids, const int32_t* positions, const int32_t* doc_start, int64_t n,
                            const LossWeights& lw, bool backward) {
  check_sequence(ids, doc_start, n);
  const LayerDims m = layer_dims(files_.config, n, positions, doc_start, &rope_);
  Teacher t;
  run_teacher(m, ids, t);
  return run_student(m, t.x_m.data(), t.h_last.data(), &t, nullptr, lw, backward);
}

StepStats DistillModel::run_cached(const TeacherTargets& t, const int32_t* positions, const int32_t* doc_start,
                                   int64_t n, const LossWeights& lw, bool backward) {
  check_sequence(nullptr, doc_start, n);
  if (t.k < 0 || t.k > files_.config.vocab_size) fail("distill: cached top-k of ", t.k, " classes");
  const LayerDims m = layer_dims(files_.config, n, positions, doc_start, &rope_);
  const Buf h_last = widen_bf16(t.h_last, n * m.d);
  if (t.k > 0) return run_student(m, t.x_m, h_last.data(), nullptr, &t, lw, backward);
  Teacher live;  // the final hidden state is all the full KL needs of the teacher
  live.fn = widen_bf16(t.fn, n * m.d);
  return run_student(m, t.x_m, h_last.data(), &live, nullptr, lw, backward);
}

StepStats DistillModel::accumulate_cached(const TeacherTargets& t, const int32_t* positions, const int32_t* doc_start,
                                          int64_t n, const LossWeights& w) {
  return run_cached(t, positions, doc_start, n, w, true);
}

StepStats DistillModel::evaluate_cached(const TeacherTargets& t, const int32_t* positions, const int32_t* doc_start,
                                        int64_t n, const LossWeights& w) {
  return run_cached(t, positions, doc_start, n, w, false);
}

TeacherTargetBuffers DistillModel::teacher_targets(const int32_t* ids, const int32_t* positions,
                                                   const int32_t* doc_start, int64_t n, double tau, int64_t k) {
  check_sequence(ids, doc_start, n);
  const int64_t V = files_.config.vocab_size;
  if (k < 0 || k > V) fail("teacher top-k must be in 0..", V, ", got ", k);
  if (!(tau > 0)) fail("distillation temperature must be positive, got ", tau);
  const LayerDims m = layer_dims(files_.config, n, positions, doc_start, &rope_);
  Teacher t;
  run_teacher(m, ids, t);
  TeacherTargetBuffers out;
  out.k = k;
  out.x_m = std::move(t.x_m);
  out.h_last = round_to_bf16(t.h_last);
  if (k == 0) {
    out.fn = round_to_bf16(t.fn);
    return out;
  }
  out.top_ids.resize(n * k);
  out.top_logp.resize(n * k);
  out.rest.resize(n);
  const int64_t chunk = std::max<int64_t>(1, std::min(head_chunk_, n));
  Buf zt(chunk * V);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    linear_forward(t.fn.data() + r0 * m.d, lm_head_.p(), static_cast<const float*>(nullptr), zt.data(), rows, m.d, V);
    teacher_topk(zt.data(), rows, V, static_cast<float>(tau), k, out.top_ids.data() + r0 * k,
                 out.top_logp.data() + r0 * k, out.rest.data() + r0);
  }
  return out;
}

StepStats DistillModel::run_student(const LayerDims& m, const float* x_m, const float* h_last, const Teacher* live,
                                    const TeacherTargets* cached, const LossWeights& lw, bool backward) {
  const io::ModelConfig& c = files_.config;
  const int64_t L = c.num_layers, M = layout_.first_skip, G = layout_.group, groups = (L - M) / G;
  const int64_t n = m.n, d = m.d;
  const int32_t* positions = m.pos;

  // K/V of every layer >= M from norm_swiftkv(x_M), then the SwiftKV layers.
  Acts a;
  a.x_m.assign(x_m, x_m + n * d);
  Buf x(a.x_m);
  a.rstd_kv.resize(n);
  a.h_kv.resize(n * d);
  rms_norm_forward(x.data(), param(slot_norm_), m.eps, a.h_kv.data(), a.rstd_kv.data(), n, d);
  a.k.assign(groups, Buf(n * m.kv_dim));
  a.v.assign(groups, Buf(n * m.kv_dim));
  const bool qk_norm = !slot_kn_.empty();
  if (qk_norm) {
    a.k_raw.assign(groups, Buf());
    a.rstd_k.assign(groups, Buf(n * m.KV));
  }
  for (int64_t g = 0; g < groups; ++g) {
    const float* bk = slot_bk_.empty() ? nullptr : param(slot_bk_[g]);
    const float* bv = slot_bv_.empty() ? nullptr : param(slot_bv_[g]);
    linear_forward(a.h_kv.data(), param(slot_k_[g]), bk, a.k[g].data(), n, d, m.kv_dim);
    linear_forward(a.h_kv.data(), param(slot_v_[g]), bv, a.v[g].data(), n, d, m.kv_dim);
    if (qk_norm) {
      a.k_raw[g] = a.k[g];
      rms_norm_forward(a.k[g].data(), param(slot_kn_[g]), m.eps, a.k[g].data(), a.rstd_k[g].data(), n * m.KV, m.D);
    }
    rope_forward(a.k[g].data(), n, m.KV, m.D, positions, rope_.inv_freq.data(), rope_.interleaved);
  }
  a.layers.resize(L - M);
  for (int64_t l = M; l < L; ++l) {
    const int64_t g = (l - M) / G;
    const float* bq = slot_bq_.empty() ? nullptr : param(slot_bq_[l - M]);
    const float* qn = slot_qn_.empty() ? nullptr : param(slot_qn_[l - M]);
    layer_forward(m, layers_[l], param(slot_q_[l - M]), bq, qn, a.k[g].data(), a.v[g].data(), x.data(),
                  &a.layers[l - M]);
  }
  a.x_s = std::move(x);
  a.rstd_f.resize(n);
  a.fn_s.resize(n * d);
  rms_norm_forward(a.x_s.data(), final_norm_.p(), m.eps, a.fn_s.data(), a.rstd_f.data(), n, d);

  // Losses. The LM head runs in row chunks so only [chunk, vocab] logits exist at a time.
  StepStats st;
  st.tokens = n;
  const int64_t V = c.vocab_size;
  const float tau = static_cast<float>(lw.temperature);
  const float kl_scale = static_cast<float>(lw.kl_scale);
  Buf dfn(backward ? n * d : 0);
  {
    const int64_t chunk = std::max<int64_t>(1, std::min(head_chunk_, n));
    Buf zt(live ? chunk * V : 0), zs(chunk * V), dzs(chunk * V);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t rows = std::min(chunk, n - r0);
      linear_forward(a.fn_s.data() + r0 * d, lm_head_.p(), static_cast<const float*>(nullptr), zs.data(), rows, d, V);
      if (live) {
        linear_forward(live->fn.data() + r0 * d, lm_head_.p(), static_cast<const float*>(nullptr), zt.data(), rows, d,
                       V);
        st.kl += kl_distill_loss(zt.data(), zs.data(), dzs.data(), rows, V, tau, kl_scale);
      } else {
        const int64_t k = cached->k;
        st.kl += kl_topk_loss(zs.data(), dzs.data(), rows, V, tau, kl_scale, k, cached->top_ids + r0 * k,
                              cached->top_logp + r0 * k, cached->rest + r0);
      }
      if (backward)
        linear_backward<float>(dzs.data(), a.fn_s.data() + r0 * d, lm_head_.p(), dfn.data() + r0 * d, nullptr, nullptr,
                               rows, d, V);
    }
  }
  const LayerSave& last = a.layers.back();
  Buf dh_last(n * d);
  st.mse = mse_loss(last.x_in.data(), h_last, dh_last.data(), n * d, static_cast<float>(lw.mse_scale));
  if (!backward) return st;

  // Backward through the student only; frozen weights get no gradient.
  Buf dx(n * d);
  rms_norm_backward<float>(dfn.data(), a.x_s.data(), final_norm_.p(), a.rstd_f.data(), dx.data(), nullptr, n, d);
  std::vector<Buf> dk(groups, Buf(n * m.kv_dim, 0.0f)), dv(groups, Buf(n * m.kv_dim, 0.0f));
  for (int64_t l = L - 1; l >= M; --l) {
    const int64_t g = (l - M) / G;
    float* dbq = slot_bq_.empty() ? nullptr : grad(slot_bq_[l - M]);
    const float* qn = slot_qn_.empty() ? nullptr : param(slot_qn_[l - M]);
    float* dqn = slot_qn_.empty() ? nullptr : grad(slot_qn_[l - M]);
    layer_backward(m, layers_[l], param(slot_q_[l - M]), qn, a.layers[l - M], a.k[g].data(), a.v[g].data(), dx.data(),
                   dk[g].data(), dv[g].data(), grad(slot_q_[l - M]), dbq, dqn);
    if (l == L - 1) add_into(dx.data(), dh_last.data(), n * d);  // the MSE acts on the last layer's input
  }
  Buf dh(n * d);
  for (int64_t g = 0; g < groups; ++g) {
    rope_backward(dk[g].data(), n, m.KV, m.D, positions, rope_.inv_freq.data(), rope_.interleaved);
    if (qk_norm) {
      Buf dk_raw(n * m.kv_dim);
      rms_norm_backward<float>(dk[g].data(), a.k_raw[g].data(), param(slot_kn_[g]), a.rstd_k[g].data(), dk_raw.data(),
                               grad(slot_kn_[g]), n * m.KV, m.D);
      dk[g].swap(dk_raw);
    }
    float* dbk = slot_bk_.empty() ? nullptr : grad(slot_bk_[g]);
    float* dbv = slot_bv_.empty() ? nullptr : grad(slot_bv_[g]);
    linear_backward<float>(dk[g].data(), a.h_kv.data(), param(slot_k_[g]), dh.data(), grad(slot_k_[g]), dbk, n, d,
                           m.kv_dim, g > 0);
    linear_backward<float>(dv[g].data(), a.h_kv.data(), param(slot_v_[g]), dh.data(), grad(slot_v_[g]), dbv, n, d,
                           m.kv_dim, true);
  }
  // d loss / d x_M is not needed (layers below M are frozen), only norm_swiftkv's weight gradient.
  rms_norm_backward<float>(dh.data(), a.x_m.data(), param(slot_norm_), a.rstd_kv.data(), dx.data(), grad(slot_norm_), n,
                           d);
  return st;
}

io::ModelFiles DistillModel::files_with_params() const {
  io::ModelFiles out = files_;
  for (const ParamSlot& s : slots_) {
    Tensor t = Tensor::empty(DType::F32, s.shape);
    std::memcpy(t.data, params_.data() + s.offset, s.numel * sizeof(float));
    out.tensors[s.name] = t;
  }
  return out;
}

}  // namespace skv::train
