// `swiftkv bench serve`'s library: vLLM's metric definitions from given timestamps, numpy's
// percentiles, the stream parser, the arrival schedule's distribution, and random prompts of exact
// token lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "bench/arrivals.h"
#include "bench/random_dataset.h"
#include "bench/serve_client.h"
#include "bench/serve_metrics.h"
#include "bench/serve_report.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

using namespace skv::bench;

namespace {

RequestOutput ok(double ttft, std::vector<double> itl, double latency, int64_t out, int64_t prompt) {
  RequestOutput o;
  o.success = true;
  o.ttft = ttft;
  o.itl = std::move(itl);
  o.latency = latency;
  o.output_tokens = out;
  o.prompt_len = prompt;
  return o;
}

std::string fixture_tokenizer() { return std::string(SKV_SOURCE_DIR) + "/tests/fixtures/models/llama_gqa"; }

}  // namespace

// Values from numpy 2.x: np.percentile([0.3, 0.1, 0.7, 0.2, 0.9], p), np.std, np.mean.
TEST(BenchServeMetrics, PercentilesAreNumpyLinear) {
  const std::vector<double> v = {0.3, 0.1, 0.7, 0.2, 0.9};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 0.1);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 0.2);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 0.3);
  EXPECT_NEAR(percentile(v, 90), 0.82, 1e-15);
  EXPECT_NEAR(percentile(v, 99), 0.892, 1e-15);
  EXPECT_NEAR(percentile(v, 99.9), 0.8992, 1e-15);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 0.9);
  EXPECT_DOUBLE_EQ(percentile({5.0}, 99), 5.0);
  EXPECT_DOUBLE_EQ(percentile({}, 99), 0.0);  // vLLM's np.percentile(x or 0, p)
  const Summary s = summarise(v, {50, 99});
  EXPECT_NEAR(s.mean, 440.0, 1e-9);
  EXPECT_NEAR(s.std, 307.24582991474436, 1e-9);  // population std (ddof 0), as np.std
  EXPECT_NEAR(s.median, 300.0, 1e-9);
  ASSERT_EQ(s.percentiles.size(), 2u);
  EXPECT_NEAR(s.percentiles[1].second, 892.0, 1e-9);
  const Summary empty = summarise({}, {99});
  EXPECT_EQ(empty.mean, 0);
  EXPECT_EQ(empty.percentiles[0].second, 0);
}

TEST(BenchServeMetrics, VllmDefinitionsFromTimestamps) {
  std::vector<RequestOutput> outs = {
      ok(0.3, {0.05, 0.05, 0.05}, 0.45, 4, 10),  // TPOT (0.45 - 0.3) / 3 = 50 ms
      ok(0.5, {0.1}, 0.6, 2, 20),                // TPOT 100 ms
      RequestOutput{},                           // failed
      ok(0.2, {}, 0.2, 1, 5),                    // one token: no TPOT, counted as 0 for goodput
  };
  outs[2].error = "HTTP 500: boom";
  Slo slo;
  slo.ttft_ms = 400;
  slo.tpot_ms = 60;
  const Metrics m = calculate_metrics(outs, 2.0, {50, 99}, slo);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 35);  // failed requests' inputs are not counted
  EXPECT_EQ(m.total_output, 7);
  EXPECT_EQ(m.output_lens, (std::vector<int64_t>{4, 2, 0, 1}));
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 3.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 21.0);
  EXPECT_EQ(m.good, 2);  // the first and the one-token request; the second misses the TTFT SLO
  EXPECT_DOUBLE_EQ(m.request_goodput, 1.0);
  EXPECT_NEAR(m.ttft.mean, 1000.0 / 3, 1e-9);
  EXPECT_NEAR(m.ttft.median, 300, 1e-9);
  EXPECT_NEAR(m.tpot.mean, 75, 1e-9);
  EXPECT_NEAR(m.tpot.percentiles[1].second, 50 + 50 * 0.99, 1e-9);
  EXPECT_NEAR(m.itl.mean, 62.5, 1e-9);  // every gap of every request, pooled
  EXPECT_NEAR(m.itl.median, 50, 1e-9);
  EXPECT_NEAR(m.e2el.mean, 1250.0 / 3, 1e-9);
  EXPECT_NEAR(m.e2el.median, 450, 1e-9);
  // No SLOs: no goodput.
  EXPECT_EQ(calculate_metrics(outs, 2.0, {99}, Slo{}).good, 0);
}

