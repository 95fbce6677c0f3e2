#pragma once
// A tensor shape with its dimensions stored inline. Views of activations and caches are made
// on every forward step; with a heap-backed shape each of them would allocate, and a decode
// step must not touch the heap once warmed up (a serving engine runs millions of them).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace skv {

class Shape {
 public:
  static constexpr size_t kMaxDims = 8;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  // Throws skv::Error for more than kMaxDims dimensions (a file may claim any number).
  Shape(const std::vector<int64_t>& dims);  // NOLINT(google-explicit-constructor): shapes read from files

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t at(size_t i) const;  // throws std::out_of_range, like std::vector::at
  int64_t front() const { return d_[0]; }
  int64_t back() const { return d_[n_ - 1]; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  void push_back(int64_t d);
  std::vector<int64_t> vec() const { return {begin(), end()}; }

  friend bool operator==(const Shape& a, const Shape& b);
  friend bool operator==(const Shape& a, const std::vector<int64_t>& b) { return a == Shape(b); }

 private:
  int64_t d_[kMaxDims] = {};
  size_t n_ = 0;
};

}  // namespace skv
