#include "core/shape.h"

#include <algorithm>
#include <stdexcept>

#include "core/error.h"

namespace skv {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

Shape::Shape(const std::vector<int64_t>& dims) {
  if (dims.size() > kMaxDims) fail("a tensor of ", dims.size(), " dimensions (at most ", kMaxDims, " are supported)");
  for (int64_t d : dims) push_back(d);
}

int64_t Shape::at(size_t i) const {
  if (i >= n_) throw std::out_of_range("Shape::at");
  return d_[i];
}

void Shape::push_back(int64_t d) {
  if (n_ == kMaxDims) fail("a tensor of more than ", kMaxDims, " dimensions");
  d_[n_++] = d;
}

bool operator==(const Shape& a, const Shape& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

}  // namespace skv
