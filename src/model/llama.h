#pragma once
// The Llama-family decoder (Llama 1/2/3.x, Qwen2 q/k/v bias, Qwen3 q/k norms, Mistral sliding
// window, and the SwiftKV variant of each): weights bound by model/weights.h, and a forward pass
// built only from the device-agnostic ops.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"
#include "engine/kv_cache.h"
#include "io/model_files.h"
#include "model/swiftkv.h"
#include "model/weights.h"

namespace skv {

struct ModelOptions {
  bool swiftkv = true;  // false: run a SwiftKV checkpoint's teacher path (--no-swiftkv)
};

// Executed floating-point operations (2 per multiply-add), by kind.
struct FlopCount {
  double linear = 0, attention = 0;
  double total() const { return linear + attention; }
};

enum class Logits { None, Last, All };

// One sequence's part of a batched forward: tokens ids[0..n) at positions n_past ..
// n_past + n - 1 of the sequence whose K/V `cache` holds.
struct SeqChunk {
  KVCache* cache = nullptr;
  const int32_t* ids = nullptr;
  int64_t n = 0;
  int64_t n_past = 0;
  Logits which = Logits::None;
  Tensor logits{};  // out: [1, vocab] for Last, [n, vocab] for All, undefined for None
};

class LlamaModel {
 public:
  // Binds and shape-checks every tensor the chosen path uses; tensors it does not use (the
  // teacher q/k/v of layers >= M on the SwiftKV path, the SwiftKV tensors on the teacher
  // path) are dropped, so they are never read, faulted in or copied to a device.
  explicit LlamaModel(ModelFiles files, ModelOptions opts = {});
  static std::unique_ptr<LlamaModel> load(const std::string& path, ModelOptions opts = {});

  const ModelConfig& config() const { return files_.config; }
  const ModelFiles& files() const { return files_; }
  const ModelWeights& weights() const { return w_; }
  const KVLayout& kv_layout() const { return layout_; }
  bool swiftkv_active() const { return layout_.active(); }

  KVCache make_cache(int64_t capacity) const;
  size_t kv_bytes_per_token() const;  // this path's F32 KV cache
  static size_t kv_bytes_per_token(const ModelConfig& c, const KVLayout& layout);

  // Runs tokens ids[0..n) of one sequence at positions n_past .. n_past + n - 1, writing
  // their K/V into `cache`. Returns logits [1, vocab] for Last, [n, vocab] for All.
  // On the SwiftKV path only the rows whose logits are returned run layers >= M (the others
  // only need those layers' K/V, which come from one projection of x_M), so Logits::All
  // is the SwiftKV model's exact full forward and Last / None skip the work nobody reads.
  Tensor forward(KVCache& cache, const int32_t* ids, int64_t n, int64_t n_past, Logits which);

  // forward() for several sequences at once, each chunk with the semantics above: the rows of
  // all chunks form one block for every weight (embedding, projections, norms, MLP, LM head),
  // so the weights are read once for all of them, while RoPE uses each row's own position and
  // attention runs per chunk against its own cache. Every chunk needs its own cache (two
  // chunks of one sequence would have to run one after the other). Sets each chunk's logits;
  // logits of different chunks may share one buffer.
  void forward_batch(std::vector<SeqChunk>& chunks);

  // Cumulative FLOPs executed by forward() / forward_batch() since construction.
  const FlopCount& flops() const { return flops_; }

  // Every tensor this path uses, by name (the stacked SwiftKV K/V matrix included).
  std::map<std::string, Tensor> tensors_in_use() const;
  int64_t parameter_count() const;  // of the tensors this path uses
  size_t weight_bytes() const;

 private:
  struct Scratch;
  // Rows [row0, row0 + n) of a forward's row block: one sequence, at positions n_past ...
  struct Span {
    KVCache* cache;
    int64_t row0, n, n_past;
  };
  void bind_swiftkv();
  void layer(int64_t l, Tensor& x, const std::vector<Span>& spans, const int32_t* pos, Scratch& s);
  void swiftkv_kv(const Tensor& x, const std::vector<Span>& spans, const int32_t* pos);
  Tensor head(const Tensor& rows);
  void count_linear(int64_t n, const Tensor& w);

  ModelFiles files_;
  ModelWeights w_;
  ops::Rope rope_;
  KVLayout layout_;
  std::map<std::string, Tensor> owned_;  // tensors made at load (the stacked SwiftKV K/V)
  FlopCount flops_;
};

}  // namespace skv
