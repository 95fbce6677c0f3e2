#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

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
    {"bench", skv::cli::cmd_bench, "llama-bench style pp/tg throughput"},
    {"convert", skv::cli::cmd_convert, "turn a model into a SwiftKV checkpoint"},
    {"eval", skv::cli::cmd_eval, "benchmarks (ARC, MMLU, GSM8K, ...) with lm-eval prompts and metrics"},
    {"generate-data", skv::cli::cmd_generate_data, "self-distillation data: the teacher's sampled answers to prompts"},
    {"distill", skv::cli::cmd_distill, "train a SwiftKV checkpoint to match its teacher (KL + hidden MSE)"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: swiftkv <command> [flags]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-14s %s\n", c.name, c.help);
  std::fprintf(out, "\n`swiftkv <command> --help` lists a command's flags.\n");
}

}  // namespace

int main(int argc, char** argv) {
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
      std::fprintf(stderr, "swiftkv %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "swiftkv %s: error: out of memory\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "swiftkv %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "swiftkv: error: unknown command '%s' (see swiftkv --help)\n", skv::printable(name).c_str());
  return 2;
}