TEST(BenchServeMetrics, OutputTokensFromUsageElseTokenizer) {
  std::vector<RequestOutput> outs(4);
  for (auto& o : outs) o.success = true, o.generated_text = "abcd";
  outs[0].output_tokens = 7;  // usage
  outs[1].output_tokens = 0;  // usage 0: vLLM counts the text instead
  outs[2].output_tokens.reset();
  outs[3].success = false;
  auto count = [](const std::string& s) { return static_cast<int64_t>(s.size()); };
  auto a = outs;
  resolve_output_tokens(a, count);
  EXPECT_EQ(*a[0].output_tokens, 7);
  EXPECT_EQ(*a[1].output_tokens, 4);
  EXPECT_EQ(*a[2].output_tokens, 4);
  EXPECT_FALSE(a[3].output_tokens);
  auto b = outs;
  resolve_output_tokens(b, nullptr);
  EXPECT_TRUE(b[1].success);
  EXPECT_EQ(*b[1].output_tokens, 0);
  EXPECT_FALSE(b[2].success);  // neither usage nor tokenizer: a failure that says why
  EXPECT_NE(b[2].error.find("--tokenizer"), std::string::npos);
}

TEST(BenchServeStream, TimesChunksThatCarryChoices) {
  StreamParser p(false);
  p.feed("data: {\"choices\":[{\"text\":\"He\"}]}\n\n", 0.30);
  // Two events in one read share its time: an ITL of 0, as vLLM's client records it.
  p.feed("data: {\"choices\":[{\"text\":\"llo\"}]}\n\ndata: {\"choices\":[{\"text\":\"\"}]}\n\n", 0.35);
  p.feed("data: {\"choices\":[{\"te", 0.38);  // an event split across reads counts when whole
  p.feed("xt\":\" world\",\"finish_reason\":\"length\"}]}\n\n", 0.40);
  p.feed(": keep-alive comment\n\n", 0.41);
  p.feed("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4}}\n\n", 0.45);
  p.feed("data: [DONE]\n\n", 0.46);
  p.end(0.47);
  RequestOutput o;
  o.http_status = 200;
  o.prompt_len = 11;
  p.finish(o);
  EXPECT_TRUE(o.success) << o.error;
  EXPECT_DOUBLE_EQ(o.ttft, 0.30);
  EXPECT_DOUBLE_EQ(o.latency, 0.40);  // the last chunk with choices, not the usage or [DONE]
  ASSERT_EQ(o.itl.size(), 3u);
  EXPECT_NEAR(o.itl[0], 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(o.itl[1], 0.0);
  EXPECT_NEAR(o.itl[2], 0.05, 1e-12);
  EXPECT_EQ(o.generated_text, "Hello world");
  EXPECT_EQ(*o.output_tokens, 4);
  EXPECT_EQ(o.prompt_len, 12);  // the server's count wins, as in vLLM
}

TEST(BenchServeStream, ChatDeltasAndFailures) {
  StreamParser chat(true);
  chat.feed("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\r\n\r\n", 0.1);
  chat.feed("data: {\"choices\":[{\"delta\":{\"content\":\"!\"}}]}\n\ndata: [DONE]", 0.2);
  chat.end(0.2);  // [DONE] without its newline at the very end still counts
  RequestOutput o;
  chat.finish(o);
  EXPECT_TRUE(o.success) << o.error;
  EXPECT_EQ(o.generated_text, "Hi!");
  EXPECT_FALSE(o.output_tokens);

  StreamParser err(false);
  err.feed("data: {\"choices\":[{\"text\":\"a\"}]}\n\n", 0.1);
  err.feed("data: {\"error\":{\"message\":\"engine failed\",\"code\":400}}\n\ndata: [DONE]\n\n", 0.2);
  RequestOutput e;
  err.finish(e);
  EXPECT_FALSE(e.success);
  EXPECT_NE(e.error.find("engine failed"), std::string::npos);

  StreamParser cut(false);
  cut.feed("data: {\"choices\":[{\"text\":\"a\"}]}\n\n", 0.1);
  RequestOutput c;
  cut.finish(c);
  EXPECT_FALSE(c.success);
  EXPECT_NE(c.error.find("[DONE]"), std::string::npos);

  StreamParser none(false);
  none.feed("data: {\"choices\":[],\"usage\":{\"completion_tokens\":0}}\n\ndata: [DONE]\n\n", 0.1);
  RequestOutput n;
  none.finish(n);
  EXPECT_FALSE(n.success);
  EXPECT_NE(n.error.find("no token"), std::string::npos);

  StreamParser junk(false);
  junk.feed("data: {not json\n\n", 0.1);
  RequestOutput j;
  junk.finish(j);
  EXPECT_FALSE(j.success);
  EXPECT_NE(j.error.find("not JSON"), std::string::npos);
}

TEST(BenchServeStream, RequestBodies) {
  Target t;
  t.model = "m";
  t.ignore_eos = true;
  const SampleRequest r{"hello", 1, 8};
  const auto b = nlohmann::json::parse(request_body(t, r));
  EXPECT_EQ(b["prompt"], "hello");
  EXPECT_EQ(b["max_tokens"], 8);
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["ignore_eos"], true);
  EXPECT_EQ(b["temperature"], 0.0);
  t.chat = true;
  t.ignore_eos = false;
  const auto c = nlohmann::json::parse(request_body(t, r));
  EXPECT_EQ(c["messages"][0]["role"], "user");
  EXPECT_EQ(c["messages"][0]["content"], "hello");
  EXPECT_EQ(c["max_completion_tokens"], 8);
  EXPECT_FALSE(c.contains("ignore_eos"));
}

