#pragma once
// One decoder layer in F32 with an explicit backward, shared by the training-side code that
// needs the activations inference never keeps: distillation (train/distill_model) and the
// least-squares calibration of the SwiftKV projections (train/calibrate).
#include <cstdint>
#include <vector>

#include "backend/ops.h"
#include "io/config.h"
#include "model/weights.h"

namespace skv::train {

// A frozen float matrix or vector as F32 (a view when the checkpoint is F32 already).
struct FrozenTensor {
  Tensor t;
  const float* p() const { return t.as<float>(); }
  bool defined() const { return t.defined(); }
};

struct FrozenLayer {
  FrozenTensor attn_norm, wq, wk, wv, bq, bk, bv, wo, bo, q_norm, k_norm, ffn_norm, w_gate, w_up, w_down;
};

// Training runs in F32 whatever the checkpoint stores; an F32 tensor stays a view of the file.
FrozenTensor freeze(const Tensor& t);
FrozenLayer freeze_layer(const model::LayerWeights& w);

// The dimensions and frozen context every layer computation needs.
struct LayerDims {
  int64_t n, d, q_dim, kv_dim, H, KV, D, I, window;
  float eps, scale;
  const int32_t* pos;
  const int32_t* doc_start;
  const backend::Rope* rope;
};
LayerDims layer_dims(const io::ModelConfig& c, int64_t n, const int32_t* positions, const int32_t* doc_start,
                     const backend::Rope* rope);

// What the backward of one student layer needs, saved by its forward.
struct LayerSave {
  std::vector<float> x_in, rstd1, xn1, q_raw, rstd_q, q, attn, lse, x_mid, rstd2, xn2, gate, up,
      act;  // q_raw, rstd_q: q_norm only
};

// Copies of a layer's own projections, taken by its forward where non-null ([n, kv_dim] each):
// k_raw is k_proj's output before any k_norm and RoPE, v is v_proj's output.
struct LayerTaps {
  float* k_raw = nullptr;
  float* v = nullptr;
};

// y += x over count values (threaded).
void add_into(float* y, const float* x, int64_t count);

// One decoder layer, x updated in place. With own K/V (k_ext == nullptr) it projects its own
// keys / values (teacher path and shared layers); otherwise it attends to the given RoPE'd
// K/V (a SwiftKV layer). q_norm: the per-head Q norm (Qwen3; nullptr: none). `s` receives the
// activations the backward needs (nullptr: none kept); `taps` receives copies of the layer's
// own K/V projections (own K/V only).
void layer_forward(const LayerDims& m, const FrozenLayer& fl, const float* wq, const float* bq, const float* q_norm,
                   const float* k_ext, const float* v_ext, float* x, LayerSave* s, const LayerTaps* taps = nullptr);

// Backward of a SwiftKV layer: dx holds d loss / d output on entry and d loss / d input on
// return; dk / dv (the layer's share of its group's K/V gradient) are accumulated.
void layer_backward(const LayerDims& m, const FrozenLayer& fl, const float* wq, const float* q_norm, const LayerSave& a,
                    const float* k, const float* v, float* dx, float* dk, float* dv, float* dwq, float* dbq,
                    float* dq_norm);

}  // namespace skv::train
