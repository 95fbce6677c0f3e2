#pragma once
// The Llama-family decoder (Llama 1/2/3.x, Qwen2 q/k/v bias): weights bound from ModelFiles by
// their Hugging Face names, and a forward pass built only from the device-agnostic ops.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"
#include "engine/kv_cache.h"
#include "io/model_files.h"

namespace skv {

struct LayerWeights {
  Tensor attn_norm, wq, wk, wv, wo;
  Tensor bq, bk, bv;  // undefined unless attention_bias
  Tensor ffn_norm, w_gate, w_up, w_down;
};

struct ModelWeights {
  Tensor embed, final_norm, lm_head;  // lm_head aliases embed when tied
  std::vector<LayerWeights> layers;
};

enum class Logits { None, Last, All };

class LlamaModel {
 public:
  explicit LlamaModel(ModelFiles files);  // binds and shape-checks every tensor
  static std::unique_ptr<LlamaModel> load(const std::string& path);

  const ModelConfig& config() const { return files_.config; }
  const ModelFiles& files() const { return files_; }
  const ModelWeights& weights() const { return w_; }

  // Runs tokens ids[0..n) of one sequence at positions n_past .. n_past + n - 1, writing
  // their K/V into `cache`. Returns logits [1, vocab] for Last, [n, vocab] for All.
  Tensor forward(KVCache& cache, const int32_t* ids, int64_t n, int64_t n_past, Logits which);

  int64_t parameter_count() const;
  size_t weight_bytes() const;

 private:
  ModelFiles files_;
  ModelWeights w_;
  ops::Rope rope_;
};

}  // namespace skv
