#pragma once
// Thread settings of the CPU backend. The inference kernels run on the worker pool of
// thread_pool.h; src/train still uses OpenMP, so set_num_threads configures both. The GEMM
// library is kept single-threaded beneath our tasks. Every parallel call uses num_threads()
// (or fewer, by threads_for), and runs serially when already inside a pool task or an OpenMP
// parallel region (no nested parallelism).
namespace skv::backend::cpu {

void set_num_threads(int n);  // <= 0: all cores
int num_threads();
// Threads worth using for `work` units at min_work_per_thread each; 1 if inside a pool task or
// an OpenMP parallel region.
int threads_for(double work, double min_work_per_thread);

}  // namespace skv::backend::cpu
