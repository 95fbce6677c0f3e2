#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace skv::cli {

static const char* kChatHelp =
    R"(usage: swiftkv chat --model PATH [--system TEXT] [sampling flags] [-t N] [-c N] [--no-swiftkv]

Reads one user message per line from standard input and streams the reply.
Type /reset to start over, /exit (or end of input) to quit. The conversation is rendered with
the model's own chat template; its KV cache is reused from turn to turn.
)";

int cmd_chat(int argc, char** argv) {
  Args args(argc, argv, join({kModelFlags, kSamplingFlags, kCacheFlags, {"--system"}}),
            join({kSamplingBoolFlags, kModelBoolFlags, kEngineBoolFlags, {"--help"}}), kAliases);
  if (args.flag("--help")) {
    std::fputs(kChatHelp, stdout);
    std::fputs(kCacheHelp, stdout);
    return 0;
  }
  engine::GenerationOptions opts = generation_options(args, 0.8);
  if (!args.has("--max-tokens")) opts.max_tokens = 1024;
  LoadedModel m = load_model(args, true);
  const tokenizer::Tokenizer& tok = *m.tokenizer;
  const std::string tmpl = tok.chat_template();
  if (tmpl.empty())
    fail("the model has no chat template (tokenizer_config.json chat_template / GGUF tokenizer.chat_template)");
  auto tok_str = [&](std::optional<int32_t> id) { return id ? tok.token_text(*id) : std::string(); };
  const std::string bos = tok_str(tok.bos_id()), eos = tok_str(tok.eos_id());

  std::vector<tokenizer::ChatMessage> messages;
  if (auto sys = args.opt("--system")) messages.push_back({"system", *sys});
  const size_t base = messages.size();
  engine::Session session(*m.model, m.context_size, m.batch_size, &tok, engine_options(args));
  const bool tty = isatty(0);
  std::string line;
  while (true) {
    if (tty) std::fputs("\n> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.resize(base);
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    std::vector<int32_t> prompt =
        tok.encode(tokenizer::apply_chat_template(tmpl, messages, true, bos, eos), false, true);
    if (static_cast<int64_t>(prompt.size()) >= m.context_size) {
      std::fprintf(stderr, "error: the conversation (%zu tokens) no longer fits the context of %lld; use /reset\n",
                   prompt.size(), static_cast<long long>(m.context_size));
      messages.pop_back();
      continue;
    }
    engine::GenerationResult r = session.generate(prompt, opts, [](const std::string& s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    });
    std::fputc('\n', stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", r.text});
  }
  return 0;
}

}  // namespace skv::cli
