#pragma once
// Which kernels OpenBLAS runs. Its DYNAMIC_ARCH build picks them when the library loads, from a
// table of CPU models frozen at its release; Debian's 0.3.21 does not know newer models (family
// 6, model 207 here) and falls back to its Prescott (SSE3) kernels, which made distillation 3x
// and F32/BF16 prefill GEMMs 4-5x slower on an AVX-512 machine (docs/benchmarks.md). OpenBLAS
// reads OPENBLAS_CORETYPE only at load, before main, so the one way to correct the choice from
// inside the program is to set that variable and exec the program again.
namespace skv::backend::cpu {

// The OPENBLAS_CORETYPE to ask for: "SkylakeX" or "Haswell" when OpenBLAS fell back to Prescott
// on a CPU with AVX-512 (F/BW/DQ/VL) or AVX2 + FMA; nullptr when its own choice stands (it
// recognised the CPU, or the CPU has neither).
const char* better_blas_coretype(const char* loaded_corename);

// Called first in main: when OPENBLAS_CORETYPE is unset and better_blas_coretype() names a
// kernel set, sets the variable and re-executes /proc/self/exe with the same arguments. Returns
// (doing nothing) when the user set the variable, OpenBLAS's choice stands, or the exec fails.
void select_blas_kernels(char** argv);

}  // namespace skv::backend::cpu