TEST(BenchServeFlags, ParsersAndNames) {
  const Slo s = parse_goodput({"ttft:500", "e2el:2000.5"});
  EXPECT_EQ(*s.ttft_ms, 500);
  EXPECT_FALSE(s.tpot_ms);
  EXPECT_EQ(*s.e2el_ms, 2000.5);
  EXPECT_THROW(parse_goodput({"ttft=500"}), skv::InputError);
  EXPECT_THROW(parse_goodput({"itl:5"}), skv::InputError);
  EXPECT_THROW(parse_goodput({"ttft:-1"}), skv::InputError);
  EXPECT_THROW(parse_goodput({"ttft:abc"}), skv::InputError);
  EXPECT_EQ(parse_metric_names("ttft,e2el"), (std::vector<std::string>{"ttft", "e2el"}));
  EXPECT_THROW(parse_metric_names("ttft,latency"), skv::InputError);
  EXPECT_EQ(parse_percentiles("25,50,99.9"), (std::vector<double>{25, 50, 99.9}));
  EXPECT_THROW(parse_percentiles("101"), skv::InputError);
  EXPECT_THROW(parse_percentiles("9x"), skv::InputError);
  EXPECT_EQ(py_float(INFINITY), "inf");
  EXPECT_EQ(py_float(2), "2.0");
  EXPECT_EQ(py_float(0.5), "0.5");
  EXPECT_EQ(percentile_word(99), "99");
  EXPECT_EQ(percentile_word(99.9), "99.9");
  EXPECT_EQ(split_base_url("http://127.0.0.1:8000"),
            (std::pair<std::string, std::string>{"http://127.0.0.1:8000", ""}));
  EXPECT_EQ(split_base_url("https://api.example.com/proxy/"),
            (std::pair<std::string, std::string>{"https://api.example.com", "/proxy"}));
  EXPECT_EQ(split_base_url("http://[::1]:9000/x").first, "http://[::1]:9000");
  EXPECT_THROW(split_base_url("ftp://x"), skv::InputError);
  EXPECT_THROW(split_base_url("localhost:8000"), skv::InputError);
  EXPECT_THROW(split_base_url("http://h:99999"), skv::InputError);
  RunInfo info;
  info.model_id = "org/Model-1";
  info.request_rate = 2;
  info.max_concurrency = 8;
  info.date = "20250101-120000";
  EXPECT_EQ(default_result_filename(info), "openai-2.0qps-concurrency8-Model-1-20250101-120000.json");
}

