#pragma once
// The serving benchmark's client: streamed OpenAI completions / chat completions over HTTP, timed
// chunk by chunk as vLLM's client (vllm/benchmarks/lib/endpoint_request_func.py) times them, and
// the run that sends a list of requests at given times with bounded concurrency.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/random_dataset.h"
#include "bench/serve_metrics.h"

namespace skv::bench {

using Clock = std::chrono::steady_clock;

struct Target {
  std::string origin;     // scheme://host:port
  std::string base_path;  // a path prefix from --base-url ("" or e.g. "/proxy")
  std::string endpoint = "/v1/completions";
  bool chat = false;  // the endpoint is a chat completions one
  std::string model;
  std::string api_key;
  bool ignore_eos = false;
  double connect_timeout_s = 30;
  // vLLM's client allows a request 6 hours: under a heavy load a request may wait minutes for
  // its first token, and that wait is what is being measured.
  double read_timeout_s = 6 * 3600;
};

// "http://host:port/prefix" -> {origin, prefix}; the port defaults to the scheme's. Throws naming
// the URL on anything but http(s)://host[:port][/path].
std::pair<std::string, std::string> split_base_url(const std::string& url);

// An SSE stream of completion chunks, fed as its bytes arrive. A "data:" line is one event: a
// JSON chunk, an error object, or [DONE]. A chunk with a non-empty `choices` array carries a
// token (its text may be empty, e.g. a special token) and is timed; `usage` is read from any
// chunk that has one.
class StreamParser {
 public:
  explicit StreamParser(bool chat) : chat_(chat) {}
  // t: seconds since the request was sent, when these bytes arrived.
  void feed(std::string_view bytes, double t);
  // The body ended: a last line without its newline still counts.
  void end(double t);
  // Fills the timings, text, usage and success of o (whose http_status is 200).
  void finish(RequestOutput& o) const;

  bool done() const { return done_; }

 private:
  void line(std::string_view l, double t);
  void event(const std::string& data, double t);

  bool chat_;
  std::string buffer_;
  bool done_ = false, first_ = false;
  double ttft_ = 0, last_ = 0;
  std::vector<double> itl_;
  std::string text_, error_;
  std::optional<int64_t> completion_tokens_, prompt_tokens_;
};

// The JSON body vLLM's client sends, with temperature 0: prompt (or one user message), max_tokens
// (max_completion_tokens for chat) = the output length, stream with include_usage, ignore_eos
// when asked.
std::string request_body(const Target& t, const SampleRequest& r);

// Sends one request and reads its stream. Never throws for what the server or the network does:
// failures come back as success = false with the reason.
RequestOutput send_request(const Target& t, const SampleRequest& r, Clock::time_point run_start);

// GET /v1/models: the first model's id. Throws naming the URL when the server cannot be reached
// or answers otherwise.
std::string first_model_id(const Target& t);

// Sends requests[i] at run_start + send_times[i] (seconds), each on its own thread, at most
// max_concurrency (0: no limit) at once; a request whose time has come waits for a free slot as
// behind vLLM's semaphore. on_done (may be empty) is called from the request's thread.
std::vector<RequestOutput> run_requests(const Target& t, const std::vector<SampleRequest>& requests,
                                        const std::vector<double>& send_times, int64_t max_concurrency,
                                        Clock::time_point run_start,
                                        const std::function<void(const RequestOutput&)>& on_done);

}  // namespace skv::bench
