// `swiftkv bench serve`: a load generator for OpenAI-compatible servers with the flags, the
// definitions and the result file of `vllm bench serve`, so figures measured against swiftkv,
// vLLM or llama-server compare directly (docs/serving.md, "Benchmarking a server").
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "bench/arrivals.h"
#include "bench/random_dataset.h"
#include "bench/serve_client.h"
#include "bench/serve_metrics.h"
#include "bench/serve_report.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/atomic_file.h"
#include "io/model_files.h"
#include "tokenizer/tokenizer.h"

namespace skv::cli {
namespace {

namespace fs = std::filesystem;
using bench::Clock;

const char* kHelp = R"(usage: swiftkv bench serve [--base-url URL | --host H --port P] [--endpoint PATH] [--model NAME]
                          [--tokenizer PATH] [--dataset-name random|jsonl] [--num-prompts N]
                          [--request-rate R] [--max-concurrency N] [--save-result] [flags]

Sends --num-prompts streamed requests to an OpenAI-compatible server (swiftkv serve, vLLM,
llama-server) at --request-rate and reports vLLM's serving figures: TTFT, TPOT, ITL, E2EL
(mean / median / std / percentiles), request, output and total token throughput, goodput.
Flags, definitions, table and result file are those of `vllm bench serve`.

server
  --base-url URL           http(s)://host:port[/prefix] (overrides --host / --port)
  --host H, --port P       default 127.0.0.1, 8000
  --endpoint PATH          /v1/completions (default) or /v1/chat/completions
  --backend NAME           openai | vllm (completions), openai-chat (chat completions)
  --model NAME             sent in each request (default: the first id from GET /v1/models)
  --api-key KEY            sent as Authorization: Bearer KEY (default: $OPENAI_API_KEY)
  --ready-check-timeout-sec S
                           the initial one-request test retries while the server answers 503
                           (loading), up to S seconds (600); 0 skips the test
data
  --tokenizer PATH         .gguf file or model directory: builds random prompts of exact token
                           lengths, counts output tokens when the server sends no usage, and
                           (a model file) gives the parameter count
  --dataset-name NAME      random (default) or jsonl
  --dataset-path FILE      jsonl: {"prompt": "...", "output_len": N} per line
  --num-prompts N          1000
  --random-input-len N     1024 (alias --input-len); tokens per prompt, BOS included
  --random-output-len N    128 (alias --output-len); max_tokens (jsonl: the default output_len)
  --random-range-ratio R   0.0; lengths uniform in [len * (1 - R), len * (1 + R)]
  --random-prefix-len N    0; random tokens shared by all prompts, before their own
  --seed N                 0; prompts and arrival times
  --ignore-eos             ask the server to ignore EOS (every answer is max_tokens long)
load
  --request-rate R         requests/s, or inf (default): all at once
  --burstiness B           1.0: Poisson arrivals; gaps are Gamma(shape B, mean 1/R)
  --max-concurrency N      at most N requests in flight (default: no limit)
  --num-warmups N          0; requests sent (and not measured) before the run
results
  --percentile-metrics L   ttft,tpot,itl (default; any of ttft,tpot,itl,e2el) to print
  --metric-percentiles L   99 (default); e.g. 25,50,99
  --goodput KEY:MS ...     SLOs (ttft, tpot, e2el in ms); goodput = requests meeting all per second
  --param-count N          parameters for the normalised figure (2 x N x total tokens/s);
                           default: counted from --tokenizer when it is a model file
  --save-result            write the result JSON (vLLM's keys)
  --save-detailed          also the generated texts
  --result-dir DIR, --result-filename NAME
                           where (default name: {backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json)
  --label NAME             the file name's prefix instead of the backend
  --disable-tqdm           no progress line
)";

// vLLM's --goodput takes several values ("--goodput ttft:500 tpot:50"); our flag parser takes one
// per flag, so they are collected here first.
std::vector<std::string> take_goodput(int argc, char** argv, std::vector<char*>& rest, bool& given) {
  std::vector<std::string> items;
  auto add = [&](const std::string& v) {
    for (std::string& item : split_commas(v))
      if (!item.empty()) items.push_back(std::move(item));
  };
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--goodput") {
      given = true;
      while (i + 1 < argc && argv[i + 1][0] != '-') add(argv[++i]);
    } else if (a.rfind("--goodput=", 0) == 0) {
      given = true;
      add(a.substr(10));
    } else {
      rest.push_back(argv[i]);
    }
  }
  return items;
}

// 135000000, 1.35e8, 135M, 8B.
int64_t parse_count(const std::string& s, const char* flag) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  const std::string suffix = end ? std::string(end) : "";
  if (suffix == "K" || suffix == "k")
    v *= 1e3;
  else if (suffix == "M")
    v *= 1e6;
  else if (suffix == "B" || suffix == "G")
    v *= 1e9;
  else if (!suffix.empty())
    fail(flag, " expects a count such as 135000000, 135M or 8B, got ", quote_bounded(s));
  if (s.empty() || errno == ERANGE || !std::isfinite(v) || v < 1 || v > 1e15)
    fail(flag, " expects a positive count, got ", quote_bounded(s));
  return static_cast<int64_t>(std::llround(v));
}

