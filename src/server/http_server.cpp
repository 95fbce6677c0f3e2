#include "server/http_server.h"

// cpp-httplib's pool is fixed at construction and a streaming response holds its worker for the
// whole answer, so the pool is sized (new_task_queue) for every stream the server accepts.
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <map>
#include <set>

#include "core/error.h"
#include "server/chat_page.h"

namespace skv::server {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
}

// Messages may quote the request; bound_message keeps a body of any size from coming back whole.
void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, api_error(bound_message(message), status));
  if (status == 503) res.set_header("Retry-After", "1");
}

// Equal-time comparison: the time taken does not depend on where the strings first differ.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::string& ref = a.size() == b.size() ? b : a;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ ref[i]);
  return diff == 0;
}

}  // namespace

// One generation HTTP request: the engine requests it submitted (one per prompt) and the events
// the loop thread has queued for it.
struct Server::Call {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<engine::Event> events;
  std::vector<engine::RequestId> ids;
  std::map<engine::RequestId, size_t> prompt_of;  // engine request -> prompt index
  int open = 0;                                   // samples not finished
};

Server::Server(ServerOptions opts) : opts_(std::move(opts)), http_(std::make_unique<httplib::Server>()) {}

Server::~Server() { shutdown(0); }

bool Server::authorised(const std::string& path, const std::string& auth, const std::string& api_key_header) const {
  if (opts_.api_key.empty()) return true;
  const bool open =
      path == "/health" || path == "/version" || path == "/" || (path == "/metrics" && !opts_.guard_metrics);
  if (open) return true;
  const std::string bearer = "Bearer ";
  if (auth.compare(0, bearer.size(), bearer) == 0 && same_secret(auth.substr(bearer.size()), opts_.api_key))
    return true;
  return !api_key_header.empty() && same_secret(api_key_header, opts_.api_key);
}

void Server::start() {
  started_ = Clock::now();
  const int threads = opts_.http_threads > 0
                          ? opts_.http_threads
                          : static_cast<int>(std::min<int64_t>(4096, opts_.max_waiting_requests + 64 + 16));
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(opts_.max_body_bytes);
  http_->set_keep_alive_max_count(1000);
  // Debian's cpp-httplib is a compiled library whose listen() backlog is 5, so a burst of
  // clients overflows the accept queue and the kernel resets them. The socket is remembered here
  // and listened on again after bind (Linux then only raises the backlog, clamped by
  // net.core.somaxconn).
  http_->set_socket_options([this](int sock) {
    // Not httplib's default, SO_REUSEPORT, which lets a second server bind the same port and take
    // a share of its connections. SO_REUSEADDR alone lets a restarted server bind while the old
    // one's connections linger in TIME_WAIT (after a crash or kill -9).
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd_ = sock;
  });
  routes();
  if (opts_.port == 0) {
    port_ = http_->bind_to_any_port(opts_.host);
    if (port_ <= 0) fail_resource("cannot bind to ", opts_.host, " on any port");
  } else {
    if (!http_->bind_to_port(opts_.host, opts_.port))
      fail_resource("cannot bind to ", opts_.host, ":", opts_.port, " (in use, or not an address of this machine)");
    port_ = opts_.port;
  }
  if (listen_fd_ >= 0 && ::listen(listen_fd_, 4096) != 0)
    fail_resource("cannot raise the listen backlog on ", opts_.host, ":", port_);
  http_thread_ = std::thread([this] { http_->listen_after_bind(); });
}

void Server::attach(engine::Engine& engine, ApiContext ctx) {
  engine_ = &engine;
  ctx_ = std::move(ctx);
  metrics_ = std::make_unique<Metrics>(ctx_.model_name);
  loop_ = std::make_unique<engine::EngineLoop>(engine);
  ready_ = true;
  if (opts_.stats_interval_s > 0) stats_thread_ = std::thread([this] { stats_thread(); });
}

void Server::shutdown(double drain_seconds) {
  if (stopping_.exchange(true)) {
    if (http_thread_.joinable()) http_thread_.join();
    return;
  }
  if (loop_) loop_->drain_and_stop(drain_seconds);
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_cv_.notify_all();
  }
  if (stats_thread_.joinable()) stats_thread_.join();
  // Every request has had its last event, but a stream may not have written it yet, and once the
  // listener is closed cpp-httplib stops calling content providers: the client would get a body
  // cut short instead of its end. The wait is bounded for a client that stopped reading.
  {
    std::unique_lock<std::mutex> lock(streams_mu_);
    streams_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return open_streams_ == 0; });
  }
  http_->stop();
  close_connections();
  if (http_thread_.joinable()) http_thread_.join();
}

