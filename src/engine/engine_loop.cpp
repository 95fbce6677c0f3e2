#include "engine/engine_loop.h"

#include <chrono>
#include <cstdio>

#include "core/error.h"

namespace skv::engine {

EngineLoop::EngineLoop(Engine& engine) : engine_(engine) {
  thread_ = std::thread([this] { run(); });
}

EngineLoop::~EngineLoop() { drain_and_stop(0); }

RequestId EngineLoop::submit(Request r, Sink sink) {
  engine_.validate(r);
  const RequestId id = next_id_++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) fail_resource("the engine is shutting down");
    queued_.emplace_back(id, std::move(r));
    ++inflight_;
    pending_sinks_.emplace_back(id, std::move(sink));  // the loop thread moves it into sinks_
  }
  cv_.notify_one();
  return id;
}

void EngineLoop::abort(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborts_.push_back(id);
  }
  cv_.notify_one();
}

LoopStats EngineLoop::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  LoopStats s = stats_;
  s.queued = static_cast<int64_t>(queued_.size());
  return s;
}

void EngineLoop::drain_and_stop(double seconds) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_ = false;
  }
  if (thread_.joinable()) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait_until(lock, deadline, [&] { return inflight_ == 0; });
    stop_ = true;
    lock.unlock();
    cv_.notify_one();
    thread_.join();
  }
}

void EngineLoop::retire(int64_t n) {
  if (n == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inflight_ -= n;
  }
  idle_cv_.notify_all();
}

void EngineLoop::run() {
  std::vector<std::pair<RequestId, Request>> adds;
  std::vector<std::pair<RequestId, Sink>> sinks;
  std::vector<RequestId> aborts;
  std::unordered_map<RequestId, int> open;  // samples still running per request (one sink serves all)
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queued_.empty() || !aborts_.empty() || engine_.has_work(); });
      adds.swap(queued_);
      sinks.swap(pending_sinks_);
      aborts.swap(aborts_);
    }
    for (auto& [id, sink] : sinks) sinks_[id] = std::move(sink);
    sinks.clear();
    for (auto& [id, r] : adds) {
      const int n = r.n;
      try {
        engine_.add(std::move(r), id);
        open[id] = n;
      } catch (const Error& err) {  // validated already; a late failure still reaches the client
        Event e;
        e.request = id;
        e.finished = true;
        e.finish_reason = "abort";
        e.error = err.what();
        if (auto it = sinks_.find(id); it != sinks_.end()) it->second(e);
        sinks_.erase(id);
        retire(1);
      }
    }
    adds.clear();
    for (RequestId id : aborts) engine_.abort(id);
    aborts.clear();
    if (stop_) {
      // Whatever is left ends as aborted, and every sink hears it.
      for (auto& [id, n] : open) engine_.abort(id);
      while (engine_.has_work()) {
        std::vector<Event> events;
        try {
          events = engine_.step();
        } catch (const Error&) {
          break;
        }
        for (const Event& e : events)
          if (auto it = sinks_.find(e.request); it != sinks_.end()) it->second(e);
      }
      sinks_.clear();
      return;
    }
    if (!engine_.has_work()) continue;
    std::vector<Event> events;
    try {
      events = engine_.step();
    } catch (const Error& err) {
      // A failed step leaves no trustworthy state for the requests in it: end them all with
      // the error and go on serving new ones.
      std::fprintf(stderr, "swiftkv engine: step failed: %s\n", err.what());
      for (auto& [id, n] : open) {
        engine_.abort(id);
        Event e;
        e.request = id;
        e.finished = true;
        e.finish_reason = "abort";
        e.error = err.what();
        if (auto it = sinks_.find(id); it != sinks_.end()) it->second(e);
      }
      try {
        engine_.step();  // frees the aborted requests' blocks
      } catch (const Error&) {
      }
      retire(static_cast<int64_t>(open.size()));
      open.clear();
      sinks_.clear();
      events.clear();
    }
    for (const Event& e : events) {
      auto it = sinks_.find(e.request);
      if (it != sinks_.end()) it->second(e);
      if (e.finished && --open[e.request] <= 0) {
        open.erase(e.request);
        sinks_.erase(e.request);
        retire(1);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.running = engine_.num_running();
      stats_.waiting = engine_.num_waiting();
      stats_.kv_blocks = engine_.blocks().num_blocks();
      stats_.kv_blocks_free = engine_.blocks().num_free();
      stats_.counters = engine_.counters();
    }
    idle_cv_.notify_all();
  }
}

}  // namespace skv::engine