// The base model's parameters in a model file: every tensor once (tied embeddings share one),
// without SwiftKV's added projections, as the paper's normalised figure counts them.
int64_t parameters_in(const std::string& path) {
  const io::ModelFiles files = io::open_model_files(path);
  std::set<const void*> seen;
  int64_t n = 0;
  for (const auto& [name, t] : files.tensors)
    if (name.find("_swiftkv") == std::string::npos && seen.insert(t.data).second) n += t.numel();
  return n;
}

bool looks_like_model(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return fs::exists(fs::path(path) / "config.json", ec) &&
           (fs::exists(fs::path(path) / "model.safetensors", ec) ||
            fs::exists(fs::path(path) / "model.safetensors.index.json", ec));
  return path.size() > 5 && path.ends_with(".gguf");
}

std::string now_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

int64_t int_at_least(const Args& args, const char* flag, int64_t def, int64_t min) {
  const int64_t v = args.integer(flag, def);
  if (v < min) fail(flag, " must be >= ", min, ", got ", v);
  return v;
}

}  // namespace

int cmd_bench_serve(int argc, char** argv) {
  std::vector<char*> rest;
  bool goodput_given = false;
  const std::vector<std::string> goodput_items = take_goodput(argc, argv, rest, goodput_given);
  Args args(static_cast<int>(rest.size()), rest.data(),
            {"--base-url",
             "--host",
             "--port",
             "--endpoint",
             "--backend",
             "--model",
             "--tokenizer",
             "--api-key",
             "--dataset-name",
             "--dataset-path",
             "--num-prompts",
             "--random-input-len",
             "--random-output-len",
             "--random-range-ratio",
             "--random-prefix-len",
             "--seed",
             "--request-rate",
             "--burstiness",
             "--max-concurrency",
             "--num-warmups",
             "--percentile-metrics",
             "--metric-percentiles",
             "--param-count",
             "--result-dir",
             "--result-filename",
             "--label",
             "--ready-check-timeout-sec"},
            {"--help", "--ignore-eos", "--save-result", "--save-detailed", "--disable-tqdm"},
            {{"-h", "--help"}, {"--input-len", "--random-input-len"}, {"--output-len", "--random-output-len"}});
  if (args.flag("--help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");

  // Checked before anything is built or sent, so a typo costs nothing.
  bench::Target target;
  if (args.has("--base-url")) {
    if (args.has("--host") || args.has("--port")) fail("--base-url and --host / --port exclude each other");
    std::tie(target.origin, target.base_path) = bench::split_base_url(args.str("--base-url", ""));
  } else {
    const std::string host = args.str("--host", "127.0.0.1");
    const int64_t port = args.integer("--port", 8000);
    if (port < 1 || port > 65535) fail("--port must be in 1..65535, got ", port);
    if (host.empty() || host.find_first_of("/?#[] ") != std::string::npos)
      fail("--host ", quote_bounded(host), " is not a host name or address");
    target.origin =
        "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
  std::string backend = args.str("--backend", "");
  if (!backend.empty() && backend != "openai" && backend != "vllm" && backend != "openai-chat")
    fail("--backend must be openai, vllm or openai-chat, got ", quote_bounded(backend));
  target.endpoint = args.str("--endpoint", backend == "openai-chat" ? "/v1/chat/completions" : "/v1/completions");
  const auto ends_with = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.ends_with(t);
  };
  if (target.endpoint.empty() || target.endpoint[0] != '/' || !ends_with(target.endpoint, "completions"))
    fail("--endpoint ", quote_bounded(target.endpoint),
         " is not a completions endpoint (/v1/completions or /v1/chat/completions)");
  target.chat = ends_with(target.endpoint, "/chat/completions");
  if (backend == "openai-chat" && !target.chat)
    fail("--backend openai-chat needs a chat endpoint, got --endpoint ", target.endpoint);
  if ((backend == "openai" || backend == "vllm") && target.chat)
    fail("--backend ", backend, " sends completions, not to --endpoint ", target.endpoint,
         " (use --backend openai-chat)");
  target.ignore_eos = args.flag("--ignore-eos");
  if (const char* env = std::getenv("OPENAI_API_KEY"); env && *env) target.api_key = env;
  target.api_key = args.str("--api-key", target.api_key);

  const std::string dataset = args.str("--dataset-name", args.has("--dataset-path") ? "jsonl" : "random");
  if (dataset != "random" && dataset != "jsonl")
    fail("--dataset-name must be random or jsonl, got ", quote_bounded(dataset));
  if (dataset == "random" && args.has("--dataset-path")) fail("--dataset-path needs --dataset-name jsonl");
  if (dataset == "jsonl" && !args.has("--dataset-path")) fail("--dataset-name jsonl needs --dataset-path FILE");
  if (dataset == "jsonl")
    for (const char* f : {"--random-input-len", "--random-range-ratio", "--random-prefix-len"})
      if (args.has(f)) fail(f, " applies to --dataset-name random only");
  const int64_t num_prompts = int_at_least(args, "--num-prompts", 1000, 1);
  const double rate = args.real("--request-rate", INFINITY);
  if (!(rate > 0)) fail("--request-rate must be > 0 or inf, got '", args.str("--request-rate", ""), "'");
  const double burstiness = args.real("--burstiness", 1.0);
  if (!(burstiness > 0)) fail("--burstiness must be > 0, got '", args.str("--burstiness", ""), "'");
  const int64_t max_concurrency = args.has("--max-concurrency") ? int_at_least(args, "--max-concurrency", 1, 1) : 0;
  const int64_t warmups = int_at_least(args, "--num-warmups", 0, 0);
  const int64_t seed = int_at_least(args, "--seed", 0, 0);
  const double ready_timeout = args.real("--ready-check-timeout-sec", 600);
  if (!(ready_timeout >= 0)) fail("--ready-check-timeout-sec must be >= 0");
  bench::RunInfo info;
  info.percentile_metrics = bench::parse_metric_names(args.str("--percentile-metrics", "ttft,tpot,itl"));
  info.percentiles = bench::parse_percentiles(args.str("--metric-percentiles", "99"));
  if (goodput_given) info.slo = bench::parse_goodput(goodput_items);
  if (args.has("--param-count")) info.parameters = parse_count(args.str("--param-count", ""), "--param-count");
  const bool save = args.flag("--save-result");
  if (!save && (args.has("--result-dir") || args.has("--result-filename") || args.flag("--save-detailed")))
    fail("--result-dir, --result-filename and --save-detailed need --save-result");

  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (args.has("--tokenizer")) {
    const std::string path = args.str("--tokenizer", "");
    tok = tokenizer::Tokenizer::from_path(path);
    info.tokenizer_id = path;
    if (!info.parameters && looks_like_model(path)) {
      try {
        info.parameters = parameters_in(path);
      } catch (const Error& e) {
        std::fprintf(stderr, "bench serve: note: no parameter count from %s (%s); --param-count gives one\n",
                     path.c_str(), e.what());
      }
    }
  }
  std::vector<bench::SampleRequest> requests;
  if (dataset == "random") {
    if (!tok)
      fail(
          "--dataset-name random needs --tokenizer (a .gguf file or model directory) to build prompts of exact token "
          "lengths");
    bench::RandomOptions ro;
    ro.num_prompts = num_prompts;
    ro.input_len = args.integer("--random-input-len", 1024);
    ro.output_len = args.integer("--random-output-len", 128);
    ro.range_ratio = args.real("--random-range-ratio", 0.0);
    ro.prefix_len = args.integer("--random-prefix-len", 0);
    ro.seed = static_cast<uint64_t>(seed);
    requests = bench::random_requests(*tok, ro);
  } else {
    requests = bench::jsonl_requests(args.str("--dataset-path", ""), tok.get(), num_prompts,
                                     args.integer("--random-output-len", 128));
  }
  const std::vector<double> send_times =
      bench::arrival_times(num_prompts, rate, burstiness, static_cast<uint64_t>(seed));

  target.model = args.has("--model") ? args.str("--model", "") : bench::first_model_id(target);
  info.backend = target.chat ? "openai-chat" : "openai";
  info.label = args.str("--label", "");
  info.model_id = target.model;
  info.num_prompts = num_prompts;
  info.request_rate = rate;
  info.burstiness = burstiness;
  info.max_concurrency = max_concurrency;
  info.save_detailed = args.flag("--save-detailed");
  info.cpu_model = bench::cpu_model_name();

  // vLLM's initial test: one request with the first prompt shows that the flags fit the server
  // before a thousand requests fail the same way. A server still loading answers 503: wait.
  if (ready_timeout > 0) {
    std::printf("Starting initial single prompt test run...\n");
    std::fflush(stdout);
    const Clock::time_point t0 = Clock::now();
    while (true) {
      const bench::RequestOutput o = bench::send_request(target, requests[0], Clock::now());
      if (o.success) break;
      const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
      if (o.http_status != 503 || waited >= ready_timeout)
        fail("the initial test request to ", target.origin, target.base_path, target.endpoint, " failed: ", o.error,
             " (check --base-url or --host / --port, --endpoint and --model)");
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    std::printf("Initial test run completed.\n");
  }
  if (warmups > 0) {
    std::printf("Warming up with %lld requests...\n", static_cast<long long>(warmups));
    std::fflush(stdout);
    const std::vector<bench::SampleRequest> warm(static_cast<size_t>(warmups), requests[0]);
    bench::run_requests(target, warm, std::vector<double>(warm.size(), 0.0), max_concurrency, Clock::now(), {});
    std::printf("Warmup run completed.\n");
  }
  std::printf("Starting main benchmark run...\n");
  std::printf("Traffic request rate: %s\n", bench::py_float(rate).c_str());
  std::printf("Burstiness factor: %s (%s)\n", bench::py_float(burstiness).c_str(),
              burstiness == 1.0 ? "Poisson process" : "Gamma distribution");
  std::printf("Maximum request concurrency: %s\n",
              max_concurrency > 0 ? std::to_string(max_concurrency).c_str() : "None");
  std::fflush(stdout);

  info.date = now_stamp();
  Progress progress("bench serve", "requests", num_prompts, 0, !args.flag("--disable-tqdm"));
  std::mutex progress_mu;
  const Clock::time_point start = Clock::now();
  std::vector<bench::RequestOutput> outputs =
      bench::run_requests(target, requests, send_times, max_concurrency, start, [&](const bench::RequestOutput&) {
        std::lock_guard<std::mutex> lock(progress_mu);
        progress.advance();
      });
  const double duration = std::chrono::duration<double>(Clock::now() - start).count();
  progress.finish();

  std::function<int64_t(const std::string&)> count;
  if (tok) count = [&](const std::string& text) { return static_cast<int64_t>(tok->encode(text, false, true).size()); };
  bench::resolve_output_tokens(outputs, count);
  const bench::Metrics m = bench::calculate_metrics(outputs, duration, info.percentiles, info.slo);

  std::vector<const bench::RequestOutput*> failed;
  for (const auto& o : outputs)
    if (!o.success) failed.push_back(&o);
  if (!failed.empty()) {
    std::printf("Failed requests during benchmark run detected (capping to 10):\n");
    for (size_t i = 0; i < failed.size() && i < 10; ++i) std::printf("Error %zu: %s\n", i, failed[i]->error.c_str());
  }
  std::fputs(bench::format_table(m, info).c_str(), stdout);
  std::fflush(stdout);

  if (save) {
    std::string path = args.str("--result-filename", bench::default_result_filename(info));
    if (args.has("--result-dir")) {
      const std::string dir = args.str("--result-dir", "");
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) fail("cannot create --result-dir ", quote_bounded(dir), ": ", ec.message());
      path = (fs::path(dir) / path).string();
    }
    const nlohmann::json j = bench::result_json(m, outputs, info);
    io::write_file_atomic(path, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    std::fprintf(stderr, "bench serve: results written to %s\n", path.c_str());
  }
  if (m.completed == 0)
    fail("all ", num_prompts, " requests failed; the first: ", failed.empty() ? std::string("?") : failed[0]->error);
  return 0;
}

}  // namespace skv::cli
