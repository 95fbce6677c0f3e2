#pragma once
// Shared by the kernel tests: every ISA this CPU can run, and a guard that restores the
// dispatch choice a test changed. Tables the CPU cannot run are left out here; the tests of
// test_kernels_avx512.cpp say so with GTEST_SKIP.
#include <vector>

#include "backend/cpu/kernels.h"

namespace skv::backend::cpu {

inline std::vector<Isa> isas() {
  std::vector<Isa> v{Isa::Generic};
  if (isa_supported(Isa::AVX2)) v.push_back(Isa::AVX2);
  if (isa_supported(Isa::AVX512)) v.push_back(Isa::AVX512);
  return v;
}

struct IsaRestore {
  Isa saved = active_isa();
  ~IsaRestore() { set_isa(saved); }
};

}  // namespace skv::backend::cpu
