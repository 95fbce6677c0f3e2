#include "core/tensor.h"

#include <sstream>

#include "core/error.h"

namespace skv {

Tensor Tensor::empty(DType dtype, Shape shape, Device device) {
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.device = device;
  DeviceMemory& mem = device_memory(device);
  void* p = mem.allocate(t.nbytes());
  t.data = p;
  t.owner = std::shared_ptr<void>(p, [&mem](void* q) { mem.deallocate(q); });
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape, Device device) {
  Tensor t = empty(dtype, shape, device);
  device_memory(device).zero(t.data, t.nbytes());
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.data = const_cast<void*>(data);
  t.owner = std::move(owner);
  return t;
}

Tensor Tensor::row_block(int64_t r0, int64_t n) const {
  if (r0 < 0 || n < 0 || r0 + n > rows())
    fail_internal("row_block: rows [", r0, ", ", r0 + n, ") of a tensor of shape ", shape_str());
  Tensor t = *this;
  t.shape = {n, cols()};
  t.data = static_cast<uint8_t*>(data) + r0 * row_bytes();
  return t;
}

Tensor Tensor::reshaped(Shape s) const {
  Tensor t = *this;
  t.shape = s;
  if (t.numel() != numel()) fail_internal("reshape of ", shape_str(), " to ", t.shape_str());
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t Tensor::nbytes() const {
  if (shape.empty()) return dtype_row_bytes(dtype, 1);
  return static_cast<size_t>(rows()) * dtype_row_bytes(dtype, cols());
}

std::string Tensor::shape_str() const {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

}  // namespace skv
