#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <mutex>

#include "backend/cpu/cpu_ops.h"

namespace skv::backend::cpu {

namespace {

std::atomic<int> g_threads{0};
std::once_flag g_init;

void init() {
  // Our kernels call sgemm from inside their own OpenMP regions, one panel per thread; a
  // multi-threaded BLAS underneath would oversubscribe the cores (and its spinning pool
  // fights OpenMP's).
  openblas_set_num_threads(1);
  int expected = 0;
  g_threads.compare_exchange_strong(expected, omp_get_max_threads() > 0 ? omp_get_max_threads() : 1);
}

}  // namespace

void set_num_threads(int n) {
  std::call_once(g_init, init);
  if (n <= 0) n = omp_get_num_procs();
  if (n <= 0) n = 1;
  g_threads.store(n);
  omp_set_num_threads(n);
}

int num_threads() {
  std::call_once(g_init, init);
  return g_threads.load(std::memory_order_relaxed);
}

int threads_for(double work, double min_work_per_thread) {
  const int nt = num_threads();
  if (nt <= 1 || omp_in_parallel()) return 1;
  const double by_work = work / min_work_per_thread;
  if (by_work < 2.0) return 1;
  return by_work < nt ? static_cast<int>(by_work) : nt;
}

}  // namespace skv::backend::cpu
