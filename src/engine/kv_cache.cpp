#include "engine/kv_cache.h"

#include "backend/ops.h"
#include "core/error.h"
#include "model/llama.h"

namespace skv::engine {

KVCache::KVCache(const model::KVSpec& spec, int64_t cap) : capacity(cap), row(spec.row) {
  if (cap <= 0) fail("KV cache capacity must be positive, got ", cap);
  for (int64_t l = 0; l < spec.layers; ++l) {
    k.push_back(Tensor::empty(DType::F32, {cap, row}, spec.device));
    v.push_back(Tensor::empty(DType::F32, {cap, row}, spec.device));
  }
}

KVCache make_cache(const model::LlamaModel& model, int64_t capacity) { return KVCache(model.kv_spec(), capacity); }

static Tensor rows_of(const Tensor& t, int64_t pos, int64_t n, int64_t capacity) {
  if (pos < 0 || pos + n > capacity)
    fail_resource("KV cache overflow: positions [", pos, ", ", pos + n, ") exceed capacity ", capacity);
  return t.row_block(pos, n);
}

Tensor KVCache::k_rows(int64_t layer, int64_t pos, int64_t n) { return rows_of(k.at(layer), pos, n, capacity); }
Tensor KVCache::v_rows(int64_t layer, int64_t pos, int64_t n) { return rows_of(v.at(layer), pos, n, capacity); }

size_t KVCache::bytes() const { return static_cast<size_t>(capacity) * row * sizeof(float) * 2 * k.size(); }

void KVCache::copy_prefix_from(const KVCache& src, int64_t p) {
  if (&src == this) return;
  if (src.num_layers() != num_layers() || src.row != row)
    fail_internal("KV cache copy: source has ", src.num_layers(), " layers of ", src.row, " floats, destination ",
                  num_layers(), " of ", row);
  if (p < 0 || p > src.capacity || p > capacity)
    fail_internal("KV cache copy: ", p, " positions do not fit capacities ", src.capacity, " -> ", capacity);
  if (p == 0) return;
  for (int64_t l = 0; l < num_layers(); ++l) {
    Tensor kd = k[l].row_block(0, p), vd = v[l].row_block(0, p);
    backend::copy(src.k[l].row_block(0, p), kd);
    backend::copy(src.v[l].row_block(0, p), vd);
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

}  // namespace skv::engine
