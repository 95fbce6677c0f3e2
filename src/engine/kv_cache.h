#pragma once
// Contiguous per-sequence KV cache: one [capacity, kv_heads * head_dim] F32 buffer per cache
// layer for keys and one for values, on the model's device. New K/V rows are written by the
// projection GEMM directly into the cache (no copy). How many cache layers a model needs
// depends on its path (LlamaModel::kv_spec): L for a plain model, M + (L - M) / G for SwiftKV.
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/kv_layout.h"

namespace skv::model {
class LlamaModel;
}
namespace skv::engine {

struct KVCache {
  int64_t capacity = 0;  // positions
  int64_t row = 0;       // floats per position per layer
  std::vector<Tensor> k, v;

  KVCache(const model::KVSpec& spec, int64_t capacity);
  int64_t num_layers() const { return static_cast<int64_t>(k.size()); }
  // [n, row] view of cache layer l's keys / values at positions [pos, pos + n).
  Tensor k_rows(int64_t layer, int64_t pos, int64_t n);
  Tensor v_rows(int64_t layer, int64_t pos, int64_t n);
  size_t bytes() const;
  // The view a forward pass reads and writes (valid while this cache lives, unmoved).
  model::SeqKV view() const { return {k.data(), v.data(), num_layers(), capacity, &kBlock0, 1}; }
  operator model::SeqKV() const { return view(); }  // NOLINT(google-explicit-constructor)

  // Copies positions [0, p) of every layer from `src` (same layer count and row width), so a
  // sequence can start from another's computed prefix instead of recomputing it.
  void copy_prefix_from(const KVCache& src, int64_t p);
  // A cache of n positions that is a window onto positions [pos, pos + n) of this one (it
  // shares, and keeps alive, this cache's memory): many short sequences packed into one
  // allocation that is reused.
  KVCache slice(int64_t pos, int64_t n);

 private:
  static constexpr int32_t kBlock0 = 0;  // the whole cache is block 0 of its own pool
  KVCache() = default;
};

// A cache of `capacity` positions for the path `model` runs.
KVCache make_cache(const model::LlamaModel& model, int64_t capacity);

}  // namespace skv::engine
