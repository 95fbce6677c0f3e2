// The CPU backend's worker pool: every task exactly once for any size and thread count,
// dynamic claiming (a stalled thread's share is taken over), nested and concurrent calls,
// exceptions, resizing.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "backend/cpu/threads.h"

using namespace skv::backend::cpu;

namespace {

struct ThreadCount {
  int saved = num_threads();
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved); }
};

// Runs [0, n) and checks that each index ran exactly once.
void expect_each_once(int64_t n, int max_threads) {
  std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[static_cast<size_t>(n > 0 ? n : 1)]());
  parallel_for(n, max_threads, [&](int64_t t) { hits[t].fetch_add(1, std::memory_order_relaxed); });
  int64_t bad = 0;
  for (int64_t t = 0; t < n; ++t) bad += hits[t].load() != 1;
  EXPECT_EQ(bad, 0) << "n=" << n << " max_threads=" << max_threads << " threads=" << num_threads();
}

}  // namespace

TEST(ThreadPool, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 8}) {
    ThreadCount tc(threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000, 100003})
      for (int max_threads : {1, 2, threads, 100}) expect_each_once(n, max_threads);
  }
}

TEST(ThreadPool, ManyCallsInARow) {
  // Decode makes hundreds of calls per token, workers alternately spinning and asleep.
  ThreadCount tc(4);
  for (int rep = 0; rep < 3000; ++rep) expect_each_once(1 + rep % 37, 4);
  for (int rep = 0; rep < 20; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // let the workers fall asleep
    expect_each_once(64, 4);
  }
}

TEST(ThreadPool, RangesCoverExactly) {
  ThreadCount tc(3);
  for (int64_t n : {1, 5, 16, 17, 1000})
    for (int64_t grain : {1, 3, 16, 5000}) {
      std::vector<int> hits(static_cast<size_t>(n), 0);
      std::atomic<int64_t> ranges{0};
      parallel_for_ranges(n, grain, 3, [&](int64_t b, int64_t e) {
        ASSERT_LT(b, e);
        ASSERT_LE(e - b, grain);
        for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];  // ranges are disjoint
        ranges.fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)], 1);
      EXPECT_EQ(ranges.load(), (n + grain - 1) / grain);
    }
  EXPECT_EQ(grain_for(100, 2), 7);  // 16 tasks of <= 7
  EXPECT_EQ(grain_for(3, 8), 1);
}

TEST(ThreadPool, UsesTheWorkers) {
  // Each of `threads` tasks waits until all have started: only true parallelism gets there.
  for (int threads : {2, 3, 4}) {
    ThreadCount tc(threads);
    std::atomic<int> arrived{0};
    std::atomic<bool> all{true};
    std::vector<std::thread::id> ids(static_cast<size_t>(threads));
    parallel_for(threads, threads, [&](int64_t t) {
      ids[static_cast<size_t>(t)] = std::this_thread::get_id();
      arrived.fetch_add(1);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (arrived.load() < threads)
        if (std::chrono::steady_clock::now() > deadline) {
          all = false;
          break;
        }
    });
    EXPECT_TRUE(all.load()) << threads << " threads";
    EXPECT_EQ(std::set<std::thread::id>(ids.begin(), ids.end()).size(), static_cast<size_t>(threads));
  }
}

TEST(ThreadPool, MaxThreadsIsRespected) {
  ThreadCount tc(4);
  std::vector<std::thread::id> ids(2000);
  parallel_for(2000, 2, [&](int64_t t) {
    ids[static_cast<size_t>(t)] = std::this_thread::get_id();
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  });
  EXPECT_LE(std::set<std::thread::id>(ids.begin(), ids.end()).size(), 2u);
}

TEST(ThreadPool, StalledThreadsShareIsTakenOver) {
  // The first task claimed sleeps as if the OS had descheduled its thread; the other thread
  // claims the rest instead of waiting for a static share.
  ThreadCount tc(2);
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread::id> ids(100);
    parallel_for(100, 2, [&](int64_t t) {
      ids[static_cast<size_t>(t)] = std::this_thread::get_id();
      if (t == 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    });
    int sleeper_tasks = 0;
    for (const auto& id : ids) sleeper_tasks += id == ids[0];
    EXPECT_LT(sleeper_tasks, 50);
  }
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadCount tc(4);
  EXPECT_FALSE(in_parallel_task());
  EXPECT_GT(threads_for(1e9, 1.0), 1);
  std::atomic<int64_t> bad{0}, total{0};
  parallel_for(16, 4, [&](int64_t) {
    if (!in_parallel_task() || threads_for(1e9, 1.0) != 1) bad.fetch_add(1);
    const std::thread::id self = std::this_thread::get_id();
    parallel_for(50, 4, [&](int64_t) {
      if (std::this_thread::get_id() != self) bad.fetch_add(1);
      total.fetch_add(1);
    });
  });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(total.load(), 16 * 50);
  EXPECT_FALSE(in_parallel_task());
}

TEST(ThreadPool, ConcurrentCallers) {
  // Four threads (as four model forwards would) share one pool: a caller that finds it busy
  // runs its tasks itself; every result must be right either way.
  ThreadCount tc(3);
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      std::vector<int64_t> out(977);
      for (int rep = 0; rep < 300; ++rep) {
        const int64_t n = 1 + (rep * 7 + c * 13) % 977;
        parallel_for(n, 3, [&](int64_t t) { out[static_cast<size_t>(t)] = t * (c + 1) + rep; });
        for (int64_t t = 0; t < n; ++t)
          if (out[static_cast<size_t>(t)] != t * (c + 1) + rep) wrong.fetch_add(1);
      }
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadCount tc(3);
  for (int64_t bad_task : {int64_t{0}, int64_t{5}, int64_t{999}}) {
    std::atomic<int64_t> ran{0};
    EXPECT_THROW(parallel_for(1000, 3,
                              [&](int64_t t) {
                                ran.fetch_add(1);
                                if (t == bad_task) throw std::runtime_error("task failed");
                              }),
                 std::runtime_error);
    EXPECT_LE(ran.load(), 1000);
    EXPECT_FALSE(in_parallel_task());
  }
  // Thrown on every thread at once: one of them arrives, the pool stays usable.
  EXPECT_THROW(parallel_for(64, 3, [](int64_t) { throw std::logic_error("all fail"); }), std::logic_error);
  expect_each_once(10000, 3);
  // The inline path propagates as well.
  EXPECT_THROW(parallel_for(4, 1, [](int64_t) { throw std::runtime_error("inline"); }), std::runtime_error);
}

TEST(ThreadPool, Resizing) {
  const int saved = num_threads();
  for (int threads : {1, 4, 2, 6, 1, 3}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    std::vector<std::thread::id> ids(3000);
    parallel_for(3000, 100, [&](int64_t t) {
      ids[static_cast<size_t>(t)] = std::this_thread::get_id();
      std::this_thread::sleep_for(std::chrono::microseconds(10));
    });
    EXPECT_LE(std::set<std::thread::id>(ids.begin(), ids.end()).size(), static_cast<size_t>(threads));
    expect_each_once(5000, threads);
  }
  set_num_threads(saved);
}
