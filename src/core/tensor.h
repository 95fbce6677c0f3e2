#pragma once
// A tensor is a typed, shaped view of memory that may or may not own it. Weights loaded
// from safetensors / GGUF are views into a memory-mapped file (owner keeps the mapping
// alive); activations own 64-byte aligned buffers. Shapes are PyTorch order: the last
// dimension is contiguous, so a Linear weight is [out_features, in_features].
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace skv {

enum class Device : uint8_t { CPU, CUDA };

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  void* data = nullptr;
  Device device = Device::CPU;
  std::shared_ptr<void> owner;  // keeps the backing memory alive (buffer or mapping)

  static Tensor empty(DType dtype, std::vector<int64_t> shape, Device device = Device::CPU);
  static Tensor zeros(DType dtype, std::vector<int64_t> shape);
  static Tensor view(DType dtype, std::vector<int64_t> shape, const void* data, std::shared_ptr<void> owner = nullptr);

  bool defined() const { return data != nullptr; }
  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return shape.empty() ? 1 : numel() / cols(); }
  size_t nbytes() const;
  size_t row_bytes() const { return dtype_row_bytes(dtype, cols()); }
  std::string shape_str() const;

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