// cpp-httplib 0.11's stop() closes only the listener: a worker waiting on an idle keep-alive
// connection notices only at the end of the keep-alive timeout (5 s), and the process cannot exit
// before. Its API does not show the accepted sockets, so they are found among this process's
// descriptors by their local port. Shutting their reading side wakes those workers at once and
// does not cut a response still being written.
void Server::close_connections() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return;
  std::vector<int> fds;
  while (const dirent* e = ::readdir(dir))
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') fds.push_back(std::atoi(e->d_name));
  ::closedir(dir);
  for (int fd : fds) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;  // not a socket
    int port = -1;
    if (addr.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (port != port_ || ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || listening) continue;
    ::shutdown(fd, SHUT_RD);
  }
}

void Server::stats_thread() {
  engine::LoopStats last = loop_->stats();
  auto t_last = Clock::now();
  std::unique_lock<std::mutex> lock(stats_mu_);
  while (!stopping_) {
    stats_cv_.wait_for(lock, std::chrono::duration<double>(opts_.stats_interval_s));
    if (stopping_) break;
    const engine::LoopStats s = loop_->stats();
    const double dt = seconds_since(t_last);
    const int64_t prompt = s.counters.prompt_rows - last.counters.prompt_rows;
    const int64_t gen = s.counters.decode_rows - last.counters.decode_rows;
    const bool busy = prompt > 0 || gen > 0 || s.running > 0 || s.waiting + s.queued > 0;
    if (busy) {
      const double used = s.kv_blocks > 0 ? 100.0 * (1.0 - double(s.kv_blocks_free) / double(s.kv_blocks)) : 0;
      const int64_t q = s.counters.prefix_queried_tokens, h = s.counters.prefix_hit_tokens;
      std::fprintf(stderr,
                   "serve: prompt %.1f tok/s, generation %.1f tok/s, running %lld, waiting %lld, KV cache %.1f%%, "
                   "prefix cache hit rate %.1f%%\n",
                   prompt / dt, gen / dt, (long long)s.running, (long long)(s.waiting + s.queued), used,
                   q > 0 ? 100.0 * double(h) / double(q) : 0.0);
    }
    last = s;
    t_last = Clock::now();
  }
}

