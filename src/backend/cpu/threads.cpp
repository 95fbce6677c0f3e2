#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <mutex>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/thread_pool.h"

namespace skv::backend::cpu {

namespace {

std::atomic<int> g_threads{0};
std::once_flag g_init;

void init() {
  // Our kernels call sgemm from inside their own parallel tasks, one panel per task; a
  // multi-threaded BLAS underneath would oversubscribe the cores (and its spinning pool
  // fights ours).
  openblas_set_num_threads(1);
  int expected = 0;
  // OpenMP's default honours OMP_NUM_THREADS, which users and scripts already set.
  g_threads.compare_exchange_strong(expected, omp_get_max_threads() > 0 ? omp_get_max_threads() : 1);
}

}  // namespace

void set_num_threads(int n) {
  std::call_once(g_init, init);
  if (n <= 0) n = omp_get_num_procs();
  if (n <= 0) n = 1;
  const int old = g_threads.exchange(n);
  omp_set_num_threads(n);  // src/train's parallel regions
  if (old != n) resize_pool();
}

int num_threads() {
  std::call_once(g_init, init);
  return g_threads.load(std::memory_order_relaxed);
}

int threads_for(double work, double min_work_per_thread) {
  const int nt = num_threads();
  if (nt <= 1 || in_parallel_task() || omp_in_parallel()) return 1;
  const double by_work = work / min_work_per_thread;
  if (by_work < 2.0) return 1;
  return by_work < nt ? static_cast<int>(by_work) : nt;
}

}  // namespace skv::backend::cpu
