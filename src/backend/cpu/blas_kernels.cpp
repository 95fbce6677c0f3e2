#include "backend/cpu/blas_kernels.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace skv::backend::cpu {

const char* better_blas_coretype(const char* loaded_corename) {
  if (loaded_corename == nullptr || std::strcmp(loaded_corename, "Prescott") != 0) return nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

void select_blas_kernels(char** argv) {
  // A value the user set (even OpenBLAS's own fallback) is theirs to keep; it also stops a
  // second exec if OpenBLAS were to ignore ours.
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* coretype = better_blas_coretype(openblas_get_corename());
  if (coretype == nullptr) return;
  if (setenv("OPENBLAS_CORETYPE", coretype, 0) != 0) return;
  execv("/proc/self/exe", argv);
  // The exec failed (no /proc, say): carry on with the kernels already loaded.
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace skv::backend::cpu
