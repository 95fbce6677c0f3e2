#pragma once
// One thread that owns an Engine (its scheduler, cache and model context) and runs its steps,
// while any number of other threads submit and abort requests: the server's engine loop
// (llama.cpp's server has one such loop; vLLM's engine core is one process). Submitting never
// waits for a step: requests are validated on the caller's thread (so a bad one is refused at
// once) and queued; the loop picks the queue up between steps.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"

namespace skv::engine {

// A snapshot of the loop for metrics and health checks.
struct LoopStats {
  int64_t running = 0, waiting = 0, queued = 0;
  int64_t kv_blocks = 0, kv_blocks_free = 0;
  EngineCounters counters;
};

class EngineLoop {
 public:
  // Called on the loop thread with each event of a request, the last one finished; it must not
  // block for long (the server hands events to its connection threads).
  using Sink = std::function<void(const Event&)>;

  explicit EngineLoop(Engine& engine);
  ~EngineLoop();  // aborts what is left and joins the thread
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Validates (throws InputError here, on the caller's thread) and queues the request.
  RequestId submit(Request r, Sink sink);
  // Ends a request at the next step with finish reason "abort" (its sink hears it); unknown or
  // finished ids are ignored.
  void abort(RequestId id);
  // Stops taking requests, waits up to `seconds` for the running ones to finish, aborts the
  // rest and joins the loop. Idempotent.
  void drain_and_stop(double seconds);
  LoopStats stats() const;
  bool stopped() const { return stop_; }

 private:
  void run();
  void retire(int64_t n);  // n requests delivered their last event

  Engine& engine_;
  std::atomic<RequestId> next_id_{1};
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::vector<std::pair<RequestId, Request>> queued_;
  std::vector<std::pair<RequestId, Sink>> pending_sinks_;
  std::vector<RequestId> aborts_;
  std::unordered_map<RequestId, Sink> sinks_;  // loop thread only (plus the destructor after join)
  bool accepting_ = true;
  int64_t inflight_ = 0;  // submitted requests whose last event has not been delivered (under mu_)
  std::atomic<bool> stop_{false};
  LoopStats stats_;  // under mu_, refreshed after each step
  std::thread thread_;
};

}  // namespace skv::engine
