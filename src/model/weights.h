#pragma once
// The one binding of checkpoint tensors to the roles of the Llama-family decoder, shared by
// inference (LlamaModel), conversion (add_swiftkv_tensors) and distillation (DistillModel):
// which tensors a layer has follows from the config and its architecture row (model/arch.h),
// never from what happens to be in the file.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/model_files.h"

namespace skv::model {

struct LayerWeights {
  Tensor attn_norm, wq, wk, wv, wo;  // wk / wv undefined for SwiftKV layers (their K/V come from x_M)
  Tensor bq, bk, bv;                 // undefined unless attention_bias
  Tensor bo;                         // undefined unless config.o_proj_bias()
  Tensor q_norm, k_norm;             // per-head RMSNorm [head_dim] (Qwen3); k_norm undefined with wk
  Tensor ffn_norm, w_gate, w_up, w_down;

  // Every tensor slot (defined or not); kept beside the fields so a new one is not missed.
  template <class F>
  void for_each(F&& f) {
    for (Tensor* t :
         {&attn_norm, &wq, &wk, &wv, &wo, &bq, &bk, &bv, &bo, &q_norm, &k_norm, &ffn_norm, &w_gate, &w_up, &w_down})
      f(*t);
  }
};

struct ModelWeights {
  Tensor embed, final_norm, lm_head;  // lm_head aliases embed when tied
  std::vector<LayerWeights> layers;   // SwiftKV layers hold q_proj_swiftkv / q_norm_swiftkv in wq / bq / q_norm
  // SwiftKV path: norm_swiftkv and every group leader's [k; v]_proj_swiftkv stacked into one
  // matrix [groups * 2 * KV * D, d], so all later-layer K/V of a prompt are one GEMM.
  Tensor norm_swiftkv, kv_swiftkv, kv_swiftkv_bias;
  std::vector<Tensor> k_norm_swiftkv;  // per group leader (Qwen3), applied to its keys before RoPE

  // Every tensor slot of the model, the layers' included (defined or not).
  template <class F>
  void for_each(F&& f) {
    for (Tensor* t : {&embed, &final_norm, &lm_head, &norm_swiftkv, &kv_swiftkv, &kv_swiftkv_bias}) f(*t);
    for (Tensor& t : k_norm_swiftkv) f(t);
    for (LayerWeights& l : layers) l.for_each(f);
  }
};

// Teacher: the layer's own q/k/v (every layer of a plain model, every layer of a SwiftKV
// checkpoint's teacher path). SwiftKV: a layer >= M on the SwiftKV path: q_proj_swiftkv (and
// q_norm_swiftkv), no k/v of its own.
enum class LayerPath { Teacher, SwiftKV };

// Shape-checked views of one layer's tensors; throws naming a missing or misshapen tensor.
LayerWeights bind_layer(const io::ModelFiles& f, int64_t layer, LayerPath path);

// embed, final_norm, lm_head (tied: the embedding).
void bind_globals(const io::ModelFiles& f, ModelWeights& w);

// A group leader's SwiftKV K/V projections (k_norm: Qwen3's k_norm_swiftkv, else undefined).
struct SwiftKVLeaderWeights {
  Tensor wk, wv, bk, bv, k_norm;
};
SwiftKVLeaderWeights bind_swiftkv_leader(const io::ModelFiles& f, int64_t layer);

// Every tensor SwiftKV adds to a base model with M, G (docs/swiftkv.md#checkpoint-layout), in a fixed order:
// norm_swiftkv, then per layer >= M its q projection (and bias, q_norm_swiftkv), then per
// group leader its k / v projections (and biases, k_norm_swiftkv). The conversion initialises
// each from `init_from` of `layer` (group_mean: the mean over the leader's G layers); the
// distillation trains exactly these.
struct SwiftKVTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t layer;          // the layer it belongs to (norm_swiftkv: M)
  std::string init_from;  // per-layer suffix of the base tensor it starts from
  bool group_mean;
};
std::vector<SwiftKVTensorSpec> swiftkv_tensor_specs(const io::ModelConfig& c, int64_t m, int64_t g);

}  // namespace skv::model