void Server::routes() {
  httplib::Server& h = *http_;
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!opts_.allowed_origins.empty()) {
      const std::string origin = req.get_header_value("Origin");
      bool ok = opts_.allowed_origins == "*";
      for (size_t pos = 0; !ok && pos <= opts_.allowed_origins.size();) {
        size_t comma = opts_.allowed_origins.find(',', pos);
        if (comma == std::string::npos) comma = opts_.allowed_origins.size();
        ok = !origin.empty() && opts_.allowed_origins.substr(pos, comma - pos) == origin;
        pos = comma + 1;
      }
      if (ok && !origin.empty()) {
        res.set_header("Access-Control-Allow-Origin", opts_.allowed_origins == "*" ? "*" : origin);
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      }
      if (req.method == "OPTIONS") {
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (!authorised(req.path, req.get_header_value("Authorization"), req.get_header_value("X-Api-Key"))) {
      send_error(res, 401, "invalid or missing API key (send 'Authorization: Bearer KEY' or 'X-Api-Key: KEY')");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, 404, "no route " + req.method + " " + quote_bounded(req.path, 80));
    else if (res.status == 413)
      send_error(res, 413, "request body too large");
    else if (res.status == 405)
      send_error(res, 405, "method not allowed");
    else
      send_error(res, res.status, "error " + std::to_string(res.status));
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const Error& e) {
      send_error(res, e.kind() == ErrorKind::Internal ? 500 : 400, e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
  });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (!ready_ || stopping_)
      send_json(res, 503, Json{{"status", stopping_ ? "stopping" : "loading"}});
    else
      send_json(res, 200, Json{{"status", "ok"}});
  });
  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(chat_page_html(), "text/html; charset=utf-8");
  });
  h.Get("/version", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, Json{{"version", opts_.version}});
  });

  // Everything below needs the engine.
  auto ready_or_503 = [this](httplib::Response& res) {
    if (ready_ && !stopping_) return true;
    send_error(res, 503, stopping_ ? "the server is shutting down" : "the model is still loading");
    return false;
  };
  auto parse_body = [](const httplib::Request& req) {
    Json j = Json::parse(req.body, nullptr, false);
    if (j.is_discarded()) fail("the request body is not valid JSON");
    if (!j.is_object()) fail("the request body must be a JSON object");
    return j;
  };

  h.Get("/v1/models", [this, ready_or_503](const httplib::Request&, httplib::Response& res) {
    if (!ready_or_503(res)) return;
    const auto created = static_cast<int64_t>(std::time(nullptr));
    Json m = {{"id", ctx_.model_name},
              {"object", "model"},
              {"created", created},
              {"owned_by", "swiftkv"},
              {"root", ctx_.model_name},
              {"parent", nullptr},
              {"max_model_len", ctx_.max_model_len}};
    send_json(res, 200, Json{{"object", "list"}, {"data", Json::array({m})}});
  });
  h.Get("/metrics", [this, ready_or_503](const httplib::Request&, httplib::Response& res) {
    if (!ready_) {
      ready_or_503(res);
      return;
    }
    res.set_content(metrics_->text(loop_->stats()), "text/plain; version=0.0.4");
  });
  h.Get("/tokenizer_info", [this, ready_or_503](const httplib::Request&, httplib::Response& res) {
    if (!ready_or_503(res)) return;
    if (!ctx_.tok) return send_error(res, 404, "this model has no tokenizer");
    auto text = [&](std::optional<int32_t> id) { return id ? Json(ctx_.tok->token_text(*id)) : Json(nullptr); };
    send_json(res, 200,
              Json{{"tokenizer_class", "swiftkv"},
                   {"bos_token", text(ctx_.tok->bos_id())},
                   {"eos_token", text(ctx_.tok->eos_id())},
                   {"pad_token", text(ctx_.tok->pad_id())},
                   {"unk_token", text(ctx_.tok->unk_id())},
                   {"add_bos_token", ctx_.tok->adds_bos()},
                   {"chat_template", ctx_.chat_template},
                   {"model_max_length", ctx_.max_model_len},
                   {"vocab_size", ctx_.tok->vocab_size()}});
  });
  h.Post("/tokenize", [this, ready_or_503, parse_body](const httplib::Request& req, httplib::Response& res) {
    if (!ready_or_503(res)) return;
    try {
      const Json b = parse_body(req);
      if (!ctx_.tok) fail("this model has no tokenizer");
      const char* key = b.contains("prompt") ? "prompt" : "content";
      if (!b.contains(key) || !b[key].is_string()) fail("'prompt' (a string) is required");
      bool special = true;
      if (b.contains("add_special_tokens")) {
        if (!b["add_special_tokens"].is_boolean()) fail("'add_special_tokens' must be true or false");
        special = b["add_special_tokens"].get<bool>();
      }
      const std::vector<int32_t> ids = ctx_.tok->encode(b[key].get<std::string>(), special, true);
      send_json(res, 200, Json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx_.max_model_len}});
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Internal) throw;
      send_error(res, 400, e.what());
    }
  });
  h.Post("/detokenize", [this, ready_or_503, parse_body](const httplib::Request& req, httplib::Response& res) {
    if (!ready_or_503(res)) return;
    try {
      const Json b = parse_body(req);
      if (!ctx_.tok) fail("this model has no tokenizer");
      if (!b.contains("tokens") || !b["tokens"].is_array()) fail("'tokens' (a list of token ids) is required");
      std::vector<int32_t> ids;
      for (const Json& x : b["tokens"]) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= ctx_.tok->vocab_size())
          fail("'tokens' holds something that is not a token id of this model");
        ids.push_back(x.get<int32_t>());
      }
      send_json(res, 200, Json{{"prompt", ctx_.tok->decode(ids)}});
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Internal) throw;
      send_error(res, 400, e.what());
    }
  });

  auto generate = [this, ready_or_503, parse_body](Endpoint endpoint, const httplib::Request& req,
                                                   httplib::Response& res) {
    if (!ready_or_503(res)) return;
    const auto t_arrival = Clock::now();
    auto call = std::make_shared<Call>();
    auto api = std::make_shared<ApiRequest>();
    try {
      *api = parse_request(endpoint, parse_body(req), ctx_);
      if (!api->model.empty() && api->model != ctx_.model_name) {
        send_error(res, 404, "The model " + quote_bounded(api->model, 60) + " does not exist.");
        return;
      }
      const engine::LoopStats s = loop_->stats();
      if (s.waiting + s.queued >= opts_.max_waiting_requests) {
        send_error(res, 503,
                   "too many requests waiting (" + std::to_string(s.waiting + s.queued) +
                       "); --max-waiting-requests is " + std::to_string(opts_.max_waiting_requests));
        return;
      }
      std::lock_guard<std::mutex> lock(call->mu);
      for (size_t k = 0; k < api->prompts.size(); ++k) {
        auto sink = [call](const engine::Event& e) {
          std::lock_guard<std::mutex> l(call->mu);
          call->events.push_back(e);
          call->cv.notify_one();
        };
        const engine::RequestId id = loop_->submit(api->prompts[k], sink);
        call->ids.push_back(id);
        call->prompt_of[id] = k;
        call->open += api->n;
      }
    } catch (const Error& e) {
      for (engine::RequestId id : call->ids) loop_->abort(id);
      if (e.kind() == ErrorKind::Internal) throw;
      // The loop refuses requests once a shutdown began after ready_or_503 let this one in.
      if (stopping_) return send_error(res, 503, "the server is shutting down");
      send_error(res, 400, e.what());
      return;
    }
    const std::string id = (endpoint == Endpoint::Completions ? "cmpl-" : "chatcmpl-") + random_hex(32);
    const auto created = static_cast<int64_t>(std::time(nullptr));

    // Per sample: what it has so far and when its tokens came (for the latency metrics).
    struct Progress {
      std::vector<PromptResult> results;
      std::vector<std::vector<Clock::time_point>> last_token;  // [prompt][sample]
      std::vector<std::vector<bool>> started;
      std::string failure;
      int failure_status = 400;
      int64_t prompt_tokens = 0, completion_tokens = 0, cached = 0;
    };
    auto prog = std::make_shared<Progress>();
    prog->results.resize(api->prompts.size());
    prog->last_token.assign(api->prompts.size(), std::vector<Clock::time_point>(api->n, t_arrival));
    prog->started.assign(api->prompts.size(), std::vector<bool>(api->n, false));
    for (size_t k = 0; k < api->prompts.size(); ++k) {
      prog->results[k].prompt = api->prompts[k].prompt;
      prog->results[k].samples.resize(api->n);
      prog->prompt_tokens += static_cast<int64_t>(api->prompts[k].prompt.size());
    }
    // Takes one event into the results; returns the stream delta it makes.
    auto take = [this, api, prog, call, t_arrival](const engine::Event& e) {
      const size_t k = call->prompt_of.at(e.request);
      PromptResult& pr = prog->results[k];
      SampleResult& s = pr.samples.at(e.index);
      s.tokens.insert(s.tokens.end(), e.tokens.begin(), e.tokens.end());
      s.text += e.text;
      s.logprobs.insert(s.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      if (!e.prompt_logprobs.empty()) pr.prompt_logprobs = e.prompt_logprobs;
      const auto now = Clock::now();
      if (!e.tokens.empty()) {
        if (prog->started[k][e.index])
          metrics_->inter_token(std::chrono::duration<double>(now - prog->last_token[k][e.index]).count());
        prog->last_token[k][e.index] = now;
      }
      StreamDelta d;
      d.index = static_cast<int64_t>(k) * api->n + e.index;
      d.text = e.text;
      d.tokens = e.tokens;
      d.logprobs = e.logprobs;
      d.first = !prog->started[k][e.index];
      d.prompt = &pr;
      prog->started[k][e.index] = true;
      if (e.finished) {
        s.finish_reason = e.finish_reason;
        d.finish_reason = e.finish_reason;
        pr.cached_tokens = e.usage.cached_tokens;
        prog->completion_tokens += e.usage.completion_tokens;
        if (e.index == 0) prog->cached += e.usage.cached_tokens;
        if (!e.error.empty()) prog->failure = e.error;
        // Only a shutdown aborts a request whose client still reads its events (a client that went
        // away reads none): it may be retried elsewhere, so 503, and its partial text is no answer.
        if (e.finish_reason == "abort" && e.error.empty()) {
          prog->failure = "the server is shutting down: this request was stopped (--shutdown-timeout) after " +
                          std::to_string(prog->completion_tokens) + " generated tokens";
          prog->failure_status = 503;
        }
        const double queue = e.timing.scheduled >= 0 ? e.timing.scheduled - e.timing.arrival : -1;
        const double ttft = e.timing.first_token >= 0 ? e.timing.first_token - e.timing.arrival : -1;
        metrics_->finished(e.finish_reason, e.index == 0 ? e.usage.prompt_tokens : 0, e.usage.completion_tokens, queue,
                           ttft, std::chrono::duration<double>(now - t_arrival).count());
        --call->open;
      }
      return d;
    };

    if (!api->stream) {
      std::unique_lock<std::mutex> lock(call->mu);
      while (call->open > 0) {
        call->cv.wait(lock, [&] { return !call->events.empty(); });
        while (!call->events.empty()) {
          engine::Event e = std::move(call->events.front());
          call->events.pop_front();
          take(e);
        }
      }
      lock.unlock();
      if (!prog->failure.empty()) return send_error(res, prog->failure_status, prog->failure);
      send_json(res, 200, response_body(*api, prog->results, ctx_, id, created));
      return;
    }

    res.set_header("Cache-Control", "no-cache");
    {
      std::lock_guard<std::mutex> lock(streams_mu_);
      ++open_streams_;
    }
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, api, prog, call, take, id, created](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& data) {
            const std::string frame = "data: " + data + "\n\n";
            return sink.write(frame.data(), frame.size());
          };
          std::unique_lock<std::mutex> lock(call->mu);
          // While nothing comes (the request waits or its prompt is computed), look now and then
          // whether the client is still there: one that left is aborted now, not after its prompt
          // took its share of the steps, as a write to it would be the first to fail.
          while (call->open > 0 && call->events.empty()) {
            if (call->cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return !call->events.empty(); })) break;
            lock.unlock();
            const bool there = sink.is_writable();
            lock.lock();
            if (!there) return false;
          }
          std::deque<engine::Event> batch;
          batch.swap(call->events);
          lock.unlock();
          for (engine::Event& e : batch) {
            const bool had_failure = !prog->failure.empty();
            StreamDelta d = take(e);
            if (!e.error.empty()) {
              if (!send(api_error(e.error, 400).dump(-1, ' ', false, Json::error_handler_t::replace))) return false;
              continue;
            }
            // A shutdown's abort: the text so far, then one error event instead of a finish_reason,
            // so that a client sees the answer is incomplete.
            const bool shut_down = e.finished && e.finish_reason == "abort";
            if (shut_down) d.finish_reason.clear();
            if (!d.text.empty() || !d.finish_reason.empty() || d.first || api->logprobs >= 0) {
              const Json chunk = stream_chunk(*api, ctx_, id, created, d);
              if (!send(chunk.dump(-1, ' ', false, Json::error_handler_t::replace))) return false;
            }
            if (shut_down && !had_failure && !send(api_error(prog->failure, 503).dump())) return false;
          }
          if (call->open > 0) return true;  // more to come: called again
          if (api->include_usage &&
              !send(usage_chunk(*api, ctx_, id, created, prog->prompt_tokens, prog->completion_tokens, prog->cached)
                        .dump()))
            return false;
          if (!send("[DONE]")) return false;
          sink.done();
          return true;
        },
        [this, call, t_arrival](bool success) {
          if (!success) {
            // The client went away (or the write failed): stop its requests now. Their last
            // events reach a queue nobody reads any more, so they are counted here, before the
            // abort, so that /metrics never shows the request gone but not counted.
            {
              std::lock_guard<std::mutex> lock(call->mu);
              for (int i = 0; i < call->open; ++i) metrics_->finished("abort", 0, 0, -1, -1, seconds_since(t_arrival));
            }
            for (engine::RequestId rid : call->ids) loop_->abort(rid);
          }
          std::lock_guard<std::mutex> lock(streams_mu_);
          --open_streams_;
          streams_cv_.notify_all();
        });
  };
  h.Post("/v1/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(Endpoint::Completions, req, res);
  });
  h.Post("/v1/chat/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(Endpoint::ChatCompletions, req, res);
  });
}

}  // namespace skv::server
