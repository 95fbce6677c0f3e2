#include "train/decoder_layer.h"

#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_ops.h"
#include "train/grad_ops.h"

namespace skv::train {
namespace {
using Buf = std::vector<float>;
}  // namespace

FrozenTensor freeze(const Tensor& t) {
  if (!t.defined()) return {};
  return {t.dtype == DType::F32 ? t : backend::to_dtype(t, DType::F32)};
}

FrozenLayer freeze_layer(const model::LayerWeights& w) {
  return {freeze(w.attn_norm), freeze(w.wq),       freeze(w.wk),     freeze(w.wv),   freeze(w.bq),
          freeze(w.bk),        freeze(w.bv),       freeze(w.wo),     freeze(w.bo),   freeze(w.q_norm),
          freeze(w.k_norm),    freeze(w.ffn_norm), freeze(w.w_gate), freeze(w.w_up), freeze(w.w_down)};
}

LayerDims layer_dims(const io::ModelConfig& c, int64_t n, const int32_t* positions, const int32_t* doc_start,
                     const backend::Rope* rope) {
  return {n,
          c.hidden_size,
          c.num_heads * c.head_dim,
          c.num_kv_heads * c.head_dim,
          c.num_heads,
          c.num_kv_heads,
          c.head_dim,
          c.intermediate_size,
          c.sliding_window,
          static_cast<float>(c.rms_norm_eps),
          1.0f / std::sqrt(static_cast<float>(c.head_dim)),
          positions,
          doc_start,
          rope};
}

void add_into(float* y, const float* x, int64_t count) {
#pragma omp parallel for schedule(static) num_threads(backend::cpu::threads_for(count, 65536))
  for (int64_t i = 0; i < count; ++i) y[i] += x[i];
}

void layer_forward(const LayerDims& m, const FrozenLayer& fl, const float* wq, const float* bq, const float* q_norm,
                   const float* k_ext, const float* v_ext, float* x, LayerSave* s, const LayerTaps* taps) {
  const int64_t n = m.n;
  LayerSave tmp;
  LayerSave& a = s ? *s : tmp;
  if (s) a.x_in.assign(x, x + n * m.d);  // residual inputs are kept only for a backward
  a.rstd1.resize(n);
  a.xn1.resize(n * m.d);
  a.q.resize(n * m.q_dim);
  a.attn.resize(n * m.q_dim);
  a.lse.resize(n * m.H);
  rms_norm_forward(x, fl.attn_norm.p(), m.eps, a.xn1.data(), a.rstd1.data(), n, m.d);
  linear_forward(a.xn1.data(), wq, bq, a.q.data(), n, m.d, m.q_dim);
  if (q_norm) {
    if (s) a.q_raw = a.q;
    a.rstd_q.resize(n * m.H);
    rms_norm_forward(a.q.data(), q_norm, m.eps, a.q.data(), a.rstd_q.data(), n * m.H, m.D);
  }
  rope_forward(a.q.data(), n, m.H, m.D, m.pos, m.rope->inv_freq.data(), m.rope->interleaved);
  Buf k, v;
  if (!k_ext) {
    k.resize(n * m.kv_dim);
    v.resize(n * m.kv_dim);
    linear_forward(a.xn1.data(), fl.wk.p(), fl.bk.defined() ? fl.bk.p() : nullptr, k.data(), n, m.d, m.kv_dim);
    linear_forward(a.xn1.data(), fl.wv.p(), fl.bv.defined() ? fl.bv.p() : nullptr, v.data(), n, m.d, m.kv_dim);
    if (taps && taps->k_raw) std::memcpy(taps->k_raw, k.data(), k.size() * sizeof(float));
    if (taps && taps->v) std::memcpy(taps->v, v.data(), v.size() * sizeof(float));
    if (fl.k_norm.defined()) {
      Buf rstd(n * m.KV);
      rms_norm_forward(k.data(), fl.k_norm.p(), m.eps, k.data(), rstd.data(), n * m.KV, m.D);
    }
    rope_forward(k.data(), n, m.KV, m.D, m.pos, m.rope->inv_freq.data(), m.rope->interleaved);
    k_ext = k.data();
    v_ext = v.data();
  }
  attention_forward(a.q.data(), k_ext, v_ext, a.attn.data(), a.lse.data(), n, m.H, m.KV, m.D, m.scale, m.doc_start,
                    m.window);
  Buf proj(n * m.d);
  linear_forward(a.attn.data(), fl.wo.p(), fl.bo.defined() ? fl.bo.p() : nullptr, proj.data(), n, m.q_dim, m.d);
  add_into(x, proj.data(), n * m.d);

  if (s) a.x_mid.assign(x, x + n * m.d);
  a.rstd2.resize(n);
  a.xn2.resize(n * m.d);
  a.gate.resize(n * m.I);
  a.up.resize(n * m.I);
  a.act.resize(n * m.I);
  rms_norm_forward(x, fl.ffn_norm.p(), m.eps, a.xn2.data(), a.rstd2.data(), n, m.d);
  linear_forward(a.xn2.data(), fl.w_gate.p(), static_cast<const float*>(nullptr), a.gate.data(), n, m.d, m.I);
  linear_forward(a.xn2.data(), fl.w_up.p(), static_cast<const float*>(nullptr), a.up.data(), n, m.d, m.I);
  silu_mul_forward(a.gate.data(), a.up.data(), a.act.data(), n * m.I);
  linear_forward(a.act.data(), fl.w_down.p(), static_cast<const float*>(nullptr), proj.data(), n, m.I, m.d);
  add_into(x, proj.data(), n * m.d);
}

void layer_backward(const LayerDims& m, const FrozenLayer& fl, const float* wq, const float* q_norm, const LayerSave& a,
                    const float* k, const float* v, float* dx, float* dk, float* dv, float* dwq, float* dbq,
                    float* dq_norm) {
  const int64_t n = m.n;
  Buf d_act(n * m.I), d_gate(n * m.I), d_up(n * m.I), dxn(n * m.d);
  linear_backward<float>(dx, a.act.data(), fl.w_down.p(), d_act.data(), nullptr, nullptr, n, m.I, m.d);
  silu_mul_backward(d_act.data(), a.gate.data(), a.up.data(), d_gate.data(), d_up.data(), n * m.I);
  linear_backward<float>(d_gate.data(), a.xn2.data(), fl.w_gate.p(), dxn.data(), nullptr, nullptr, n, m.d, m.I);
  linear_backward<float>(d_up.data(), a.xn2.data(), fl.w_up.p(), dxn.data(), nullptr, nullptr, n, m.d, m.I, true);
  // The residual passes dx through unchanged; the norm branch adds to it.
  rms_norm_backward<float>(dxn.data(), a.x_mid.data(), fl.ffn_norm.p(), a.rstd2.data(), dx, nullptr, n, m.d, true);

  Buf d_attn(n * m.q_dim), dq(n * m.q_dim), dk_l(n * m.kv_dim), dv_l(n * m.kv_dim);
  linear_backward<float>(dx, a.attn.data(), fl.wo.p(), d_attn.data(), nullptr, nullptr, n, m.q_dim, m.d);
  attention_backward(d_attn.data(), a.q.data(), k, v, a.attn.data(), a.lse.data(), dq.data(), dk_l.data(), dv_l.data(),
                     n, m.H, m.KV, m.D, m.scale, m.doc_start, m.window);
  add_into(dk, dk_l.data(), n * m.kv_dim);
  add_into(dv, dv_l.data(), n * m.kv_dim);
  rope_backward(dq.data(), n, m.H, m.D, m.pos, m.rope->inv_freq.data(), m.rope->interleaved);
  if (q_norm) {
    Buf dq_raw(n * m.q_dim);
    rms_norm_backward<float>(dq.data(), a.q_raw.data(), q_norm, a.rstd_q.data(), dq_raw.data(), dq_norm, n * m.H, m.D);
    dq.swap(dq_raw);
  }
  linear_backward<float>(dq.data(), a.xn1.data(), wq, dxn.data(), dwq, dbq, n, m.d, m.q_dim);
  rms_norm_backward<float>(dxn.data(), a.x_in.data(), fl.attn_norm.p(), a.rstd1.data(), dx, nullptr, n, m.d, true);
}

}  // namespace skv::train
