#pragma once
// The Llama-family decoder (Llama 1/2/3.x, Qwen2 q/k/v bias, Qwen3 q/k norms, Mistral sliding
// window, and the SwiftKV variant of each): weights bound by model/weights.h, and a forward pass
// built only from the device-agnostic ops. The model is const after load; everything a forward
// pass mutates lives in a ForwardContext, so one loaded model serves many threads or requests.
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"
#include "io/model_files.h"
#include "model/kv_layout.h"
#include "model/swiftkv.h"
#include "model/weights.h"

namespace skv::model {

struct ModelOptions {
  bool swiftkv = true;    // false: run a SwiftKV checkpoint's teacher path (--no-swiftkv)
  Device device = kHost;  // where weights, caches and activations live
};

// Executed floating-point operations (2 per multiply-add), by kind.
struct FlopCount {
  double linear = 0, attention = 0;
  double total() const { return linear + attention; }
};

// Rows a context has sent through the model, by how far they went.
struct RowCount {
  int64_t early = 0;  // through layers 0 .. M - 1 (every row; M = L without SwiftKV)
  int64_t late = 0;   // through layers M .. L - 1 (SwiftKV: only rows whose logits are read)
  int64_t head = 0;   // through the final norm and LM head
};

enum class Logits { None, Last, All };

// One sequence's part of a batched forward: tokens ids[0..n) (host memory) at positions
// n_past .. n_past + n - 1 of the sequence whose K/V `kv` holds.
struct SeqChunk {
  SeqKV kv;
  const int32_t* ids = nullptr;
  int64_t n = 0;
  int64_t n_past = 0;
  Logits which = Logits::None;
  int64_t logits_from = 0;  // All: logits for rows logits_from .. n - 1 only
  // Rows at positions >= split_from may split their keys over threads (backend::attention);
  // the engine passes the prompt length, so generated tokens' rows use every thread.
  int64_t split_from = std::numeric_limits<int64_t>::max();
  Tensor logits{};          // out: [1, vocab] for Last, [n - logits_from, vocab] for All, undefined for None
};

class LlamaModel;

// The mutable side of forward passes: activation buffers (grown to the largest batch seen and
// then reused, so a decode step allocates nothing once warm), staging for ids and positions,
// the logits, and FLOP counters. One context serves one thread at a time; logits a forward
// returns live in its context until that context's next forward (backend::clone to keep them).
class ForwardContext {
 public:
  explicit ForwardContext(const LlamaModel& model);
  const FlopCount& flops() const { return flops_; }
  const RowCount& rows() const { return rows_count_; }
  struct Span {  // rows [row0, row0 + n) of the row block: one sequence, at positions n_past ...
    const SeqKV* kv;
    int64_t row0, n, n_past;
    Tensor table;  // the blocks holding positions 0 .. n_past + n - 1, I32 on the model's device
    int64_t split_from;
  };

 private:
  friend class LlamaModel;
  // An [rows, cols] view of `buf`, reallocated on the model's device only when too small.
  Tensor take(Tensor& buf, int64_t rows, int64_t cols, DType dtype = DType::F32);
  // Host ids / positions as an I32 [n, 1] tensor on the model's device: the staging vector
  // itself on the host, else copied into `dev`.
  Tensor stage_i32(const std::vector<int32_t>& host, Tensor& dev);

  Device device_;
  FlopCount flops_;
  RowCount rows_count_;
  Tensor x_, xn_, q_, attn_, proj_, gate_, up_, k_, v_, h_, kv_, rows_, logits_;
  Tensor ids_dev_, pos_dev_, out_pos_dev_, tables_dev_;  // device copies of the staging below (non-host devices)
  std::vector<int32_t> ids_, pos_, out_pos_, tables_;
  std::vector<std::pair<const Tensor*, int32_t>> written_;  // (pool, block) a step writes: one writer each
  std::vector<Span> spans_, out_spans_;
  std::vector<size_t> out_chunk_;
  std::vector<SeqChunk> one_;
};

class LlamaModel {
 public:
  // Binds and shape-checks every tensor the chosen path uses; tensors it does not use (the
  // teacher q/k/v of layers >= M on the SwiftKV path, the SwiftKV tensors on the teacher
  // path) are dropped, so they are never read, faulted in or copied to a device.
  explicit LlamaModel(io::ModelFiles files, ModelOptions opts = {});
  static std::unique_ptr<LlamaModel> load(const std::string& path, ModelOptions opts = {});

  const io::ModelConfig& config() const { return files_.config; }
  const io::ModelFiles& files() const { return files_; }
  const ModelWeights& weights() const { return w_; }
  const KVLayout& kv_layout() const { return layout_; }
  bool swiftkv_active() const { return layout_.active(); }

  Device device() const { return opts_.device; }
  KVSpec kv_spec() const;             // the cache this path needs per position
  size_t kv_bytes_per_token() const;  // this path's F32 KV cache
  static size_t kv_bytes_per_token(const io::ModelConfig& c, const KVLayout& layout);

  // Runs tokens ids[0..n) of one sequence at positions n_past .. n_past + n - 1, writing
  // their K/V into `kv`. Returns logits [1, vocab] for Last, [n, vocab] for All (in ctx).
  // On the SwiftKV path only the rows whose logits are returned run layers >= M (the others
  // only need those layers' K/V, which come from one projection of x_M), so Logits::All
  // is the SwiftKV model's exact full forward and Last / None skip the work nobody reads.
  Tensor forward(ForwardContext& ctx, const SeqKV& kv, const int32_t* ids, int64_t n, int64_t n_past,
                 Logits which) const;

  // forward() for several sequences at once, each chunk with the semantics above: the rows of
  // all chunks form one block for every weight (embedding, projections, norms, MLP, LM head),
  // so the weights are read once for all of them, while RoPE uses each row's own position and
  // attention runs per chunk against its own cache. Every chunk needs its own cache (two
  // chunks of one sequence would have to run one after the other). Sets each chunk's logits,
  // views of one buffer in ctx.
  void forward_batch(ForwardContext& ctx, std::vector<SeqChunk>& chunks) const;

  // Every tensor this path uses, by name (the stacked SwiftKV K/V matrix included).
  std::map<std::string, Tensor> tensors_in_use() const;
  int64_t parameter_count() const;  // of the tensors this path uses
  size_t weight_bytes() const;

 private:
  using Span = ForwardContext::Span;
  void bind_swiftkv();
  void upload_weights();
  void layer(ForwardContext& ctx, int64_t l, Tensor& x, const std::vector<Span>& spans, const Tensor& pos) const;
  void swiftkv_kv(ForwardContext& ctx, const Tensor& x, const std::vector<Span>& spans, const Tensor& pos) const;
  Tensor head(ForwardContext& ctx, const Tensor& rows) const;

  io::ModelFiles files_;
  ModelOptions opts_;
  ModelWeights w_;
  backend::Rope rope_;
  KVLayout layout_;
  std::map<std::string, Tensor> owned_;  // tensors made at load (the stacked SwiftKV K/V)
};

}  // namespace skv::model
