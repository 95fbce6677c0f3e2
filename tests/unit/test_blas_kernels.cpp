// The OpenBLAS kernel correction of backend/cpu/blas_kernels.h: only OpenBLAS's Prescott
// fallback is overridden, and only with kernels this CPU can run.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/cpu/blas_kernels.h"

namespace {

using skv::backend::cpu::better_blas_coretype;

TEST(BlasKernels, KeepsOpenBlasChoiceWhenItKnowsTheCpu) {
  EXPECT_EQ(better_blas_coretype(nullptr), nullptr);
  for (const char* name : {"Haswell", "SkylakeX", "Cooperlake", "Zen", "Sandybridge", "prescott", ""})
    EXPECT_EQ(better_blas_coretype(name), nullptr) << name;
}

TEST(BlasKernels, ReplacesPrescottByWhatTheCpuRuns) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* got = better_blas_coretype("Prescott");
  if (avx512) {
    ASSERT_NE(got, nullptr);
    EXPECT_STREQ(got, "SkylakeX");
  } else if (avx2) {
    ASSERT_NE(got, nullptr);
    EXPECT_STREQ(got, "Haswell");
  } else {
    EXPECT_EQ(got, nullptr);
  }
}

}  // namespace
