#pragma once
// The CPU kernels' worker pool: num_threads() - 1 persistent workers plus the calling thread.
//
// Why not OpenMP: a decoded token runs a few hundred parallel regions, each a fork/join whose
// barrier spins, and every region splits its work statically. When another process shares a
// core, one descheduled thread holds everyone else at the barrier (and the spinners take the
// core it needs), so decode slowed about 30x. Here tasks are claimed dynamically from an atomic
// counter, so whoever runs (the caller included) takes over the share of a thread the OS has
// parked, and every wait spins only a few microseconds before blocking in a futex, which hands
// the core to the thread being waited for.
//
// Rules:
// - Each task index in [0, n_tasks) runs exactly once, on some thread. Kernels must make a
//   task's result independent of which thread runs it and of the thread count, so results are
//   the same bits for any schedule.
// - Nested calls (from inside a task) run their tasks inline, serially.
// - The pool serves one call at a time: a caller that finds it busy (another thread's call in
//   flight) runs its tasks inline, serially, rather than wait; with the cores already taken by
//   that call, waiting would gain nothing and risk convoys.
// - An exception thrown by a task stops further tasks from being claimed (tasks already running
//   finish) and the first one is rethrown to the caller once every thread has left the call.
#include <cstdint>
#include <memory>
#include <type_traits>

namespace skv::backend::cpu {

using TaskFn = void (*)(void* ctx, int64_t task);

// fn(ctx, t) for every t in [0, n_tasks), on at most max_threads threads (the caller included).
void run_tasks(int64_t n_tasks, int max_threads, TaskFn fn, void* ctx);

// True while this thread runs a task of run_tasks (on a worker, or the caller inside its call).
bool in_parallel_task();

// Stops the workers so that the next call starts num_threads() - 1 of them (set_num_threads).
void resize_pool();

// fn(t) for every t in [0, n_tasks). No allocation: fn is passed by address.
template <class F>
void parallel_for(int64_t n_tasks, int max_threads, F&& fn) {
  using Fn = std::remove_reference_t<F>;
  run_tasks(
      n_tasks, max_threads, [](void* ctx, int64_t t) { (*static_cast<Fn*>(ctx))(t); },
      const_cast<void*>(static_cast<const void*>(std::addressof(fn))));
}

// fn(begin, end) over [0, n) cut into ranges of `grain` (the last may be shorter).
template <class F>
void parallel_for_ranges(int64_t n, int64_t grain, int max_threads, F&& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  parallel_for((n + grain - 1) / grain, max_threads, [&](int64_t t) {
    const int64_t b = t * grain;
    fn(b, n - b < grain ? n : b + grain);
  });
}

// A grain that cuts n items into about tasks_per_thread tasks per thread, so that dynamic
// claiming can even out a thread that runs late.
inline int64_t grain_for(int64_t n, int threads, int64_t tasks_per_thread = 8) {
  const int64_t tasks = static_cast<int64_t>(threads > 1 ? threads : 1) * tasks_per_thread;
  const int64_t g = (n + tasks - 1) / tasks;
  return g > 0 ? g : 1;
}

}  // namespace skv::backend::cpu
