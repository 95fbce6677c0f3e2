#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"

namespace skv {

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape, Device device) {
  if (device != Device::CPU) fail_internal("Tensor::empty: only CPU memory is allocated here");
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  size_t bytes = (t.nbytes() + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) fail_resource("out of memory allocating ", bytes, " bytes for a tensor of shape ", t.shape_str());
  t.data = p;
  t.owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return t;
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.data, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, const void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = const_cast<void*>(data);
  t.owner = std::move(owner);
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
