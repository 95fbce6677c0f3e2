#pragma once
// The contract between the device-neutral op fronts (backend/ops.h) and one device's
// implementation. The fronts validate shapes, dtypes and devices, then call the backend of the
// tensors' device; a backend only computes. A new device adds src/backend/<name>/ with a
// DeviceMemory (core/device.h) and a Backend, registers both, and touches neither src/model nor
// src/engine. Every tensor handed to one call lives on that backend's device.
#include <cstdint>

#include "backend/ops.h"
#include "core/device.h"
#include "core/tensor.h"

namespace skv::backend {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) = 0;
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  virtual void add_inplace(Tensor& y, const Tensor& x) = 0;
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  virtual void rope(Tensor& x, int64_t heads, const Tensor& positions, const backend::Rope& rope) = 0;
  // window > 0: a key at position j is visible to a query at i when i - window < j <= i.
  virtual void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                         int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads, float scale,
                         Tensor& out, int64_t window, int64_t split_from) = 0;
  virtual void log_softmax_rows(Tensor& x) = 0;
  virtual void softmax_rows(Tensor& x) = 0;
  // dst[r, :] = src[r, col0 : col0 + dst.cols()] (F32).
  virtual void copy_cols(const Tensor& src, int64_t col0, Tensor& dst) = 0;
  // dst = src (F32) rounded to dst's dtype (backend::store_rows).
  virtual void store_rows(const Tensor& src, Tensor& dst) = 0;
};

// Makes `backend` the implementation for tensors on `device` (it must outlive their use). The
// CPU backend serves the host and is always registered.
void register_backend(Device device, Backend* backend);
// Throws skv::Error naming the device when no backend serves it.
Backend& backend_for(Device device);

}  // namespace skv::backend