TEST(BenchServeReport, TableAndJsonKeys) {
  std::vector<RequestOutput> outs = {ok(0.3, {0.05}, 0.35, 2, 10), RequestOutput{}};
  outs[1].error = "HTTP 500: x";
  const Metrics m = calculate_metrics(outs, 1.0, {50, 99}, Slo{});
  RunInfo info;
  info.model_id = "m";
  info.request_rate = INFINITY;
  info.percentile_metrics = {"ttft", "tpot", "itl"};
  info.percentiles = {50, 99};
  info.parameters = 1000;
  const std::string table = format_table(m, info);
  EXPECT_EQ(table.rfind("============ Serving Benchmark Result ============\n", 0), 0u) << table;
  EXPECT_NE(table.find("Successful requests:                     1         \n"), std::string::npos) << table;
  EXPECT_NE(table.find("---------------Time to First Token----------------\n"), std::string::npos);
  EXPECT_NE(table.find("P99 TTFT (ms):                           300.00"), std::string::npos);
  EXPECT_NE(table.find("-----Time per Output Token (excl. 1st token)------\n"), std::string::npos);
  EXPECT_EQ(table.find("E2EL"), std::string::npos);                     // not asked for
  EXPECT_EQ(table.find("Request rate configured"), std::string::npos);  // inf
  const auto j = result_json(m, outs, info);
  for (const char* k : {"date",
                        "backend",
                        "model_id",
                        "tokenizer_id",
                        "num_prompts",
                        "request_rate",
                        "burstiness",
                        "max_concurrency",
                        "completed",
                        "failed",
                        "duration",
                        "total_input_tokens",
                        "total_output_tokens",
                        "request_throughput",
                        "request_goodput",
                        "output_throughput",
                        "total_token_throughput",
                        "input_lens",
                        "output_lens",
                        "ttfts",
                        "itls",
                        "errors",
                        "mean_ttft_ms",
                        "median_tpot_ms",
                        "std_itl_ms",
                        "p99_e2el_ms",
                        "p50_ttft_ms",
                        "cpu_model",
                        "normalised_flops_per_s"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_TRUE(j["max_concurrency"].is_null());
  EXPECT_TRUE(j["request_goodput"].is_null());
  EXPECT_EQ(j["errors"][1], "HTTP 500: x");
  EXPECT_DOUBLE_EQ(j["normalised_flops_per_s"].get<double>(), 12.0 * 2 * 1000);
}

TEST(BenchServeArrivals, GammaScheduleHasTheRightMeanAndShape) {
  const int64_t n = 20000;
  const double rate = 4.0;
  for (double b : {1.0, 0.5, 4.0}) {
    const std::vector<double> t = arrival_times(n, rate, b, 7);
    ASSERT_EQ(t.size(), static_cast<size_t>(n));
    EXPECT_GT(t[0], 0.0);                   // the first request waits its own gap, as in vLLM
    EXPECT_NEAR(t.back(), n / rate, 1e-9);  // rescaled: the offered load is exactly n / rate
    std::vector<double> gaps(n);
    double prev = 0;
    for (int64_t i = 0; i < n; ++i) gaps[i] = t[i] - prev, prev = t[i];
    for (double g : gaps) ASSERT_GE(g, 0.0);
    const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / n;
    double var = 0;
    for (double g : gaps) var += (g - mean) * (g - mean);
    var /= n;
    EXPECT_NEAR(mean, 1 / rate, 1e-12);
    // Gamma(shape k): squared coefficient of variation 1 / k.
    EXPECT_NEAR(var / (mean * mean), 1 / b, 0.15 / b) << "burstiness " << b;
    if (b == 1.0) {  // exponential: P(gap < mean) = 1 - 1/e
      const double below = std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g < mean; });
      EXPECT_NEAR(below / n, 1 - std::exp(-1.0), 0.02);
    }
  }
  EXPECT_EQ(arrival_times(50, 3, 1, 1), arrival_times(50, 3, 1, 1));
  EXPECT_NE(arrival_times(50, 3, 1, 1), arrival_times(50, 3, 1, 2));
  for (double x : arrival_times(10, INFINITY, 1, 0)) EXPECT_EQ(x, 0.0);
  const std::vector<double> even = arrival_times(4, 2, INFINITY, 0);
  EXPECT_NEAR(even[0], 0.5, 1e-12);
  EXPECT_NEAR(even[3], 2.0, 1e-12);
  EXPECT_THROW(arrival_times(4, 0, 1, 0), skv::InputError);
  EXPECT_THROW(arrival_times(4, -1, 1, 0), skv::InputError);
  EXPECT_THROW(arrival_times(4, 1, 0, 0), skv::InputError);
}

