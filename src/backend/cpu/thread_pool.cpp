#include "backend/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/cpu/threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace skv::backend::cpu {

namespace {

// How long a thread spins before it blocks. Decode makes a parallel call every ~80 us with a
// few us of serial work between them: a worker that stays awake across that gap saves a futex
// wake-up per call. When another process wants the core, a spinner takes time from the thread
// it waits for, so spins are kept short and everything longer blocks. On the 2-vCPU test VM,
// idle spins of 0-200 us and wait spins of 5-20 us gave the same decode speed, quiet and with a
// competing busy process, within that machine's noise (docs/benchmarks.md).
constexpr int64_t kIdleSpinNs = 50'000;
constexpr int64_t kWaitSpinNs = 20'000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Spins until pred() or ns nanoseconds have passed; the clock is read every few pauses.
template <class Pred>
bool spin_until(Pred pred, int64_t ns) {
  if (pred()) return true;
  if (ns <= 0) return false;
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      cpu_relax();
      if (pred()) return true;
    }
    if (std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count() > ns)
      return false;
  }
}

thread_local bool t_in_task = false;

struct TaskScope {
  bool saved = t_in_task;
  TaskScope() { t_in_task = true; }
  ~TaskScope() { t_in_task = saved; }
};

void run_inline(int64_t n, TaskFn fn, void* ctx) {
  TaskScope scope;
  for (int64_t t = 0; t < n; ++t) fn(ctx, t);
}

// The job word packs the call's epoch (high 32 bits) and the worker slots still open (low 32
// bits), so that joining is one compare-exchange that fails for a finished or later call.
constexpr uint64_t job_word(uint32_t epoch, uint32_t slots) { return static_cast<uint64_t>(epoch) << 32 | slots; }
constexpr uint32_t epoch_of(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
constexpr uint32_t slots_of(uint64_t w) { return static_cast<uint32_t>(w); }

class Pool {
 public:
  ~Pool() {
    acquire();
    stop_workers();
  }

  void run(int64_t n, int max_threads, TaskFn fn, void* ctx) {
    if (!try_acquire()) return run_inline(n, fn, ctx);
    const int want = num_threads() - 1;
    if (static_cast<int>(workers_.size()) != want) {
      stop_workers();
      start_workers(want);
    }
    const int64_t helpers = std::min<int64_t>({static_cast<int64_t>(max_threads) - 1, n - 1, want});
    if (helpers <= 0) {
      release();
      return run_inline(n, fn, ctx);
    }

    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    left_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    const uint32_t epoch = ++epoch_;
    job_.store(job_word(epoch, static_cast<uint32_t>(helpers)), std::memory_order_seq_cst);
    wake_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_.notify_all();

    {
      TaskScope scope;
      work();
    }

    // Close the call to latecomers; the slots taken say how many workers to wait for.
    const uint64_t last = job_.exchange(job_word(epoch, 0), std::memory_order_acq_rel);
    const uint32_t joined = static_cast<uint32_t>(helpers) - slots_of(last);
    if (!spin_until([&] { return left_.load(std::memory_order_acquire) == joined; }, kWaitSpinNs)) {
      caller_waiting_.store(true, std::memory_order_seq_cst);
      for (uint32_t l; (l = left_.load(std::memory_order_seq_cst)) != joined;) left_.wait(l, std::memory_order_seq_cst);
      caller_waiting_.store(false, std::memory_order_relaxed);
    }
    std::exception_ptr err = std::move(error_);
    error_ = nullptr;
    release();
    if (err) std::rethrow_exception(err);
  }

  // Stops the workers (they restart, sized to num_threads(), with the next call).
  void reset() {
    if (t_in_task) return;  // we may hold the pool ourselves; run() resizes lazily anyway
    acquire();
    stop_workers();
    release();
  }

 private:
  bool try_acquire() { return !busy_.exchange(true, std::memory_order_acquire); }
  void acquire() {
    while (!try_acquire()) std::this_thread::yield();
  }
  void release() { busy_.store(false, std::memory_order_release); }

  // Claims and runs tasks of the current call until none are left.
  void work() {
    for (;;) {
      const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_) return;
      try {
        fn_(ctx_, t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_, std::memory_order_relaxed);  // nobody claims more
      }
    }
  }

  void worker_main(uint32_t seen) {
    t_in_task = true;  // everything a worker runs is a task: nested calls run inline
    for (;;) {
      uint64_t w = job_.load(std::memory_order_acquire);
      if (epoch_of(w) == seen && !stop_.load(std::memory_order_relaxed)) w = wait_for_call(seen);
      if (stop_.load(std::memory_order_acquire)) return;
      // Join the newest call if it has a slot open (the compare-exchange reloads w on failure).
      while (slots_of(w) > 0 && !job_.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel)) {
      }
      seen = epoch_of(w);
      if (slots_of(w) == 0) continue;
      work();
      left_.fetch_add(1, std::memory_order_seq_cst);
      if (caller_waiting_.load(std::memory_order_seq_cst)) left_.notify_one();
    }
  }

  // Returns the job word of a call newer than `seen` (or any word once stopping).
  uint64_t wait_for_call(uint32_t seen) {
    auto fresh = [&] {
      return epoch_of(job_.load(std::memory_order_acquire)) != seen || stop_.load(std::memory_order_relaxed);
    };
    if (!spin_until(fresh, kIdleSpinNs)) {
      for (;;) {
        const uint32_t k = wake_.load(std::memory_order_seq_cst);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        // Checked after registering: a caller that missed this sleeper published its call
        // before our count was visible, so we see the call here.
        if (fresh()) {
          sleepers_.fetch_sub(1, std::memory_order_relaxed);
          break;
        }
        wake_.wait(k, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        if (fresh()) break;
      }
    }
    return job_.load(std::memory_order_acquire);
  }

  // Called with the pool acquired.
  void start_workers(int n) {
    stop_.store(false, std::memory_order_relaxed);
    const uint32_t seen = epoch_of(job_.load(std::memory_order_relaxed));
    workers_.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) workers_.emplace_back([this, seen] { worker_main(seen); });
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_seq_cst);
    wake_.fetch_add(1, std::memory_order_seq_cst);
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;  // changed only by the thread holding busy_
  uint32_t epoch_ = 0;
  std::atomic<bool> busy_{false};
  std::atomic<bool> stop_{false};
  // The current call, written before job_ publishes it.
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  std::exception_ptr error_;
  std::mutex error_mu_;
  // Each on its own cache line: every thread hits next_ per task, workers poll job_.
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<uint64_t> job_{0};
  alignas(64) std::atomic<uint32_t> wake_{0};  // futex word sleeping workers wait on
  std::atomic<int> sleepers_{0};
  alignas(64) std::atomic<uint32_t> left_{0};  // workers that joined the call and have left it
  std::atomic<bool> caller_waiting_{false};
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void run_tasks(int64_t n_tasks, int max_threads, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (max_threads <= 1 || n_tasks == 1 || t_in_task) return run_inline(n_tasks, fn, ctx);
  pool().run(n_tasks, max_threads, fn, ctx);
}

bool in_parallel_task() { return t_in_task; }

void resize_pool() { pool().reset(); }

}  // namespace skv::backend::cpu
