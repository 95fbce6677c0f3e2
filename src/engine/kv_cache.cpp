#include "engine/kv_cache.h"

#include "core/error.h"

namespace skv {

KVCache::KVCache(int64_t num_layers, int64_t row_floats, int64_t cap) : capacity(cap), row(row_floats) {
  if (cap <= 0) fail("KV cache capacity must be positive, got ", cap);
  for (int64_t l = 0; l < num_layers; ++l) {
    k.push_back(Tensor::empty(DType::F32, {cap, row}));
    v.push_back(Tensor::empty(DType::F32, {cap, row}));
  }
}

static Tensor rows_of(Tensor& t, int64_t pos, int64_t n, int64_t capacity, int64_t row) {
  if (pos < 0 || pos + n > capacity)
    fail("KV cache overflow: positions [", pos, ", ", pos + n, ") exceed capacity ", capacity);
  return Tensor::view(DType::F32, {n, row}, t.as<float>() + pos * row, t.owner);
}

Tensor KVCache::k_rows(int64_t layer, int64_t pos, int64_t n) { return rows_of(k.at(layer), pos, n, capacity, row); }
Tensor KVCache::v_rows(int64_t layer, int64_t pos, int64_t n) { return rows_of(v.at(layer), pos, n, capacity, row); }

size_t KVCache::bytes() const { return static_cast<size_t>(capacity) * row * sizeof(float) * 2 * k.size(); }

}  // namespace skv
