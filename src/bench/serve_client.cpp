#include "bench/serve_client.h"

#include <httplib.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <system_error>
#include <thread>

#include "core/error.h"

namespace skv::bench {
namespace {

using Json = nlohmann::json;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// httplib's own names for its errors ("Connection", "Read") say little on their own.
std::string describe(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "could not connect";
    case httplib::Error::ConnectionTimeout:
      return "connection timed out";
    case httplib::Error::Read:
      return "reading the response failed (connection closed or timed out)";
    case httplib::Error::Write:
      return "sending the request failed";
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      return "TLS failed (" + httplib::to_string(e) + ")";
    default:
      return httplib::to_string(e);
  }
}

// An error body's message: OpenAI's {"error": {"message"}}, vLLM's {"message"}, or the text.
std::string error_message(const std::string& body) {
  try {
    const Json j = Json::parse(body);
    if (j.is_object() && j.contains("error")) {
      const Json& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"];
      if (e.is_string()) return e;
    }
    if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"];
  } catch (const Json::exception&) {
  }
  std::string s = body.substr(0, 200);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::unique_ptr<httplib::Client> make_client(const Target& t) {
  auto cli = std::make_unique<httplib::Client>(t.origin);
  if (!cli->is_valid()) fail("cannot make an HTTP client for ", quote_bounded(t.origin));
  const auto split = [](double s, auto set) {
    const auto sec = static_cast<time_t>(s);
    set(sec, static_cast<time_t>((s - static_cast<double>(sec)) * 1e6));
  };
  split(t.connect_timeout_s, [&](time_t s, time_t us) { cli->set_connection_timeout(s, us); });
  split(t.read_timeout_s, [&](time_t s, time_t us) { cli->set_read_timeout(s, us); });
  split(t.read_timeout_s, [&](time_t s, time_t us) { cli->set_write_timeout(s, us); });
  cli->set_keep_alive(false);
  return cli;
}

httplib::Headers headers(const Target& t) {
  // identity: a compressed stream would be buffered by the compressor and its chunks could not
  // be timed.
  httplib::Headers h{{"Accept-Encoding", "identity"}};
  if (!t.api_key.empty()) h.emplace("Authorization", "Bearer " + t.api_key);
  return h;
}

}  // namespace

std::pair<std::string, std::string> split_base_url(const std::string& url) {
  static const std::regex re(R"(^(https?)://(\[[0-9A-Fa-f:.]+\]|[^:/?#\[\]]+)(:([0-9]{1,5}))?(/[^?#]*)?$)");
  std::smatch m;
  if (!std::regex_match(url, m, re)) fail("--base-url ", quote_bounded(url), " is not http(s)://host[:port][/path]");
  if (m[4].matched) {
    const long port = std::stol(m[4].str());
    if (port < 1 || port > 65535) fail("--base-url ", quote_bounded(url), ": port ", port, " is outside 1..65535");
  }
  std::string origin = m[1].str() + "://" + m[2].str() + (m[3].matched ? m[3].str() : "");
  std::string path = m[5].matched ? m[5].str() : "";
  while (!path.empty() && path.back() == '/') path.pop_back();
  return {origin, path};
}

void StreamParser::feed(std::string_view bytes, double t) {
  buffer_.append(bytes);
  size_t start = 0;
  for (size_t nl; (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1)
    line(std::string_view(buffer_).substr(start, nl - start), t);
  buffer_.erase(0, start);
}

void StreamParser::end(double t) {
  if (!buffer_.empty()) line(buffer_, t);
  buffer_.clear();
}

void StreamParser::line(std::string_view l, double t) {
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  if (l.rfind("data:", 0) != 0) return;  // blank separators, ": comments", event:/id:/retry: fields
  l.remove_prefix(5);
  if (!l.empty() && l.front() == ' ') l.remove_prefix(1);
  event(std::string(l), t);
}

void StreamParser::event(const std::string& data, double t) {
  if (done_ || !error_.empty()) return;  // nothing after [DONE] or an error counts
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  Json j;
  try {
    j = Json::parse(data);
  } catch (const Json::exception&) {
    error_ = "a stream event is not JSON: " + data.substr(0, 120);
    return;
  }
  if (!j.is_object()) {
    error_ = "a stream event is not a JSON object: " + data.substr(0, 120);
    return;
  }
  if (j.contains("error") && !j["error"].is_null()) {
    error_ = "error event in the stream: " + error_message(data);
    return;
  }
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    if (!first_) {
      first_ = true;
      ttft_ = t;
    } else {
      itl_.push_back(t - last_);
    }
    last_ = t;
    const Json& c = j["choices"][0];
    const Json* piece = nullptr;
    if (!chat_ && c.contains("text")) piece = &c["text"];
    if (chat_ && c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content"))
      piece = &c["delta"]["content"];
    if (piece && piece->is_string()) text_ += piece->get<std::string>();
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    const Json& u = j["usage"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
      completion_tokens_ = u["completion_tokens"].get<int64_t>();
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
      prompt_tokens_ = u["prompt_tokens"].get<int64_t>();
  }
}

void StreamParser::finish(RequestOutput& o) const {
  o.ttft = ttft_;
  o.latency = last_;
  o.itl = itl_;
  o.generated_text = text_;
  o.output_tokens = completion_tokens_;
  if (prompt_tokens_) o.prompt_len = *prompt_tokens_;
  o.success = false;
  if (!error_.empty())
    o.error = error_;
  else if (!done_)
    o.error = "the stream ended without data: [DONE]";
  else if (!first_)
    o.error = "the stream carried no token (no chunk with choices)";
  else
    o.success = true;
}

std::string request_body(const Target& t, const SampleRequest& r) {
  Json b;
  b["model"] = t.model;
  if (t.chat) {
    b["messages"] = Json::array({{{"role", "user"}, {"content", r.prompt}}});
    b["max_completion_tokens"] = r.output_len;
  } else {
    b["prompt"] = r.prompt;
    b["max_tokens"] = r.output_len;
  }
  b["temperature"] = 0.0;
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  if (t.ignore_eos) b["ignore_eos"] = true;
  return b.dump(-1, ' ', false, Json::error_handler_t::replace);
}

RequestOutput send_request(const Target& t, const SampleRequest& r, Clock::time_point run_start) {
  RequestOutput o;
  o.prompt_len = r.prompt_len;
  std::unique_ptr<httplib::Client> cli;
  try {
    cli = make_client(t);
  } catch (const Error& e) {
    o.error = e.what();
    return o;
  }
  httplib::Request req;
  req.method = "POST";
  req.path = t.base_path + t.endpoint;
  req.headers = headers(t);
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  req.body = request_body(t, r);
  StreamParser parser(t.chat);
  std::string error_body;
  const Clock::time_point st = Clock::now();
  o.start_time = seconds(st - run_start);
  req.response_handler = [&](const httplib::Response& res) {
    o.http_status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    const double now = seconds(Clock::now() - st);
    if (o.http_status == 200)
      parser.feed(std::string_view(data, n), now);
    else if (error_body.size() < 4096)
      error_body.append(data, std::min(n, 4096 - error_body.size()));
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = cli->send(req, res, err);
  if (o.http_status == 0 && res.status > 0) o.http_status = res.status;
  if (o.http_status == 0) {
    o.error = "no answer from " + t.origin + ": " + describe(err);
    return o;
  }
  if (o.http_status != 200) {
    o.error =
        "HTTP " + std::to_string(o.http_status) + ": " + error_message(error_body.empty() ? res.body : error_body);
    return o;
  }
  parser.end(seconds(Clock::now() - st));
  parser.finish(o);
  if (!sent && !parser.done() && o.error == "the stream ended without data: [DONE]")
    o.error = "the stream broke off before data: [DONE]: " + describe(err);
  return o;
}

std::string first_model_id(const Target& t) {
  const std::string url = t.origin + t.base_path + "/v1/models";
  auto cli = make_client(t);
  cli->set_read_timeout(60, 0);
  auto res = cli->Get(t.base_path + "/v1/models", headers(t));
  if (!res) fail("cannot reach the server at ", url, ": ", describe(res.error()));
  if (res->status != 200) fail("GET ", url, " answered HTTP ", res->status, ": ", error_message(res->body));
  try {
    const Json j = Json::parse(res->body);
    const Json& data = j.at("data");
    if (!data.is_array() || data.empty()) fail("GET ", url, " lists no models; pass --model");
    return data[0].at("id").get<std::string>();
  } catch (const Json::exception& e) {
    fail("GET ", url, " did not answer a model list: ", e.what());
  }
}

std::vector<RequestOutput> run_requests(const Target& t, const std::vector<SampleRequest>& requests,
                                        const std::vector<double>& send_times, int64_t max_concurrency,
                                        Clock::time_point run_start,
                                        const std::function<void(const RequestOutput&)>& on_done) {
  if (send_times.size() != requests.size())
    fail_internal("run_requests: ", send_times.size(), " send times for ", requests.size(), " requests");
  std::vector<RequestOutput> outputs(requests.size());
  const size_t limit =
      max_concurrency > 0 ? std::min(requests.size(), static_cast<size_t>(max_concurrency)) : requests.size();
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> queue;
  size_t idle = 0;
  bool closing = false, thread_limit = false;
  std::vector<std::thread> workers;
  // Workers are started as requests come due and none is free, up to the limit, so a slow
  // arrival rate runs on few threads and a burst gets one per request in flight.
  auto work = [&] {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      ++idle;
      cv.wait(lock, [&] { return !queue.empty() || closing; });
      --idle;
      if (queue.empty()) return;
      const size_t i = queue.front();
      queue.pop_front();
      lock.unlock();
      outputs[i] = send_request(t, requests[i], run_start);
      if (on_done) on_done(outputs[i]);
      lock.lock();
    }
  };
  for (size_t i = 0; i < requests.size(); ++i) {
    std::this_thread::sleep_until(
        run_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(send_times[i])));
    std::lock_guard<std::mutex> lock(mu);
    queue.push_back(i);
    if (queue.size() > idle && workers.size() < limit && !thread_limit) {
      try {
        workers.emplace_back(work);
      } catch (const std::system_error& e) {
        // Out of threads: the workers already running take the rest in turn, which caps the
        // concurrency; say so, as it changes what is measured.
        if (workers.empty()) throw;
        thread_limit = true;
        std::fprintf(
            stderr,
            "bench serve: note: could not start more than %zu client threads (%s); requests beyond that wait for one\n",
            workers.size(), e.what());
      }
    }
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    closing = true;
  }
  cv.notify_all();
  for (std::thread& w : workers) w.join();
  return outputs;
}

}  // namespace skv::bench
