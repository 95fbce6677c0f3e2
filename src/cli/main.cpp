#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "backend/cpu/blas_kernels.h"
#include "cli/commands.h"
#include "core/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"generate", skv::cli::cmd_generate, "generate text from a prompt or token ids"},
    {"chat", skv::cli::cmd_chat, "interactive chat using the model's chat template"},
    {"score", skv::cli::cmd_score, "log-probability of each token given its prefix"},
    {"tokenize", skv::cli::cmd_tokenize, "text -> token ids"},
    {"detokenize", skv::cli::cmd_detokenize, "token ids -> text"},
    {"chat-template", skv::cli::cmd_chat_template, "render the chat template for a list of messages"},
    {"info", skv::cli::cmd_info, "architecture, shapes, dtypes, parameter count, memory"},
    {"perplexity", skv::cli::cmd_perplexity, "perplexity of a text; KL divergence between KV cache dtypes"},
    {"bench", skv::cli::cmd_bench, "llama-bench style pp/tg throughput; `bench serve`: load-test a server (vLLM's)"},
    {"convert", skv::cli::cmd_convert, "turn a model into a SwiftKV checkpoint"},
    {"eval", skv::cli::cmd_eval, "benchmarks (ARC, MMLU, GSM8K, ...) with lm-eval prompts and metrics"},
    {"generate-data", skv::cli::cmd_generate_data, "self-distillation data: the teacher's sampled answers to prompts"},
    {"serve", skv::cli::cmd_serve, "OpenAI-compatible HTTP server (vLLM's API) with continuous batching"},
    {"run-batch", skv::cli::cmd_run_batch, "OpenAI requests from a JSONL file, answered offline (vLLM's batch format)"},
    {"distill", skv::cli::cmd_distill, "train a SwiftKV checkpoint to match its teacher (KL + hidden MSE)"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: swiftkv <command> [flags]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-14s %s\n", c.name, c.help);
  std::fprintf(out,
               "\n`swiftkv <command> --help` lists a command's flags.\n"
               "\nexit status: 0 success; 1 invalid input (flags, files, values); 2 no or unknown command;\n"
               "3 resource exhausted (context or KV cache full, out of memory); 4 internal error (a bug).\n");
}

// Scripts branch on the status: retrying with a larger --ctx-size helps after 3 and nothing but
// a fix helps after 4, so each kind has its own.
int exit_status(skv::ErrorKind kind) {
  switch (kind) {
    case skv::ErrorKind::Input:
      return 1;
    case skv::ErrorKind::Resource:
      return 3;
    case skv::ErrorKind::Internal:
      return 4;
  }
  return 1;
}

int report(const char* command, skv::ErrorKind kind, const char* what) {
  const char* label = kind == skv::ErrorKind::Internal ? "internal error" : "error";
  std::fprintf(stderr, "swiftkv %s: %s: %s\n", command, label, skv::bound_message(what).c_str());
  return exit_status(kind);
}

}  // namespace

int main(int argc, char** argv) {
  // Past the file size limit (ulimit -f) a write raises SIGXFSZ, whose default action kills the
  // process before it can say which file failed or remove its temporary files; ignored, the write
  // fails with EFBIG and is reported like a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
  skv::backend::cpu::select_blas_kernels(argv);
  if (argc < 2) {
    std::fprintf(stderr, "swiftkv: error: no command given\n");
    usage(stderr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    usage(stdout);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const skv::Error& e) {
      return report(c.name, e.kind(), e.what());
    } catch (const std::bad_alloc&) {
      return report(c.name, skv::ErrorKind::Resource, "out of memory");
    } catch (const std::exception& e) {
      // Not ours (a library's parse or filesystem error): most likely a file or value we did not
      // check, so it keeps the invalid-input status the CLI has always given it.
      return report(c.name, skv::ErrorKind::Input, skv::printable(e.what()).c_str());
    }
  }
  std::fprintf(stderr, "swiftkv: error: unknown command %s (see swiftkv --help)\n",
               skv::printable(skv::quote_bounded(name, 60)).c_str());
  return 2;
}