TEST(BenchServeDataset, RandomPromptsHaveExactLengths) {
  const auto tok = skv::tokenizer::Tokenizer::from_path(fixture_tokenizer());
  RandomOptions o;
  o.num_prompts = 40;
  o.input_len = 64;
  o.output_len = 16;
  o.prefix_len = 16;
  o.seed = 3;
  const auto reqs = random_requests(*tok, o);
  ASSERT_EQ(reqs.size(), 40u);
  const int64_t want = 16 + 64 - (tok->adds_bos() ? 1 : 0);
  std::vector<int32_t> first;
  for (const auto& r : reqs) {
    const auto ids = tok->encode(r.prompt, false, true);
    EXPECT_EQ(static_cast<int64_t>(ids.size()), r.prompt_len);
    EXPECT_EQ(r.prompt_len, want);
    EXPECT_EQ(r.output_len, 16);
    // The shared prefix: the prompts' first tokens agree (the last few may merge with what follows).
    if (first.empty()) first.assign(ids.begin(), ids.begin() + 8);
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 8), first);
  }
  EXPECT_NE(reqs[0].prompt, reqs[1].prompt);
  // Seeded: the same seed gives the same prompts.
  EXPECT_EQ(random_requests(*tok, o)[5].prompt, reqs[5].prompt);

  o.range_ratio = 0.5;
  o.prefix_len = 0;
  o.num_prompts = 60;
  int64_t lo = 1 << 30, hi = 0;
  for (const auto& r : random_requests(*tok, o)) {
    EXPECT_EQ(static_cast<int64_t>(tok->encode(r.prompt, false, true).size()), r.prompt_len);
    EXPECT_GE(r.prompt_len, 32);
    EXPECT_LE(r.prompt_len, 96);
    EXPECT_GE(r.output_len, 8);
    EXPECT_LE(r.output_len, 24);
    lo = std::min(lo, r.prompt_len), hi = std::max(hi, r.prompt_len);
  }
  EXPECT_LT(lo, hi);  // lengths do vary
  o.range_ratio = 1.0;
  EXPECT_THROW(random_requests(*tok, o), skv::InputError);
}

TEST(BenchServeDataset, SmolLM2PromptsHaveExactLengths) {
  const std::string path = std::string(SKV_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (scripts/fetch_model.sh)";
  const auto tok = skv::tokenizer::Tokenizer::from_path(path);
  RandomOptions o;
  o.num_prompts = 20;
  o.input_len = 256;
  o.seed = 11;
  for (const auto& r : random_requests(*tok, o)) {
    EXPECT_EQ(r.prompt_len, 256 - (tok->adds_bos() ? 1 : 0));
    EXPECT_EQ(static_cast<int64_t>(tok->encode(r.prompt, true, true).size()), 256);  // as the server counts
  }
}

TEST(BenchServeDataset, LossyUtf8) {
  EXPECT_EQ(lossy_utf8("ab\xC3\xA9"), "ab\xC3\xA9");
  EXPECT_EQ(lossy_utf8("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(lossy_utf8("\xFF"
                       "b"),
            "\xEF\xBF\xBD"
            "b");
}
