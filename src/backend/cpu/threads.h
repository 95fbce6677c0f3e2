#pragma once
// Thread settings of the CPU backend: OpenMP for our kernels, the GEMM library kept single-
// threaded beneath them. Every parallel region uses num_threads() explicitly (not the caller's
// OpenMP ICV), and runs serially when already inside a parallel region (no nested parallelism).
namespace skv::backend::cpu {

void set_num_threads(int n);  // <= 0: all cores
int num_threads();
int threads_for(double work, double min_work_per_thread);  // 1 if inside a parallel region

}  // namespace skv::backend::cpu
