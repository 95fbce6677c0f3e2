#pragma once
// Contiguous per-sequence KV cache: one [capacity, kv_heads * head_dim] F32 buffer per layer
// for keys and one for values. New K/V rows are written by the projection GEMM directly into
// the cache (no copy).
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "io/config.h"

namespace skv {

struct KVCache {
  int64_t capacity = 0;  // positions
  int64_t row = 0;       // floats per position per layer
  std::vector<Tensor> k, v;

  KVCache(const ModelConfig& cfg, int64_t capacity);
  // [n, row] view of layer l's keys / values at positions [pos, pos + n).
  Tensor k_rows(int64_t layer, int64_t pos, int64_t n);
  Tensor v_rows(int64_t layer, int64_t pos, int64_t n);
  size_t bytes() const;
  static size_t bytes_per_token(const ModelConfig& cfg);
};

}  // namespace skv
