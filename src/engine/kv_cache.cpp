#include "engine/kv_cache.h"

#include <cstring>

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
    fail_resource("KV cache overflow: positions [", pos, ", ", pos + n, ") exceed capacity ", capacity);
  return Tensor::view(DType::F32, {n, row}, t.as<float>() + pos * row, t.owner);
}

Tensor KVCache::k_rows(int64_t layer, int64_t pos, int64_t n) { return rows_of(k.at(layer), pos, n, capacity, row); }
Tensor KVCache::v_rows(int64_t layer, int64_t pos, int64_t n) { return rows_of(v.at(layer), pos, n, capacity, row); }

size_t KVCache::bytes() const { return static_cast<size_t>(capacity) * row * sizeof(float) * 2 * k.size(); }

void KVCache::copy_prefix_from(const KVCache& src, int64_t p) {
  if (&src == this) return;
  if (src.num_layers() != num_layers() || src.row != row)
    fail_internal("KV cache copy: source has ", src.num_layers(), " layers of ", src.row, " floats, destination ",
                  num_layers(), " of ", row);
  if (p < 0 || p > src.capacity || p > capacity)
    fail_internal("KV cache copy: ", p, " positions do not fit capacities ", src.capacity, " -> ", capacity);
  const size_t bytes = static_cast<size_t>(p) * row * sizeof(float);
  for (int64_t l = 0; l < num_layers(); ++l) {
    std::memcpy(k[l].data, src.k[l].data, bytes);
    std::memcpy(v[l].data, src.v[l].data, bytes);
  }
}

KVCache KVCache::slice(int64_t pos, int64_t n) {
  if (n <= 0 || pos < 0 || pos + n > capacity)
    fail_internal("KV cache slice: positions [", pos, ", ", pos + n, ") are not inside capacity ", capacity);
  KVCache s;
  s.capacity = n;
  s.row = row;
  for (int64_t l = 0; l < num_layers(); ++l) {
    s.k.push_back(k_rows(l, pos, n));
    s.v.push_back(v_rows(l, pos, n));
  }
  return s;
}

}  // namespace skv
