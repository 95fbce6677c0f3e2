// swiftkv serve: the OpenAI-compatible server. The port is bound before the model loads, so
// /health can say 503 while it does; SIGTERM / SIGINT drain the running requests (bounded) and
// exit 0.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "io/read_file.h"
#include "server/http_server.h"
#include "skv_git_commit.h"

namespace skv::cli {
namespace {

int g_signal_pipe[2] = {-1, -1};

// Async-signal-safe: only write(2), with errno kept for the interrupted thread.
void on_stop_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

const char* kServeHelp = R"(usage: swiftkv serve --model PATH [flags]

OpenAI-compatible HTTP server (vLLM's surface): /v1/completions, /v1/chat/completions (both
streamed with "stream": true), /v1/models, /tokenize, /detokenize, /tokenizer_info, /health,
/version, /metrics (Prometheus). One line on stdout when ready; SIGTERM or SIGINT finishes the
running requests (up to --shutdown-timeout seconds) and exits 0.

  -m, --model PATH          HF model directory or .gguf file
      --host ADDR           address to bind (default 127.0.0.1: this machine only)
      --port N              port (default 8000; 0 = any free port, printed in the ready line)
      --served-model-name NAME  the model's name in the API (default: the file or directory name)
      --api-key KEY         require 'Authorization: Bearer KEY' or 'X-Api-Key: KEY' on the API
                            routes (default: $SWIFTKV_API_KEY if set); /health, /version and
                            /metrics stay open
      --api-key-guards-metrics  /metrics needs the key too
      --max-waiting-requests N  requests queued beyond the running batch before new ones get
                            503 + Retry-After (default 256)
      --max-body-bytes N    larger request bodies get 413 (default 32MiB)
      --allowed-origins LIST  CORS: "*" or comma-separated origins (default: no CORS headers)
      --chat-template FILE  Jinja chat template instead of the model's
      --shutdown-timeout S  seconds running requests get to finish on SIGTERM (default 30)
      --stats-interval S    seconds between stats lines on stderr (default 10; 0 = none)
      --no-swiftkv          run a SwiftKV checkpoint's teacher path
  -t, --threads N           CPU threads (default: all cores)
)";

}  // namespace

int cmd_serve(int argc, char** argv) {
  Args args(argc, argv,
            join({kModelFlags,
                  kEngineFlags,
                  {"--host", "--port", "--served-model-name", "--api-key", "--max-waiting-requests", "--max-body-bytes",
                   "--allowed-origins", "--chat-template", "--shutdown-timeout", "--stats-interval"}}),
            join({kModelBoolFlags, kEngineBoolFlags, {"--help", "--api-key-guards-metrics"}}), kAliases);
  if (args.flag("--help")) {
    std::fputs(kServeHelp, stdout);
    std::fputs(kEngineHelp, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument ", quote_bounded(args.positional()[0]), " (see --help)");
  if (!args.has("--model")) fail("missing required flag --model (see --help)");
  server::ServerOptions so;
  so.host = args.str("--host", so.host);
  const int64_t port = args.integer("--port", so.port);
  if (port < 0 || port > 65535) fail("--port must be in 0..65535, got ", port);
  so.port = static_cast<int>(port);
  so.api_key = args.str("--api-key", "");
  if (so.api_key.empty())
    if (const char* env = std::getenv("SWIFTKV_API_KEY"); env) so.api_key = env;
  so.guard_metrics = args.flag("--api-key-guards-metrics");
  so.max_waiting_requests = args.integer("--max-waiting-requests", 256);
  if (so.max_waiting_requests < 1 || so.max_waiting_requests > 100000)
    fail("--max-waiting-requests must be in 1..100000, got ", so.max_waiting_requests);
  if (auto b = args.opt("--max-body-bytes")) {
    try {
      so.max_body_bytes = static_cast<size_t>(engine::parse_bytes(*b));
    } catch (const Error& e) {
      fail("--max-body-bytes: ", e.what());
    }
  }
  so.allowed_origins = args.str("--allowed-origins", "");
  so.stats_interval_s = args.real("--stats-interval", 10);
  if (!(so.stats_interval_s >= 0)) fail("--stats-interval must be >= 0");
  const double shutdown_timeout = args.real("--shutdown-timeout", 30);
  if (!(shutdown_timeout >= 0)) fail("--shutdown-timeout must be >= 0");
  so.version = SKV_GIT_COMMIT;
  const engine::EngineOptions eopts = engine_options(args);
  const std::string chat_template_file = args.str("--chat-template", "");
  std::string chat_template_text;
  if (!chat_template_file.empty()) chat_template_text = io::read_file(chat_template_file);

  // SIGINT / SIGTERM go to a handler that writes the signal to a pipe, read by one thread. Masking
  // the signals and calling sigwait is not enough: OpenBLAS starts its threads before main with
  // nothing blocked, and a process-directed signal delivered to one of them would kill the server.
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) fail_resource("cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A client that disconnects mid-write must not kill the server.
  signal(SIGPIPE, SIG_IGN);

  // The signal thread runs from the start: while the model loads there is nothing to drain and a
  // user pressing Ctrl-C must not wait for a large model to finish loading.
  struct SignalState {
    std::mutex mu;
    bool loaded = false;
    std::promise<int> signalled;
  };
  // Shared with the detached thread, which outlives this frame when loading fails.
  auto sig_state = std::make_shared<SignalState>();
  std::future<int> signal_future = sig_state->signalled.get_future();
  std::thread([sig_state] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) != 1) {
    }
    std::lock_guard<std::mutex> lock(sig_state->mu);
    if (!sig_state->loaded) {
      std::fprintf(stderr, "serve: %s while loading the model, exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
      std::fflush(stderr);
      std::_Exit(0);
    }
    sig_state->signalled.set_value(sig);
  }).detach();

  server::Server srv(so);
  srv.start();
  std::fprintf(stderr, "serve: listening on http://%s:%d (loading the model; /health answers 503 until ready)\n",
               so.host.c_str(), srv.port());
  LoadedModel m = load_model(args, true);
  engine::Engine eng(*m.model, m.tokenizer.get(), eopts);
  std::fprintf(stderr, "serve: %s\n", eng.describe().c_str());
  server::ApiContext ctx;
  ctx.tok = m.tokenizer.get();
  ctx.model_name = args.str("--served-model-name", std::filesystem::path(args.required("--model")).filename().string());
  ctx.chat_template = chat_template_file.empty() ? m.tokenizer->chat_template() : chat_template_text;
  ctx.max_model_len = eng.max_model_len();
  ctx.extra_stop_ids = server::end_of_turn_ids(*m.tokenizer);
  srv.attach(eng, ctx);
  std::printf("swiftkv serve: ready on http://%s:%d (model %s)\n", so.host.c_str(), srv.port(), ctx.model_name.c_str());
  std::fflush(stdout);
  {
    std::lock_guard<std::mutex> lock(sig_state->mu);
    sig_state->loaded = true;
  }

  const int sig = signal_future.get();
  std::fprintf(stderr, "serve: %s, finishing running requests (up to %.0f s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
               shutdown_timeout);
  srv.shutdown(shutdown_timeout);
  std::fprintf(stderr, "serve: stopped\n");
  return 0;
}

}  // namespace skv::cli
