#pragma once
// Row-major C[m, n] = alpha op(A) op(B) + beta C on OpenBLAS, overloaded on the scalar so that
// the templated training ops run the same code in float and double. Single-threaded (the
// project keeps OpenBLAS so): callers split the work across OpenMP threads themselves.
#include <cblas.h>

#include <cstdint>

namespace skv::train::detail {

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

// Splits [0, total) into `parts` near-equal ranges whose boundaries are multiples of `align`.
inline void split_range(int64_t total, int64_t parts, int64_t part, int64_t align, int64_t& b, int64_t& e) {
  const int64_t units = (total + align - 1) / align;
  const int64_t base = units / parts, extra = units % parts;
  const int64_t u0 = part * base + (part < extra ? part : extra);
  const int64_t u1 = u0 + base + (part < extra ? 1 : 0);
  b = total < u0 * align ? total : u0 * align;
  e = total < u1 * align ? total : u1 * align;
}

}  // namespace skv::train::detail
