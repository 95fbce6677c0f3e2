#pragma once
// `swiftkv serve`'s HTTP side: the OpenAI API as vLLM serves it, on cpp-httplib, in front of one
// EngineLoop. Every HTTP request runs on one of cpp-httplib's worker threads; a generation
// request is submitted to the loop with a sink that queues its events for that thread, which
// either waits for the last one (a JSON response) or writes each as a server-sent event as it
// comes (a stream). A stream whose client goes away aborts its requests, so their blocks are
// freed at the next step.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/engine_loop.h"
#include "server/metrics.h"
#include "server/openai.h"

namespace httplib {
class Server;
}

namespace skv::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                     // 0: any free port (tests)
  std::string api_key;                 // empty: no authentication
  bool guard_metrics = false;          // --api-key-guards-metrics: /metrics needs the key too
  int64_t max_waiting_requests = 512;  // more queued than this: 503 with Retry-After
  size_t max_body_bytes = 32u << 20;   // larger bodies: 413
  int http_threads = 0;                // 0: enough for every stream the engine accepts, plus spare
  std::string allowed_origins;         // CORS: empty = off, "*" or a comma-separated list
  double stats_interval_s = 10;        // the periodic stats line on stderr; 0: none
  std::string version;
};

class Server {
 public:
  explicit Server(ServerOptions opts);
  ~Server();

  // Binds the port (throws on failure) and starts serving on a thread: /health answers 503
  // until attach().
  void start();
  int port() const { return port_; }
  // The engine is ready: requests are served from now on. `engine` must outlive the server.
  void attach(engine::Engine& engine, ApiContext ctx);
  // Stops taking requests (503), lets running ones finish for up to `drain_seconds`, aborts the
  // rest (their clients get a 503: an error event in a stream), lets the streams write their
  // ends, then closes the listener and every idle connection. Idempotent.
  void shutdown(double drain_seconds);

 private:
  struct Call;
  void close_connections();
  void routes();
  void stats_thread();
  bool authorised(const std::string& path, const std::string& auth, const std::string& api_key_header) const;

  ServerOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_, stats_thread_;
  int port_ = 0;
  int listen_fd_ = -1;  // the listening socket, to raise its backlog after bind
  std::atomic<bool> ready_{false}, stopping_{false};
  std::unique_ptr<engine::EngineLoop> loop_;
  engine::Engine* engine_ = nullptr;
  ApiContext ctx_;
  std::unique_ptr<Metrics> metrics_;
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  int64_t open_streams_ = 0;  // streamed responses not yet written to their end (under streams_mu_)
  std::mutex stats_mu_;
  std::condition_variable stats_cv_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace skv::server
