#pragma once
// What a model says about its KV cache, and the view of one sequence's cache that a forward
// pass reads and writes. Storage, sizing and reuse policy belong to the engine (engine/).
#include <cstdint>

#include "core/device.h"
#include "core/tensor.h"
#include "io/config.h"

namespace skv::model {

// The K/V wiring of one path through a model. The teacher path (a plain model, or a SwiftKV
// checkpoint run with --no-swiftkv) has first_skip == num_layers: every layer owns its K/V.
struct KVLayout {
  int64_t num_layers = 0;
  int64_t first_skip = 0;  // M: layers >= M take K/V from norm_swiftkv(x_M)
  int64_t group = 1;       // G: AcrossKV group size

  static KVLayout teacher(const io::ModelConfig& c) { return {c.num_layers, c.num_layers, 1}; }
  static KVLayout swiftkv(const io::ModelConfig& c) {
    return {c.num_layers, c.num_key_value_layers, c.key_value_group_size};
  }

  bool active() const { return first_skip < num_layers; }
  int64_t cache_layers() const { return first_skip + (num_layers - first_skip) / group; }
  int64_t cache_index(int64_t layer) const {
    return layer < first_skip ? layer : first_skip + (layer - first_skip) / group;
  }
  bool is_leader(int64_t layer) const { return layer >= first_skip && (layer - first_skip) % group == 0; }
};

// The cache a model's path needs per position: `layers` cache layers of `row` F32 keys and as
// many values, on `device`.
struct KVSpec {
  int64_t layers = 0;
  int64_t row = 0;  // num_kv_heads * head_dim
  Device device = kHost;
  size_t bytes_per_token() const { return static_cast<size_t>(layers) * row * sizeof(float) * 2; }
};

// One sequence's cache as lent to a forward pass, paged: per cache layer a pool of
// [slots, row] keys and one of values shared by every sequence, and this sequence's block
// table: its position p lives in pool row blocks[p / block_size] * block_size + p % block_size.
// A contiguous cache is one block as large as the cache. Non-owning: the engine's storage (and
// the table) outlive the call.
struct SeqKV {
  const Tensor* k = nullptr;
  const Tensor* v = nullptr;
  int64_t layers = 0;
  int64_t block_size = 0;
  const int32_t* blocks = nullptr;  // host memory
  int64_t num_blocks = 0;

  int64_t capacity() const { return block_size * num_blocks; }
  // Pool row of position p (p < capacity()).
  int64_t slot(int64_t p) const { return static_cast<int64_t>(blocks[p / block_size]) * block_size + p % block_size; }
};

}  // namespace skv::model
