#pragma once
// A tensor is a typed, shaped view of memory on one device that may or may not own it. Weights
// loaded from safetensors / GGUF are views into a memory-mapped file (owner keeps the mapping
// alive); activations and caches own 64-byte aligned buffers from their device's allocator
// (core/device.h). Shapes are PyTorch order: the last dimension is contiguous, so a Linear
// weight is [out_features, in_features]. Host code reads `data` only for host tensors; device
// tensors are handed to backend primitives (backend/ops.h).
#include <cstdint>
#include <memory>
#include <string>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace skv {

struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  void* data = nullptr;
  Device device = kHost;
  std::shared_ptr<void> owner;  // keeps the backing memory alive (buffer or mapping)

  static Tensor empty(DType dtype, Shape shape, Device device = kHost);
  static Tensor zeros(DType dtype, Shape shape, Device device = kHost);
  // A host view of memory someone else owns (a mapping, a buffer).
  static Tensor view(DType dtype, Shape shape, const void* data, std::shared_ptr<void> owner = nullptr);

  bool defined() const { return data != nullptr; }
  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  // Every dimension but the last: a tensor with a zero-length dimension (safetensors allows
  // them) has rows() * cols() == 0 without dividing by zero.
  int64_t rows() const {
    int64_t n = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const;
  size_t row_bytes() const { return dtype_row_bytes(dtype, cols()); }
  std::string shape_str() const;

  // Rows [r0, r0 + n) of a 2-D (or flattened) tensor as an [n, cols] tensor sharing this one's
  // memory and device. Pointer arithmetic only: valid for device memory too.
  Tensor row_block(int64_t r0, int64_t n) const;
  // The same memory under another shape with the same number of elements.
  Tensor reshaped(Shape s) const;

  template <class T>
  T* as() {
    return static_cast<T*>(data);
  }
  template <class T>
  const T* as() const {
    return static_cast<const T*>(data);
  }
  // Row r of a 2-D (or flattened) tensor, in bytes of its own dtype.
  const uint8_t* row_ptr(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes(); }
};

}  // namespace skv
