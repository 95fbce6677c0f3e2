#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace skv::cli {

static const char* kGenerateHelp = R"(usage: swiftkv generate --model PATH (--prompt TEXT | --token-ids 1,2,3) [flags]

  -m, --model PATH          HF model directory or .gguf file
  -p, --prompt TEXT         prompt text (tokenised with the model's tokenizer, BOS added if the model wants it)
      --token-ids LIST      prompt as comma-separated token ids (no tokenizer needed)
      --chat-template       wrap --prompt as a user message in the model's chat template
  -n, --max-tokens N        tokens to generate (default 256)
      --temperature, --temp T   0 = greedy (default 0.8)
      --top-k K (40)  --top-p P (0.95)  --min-p P (0.05)  -s, --seed S
      --repetition-penalty R  --presence-penalty P  --frequency-penalty F
      --stop STR (repeatable)  --stop-token-ids LIST  --ignore-eos
  -t, --threads N           CPU threads (default: all cores)
  -c, --ctx-size N          context size (default min(4096, model max))
  -b, --batch-size N        prompt tokens per forward pass (default 512)
      --no-swiftkv          run a SwiftKV checkpoint's teacher path (every layer computes its K/V)
      --fp8-activations M   FP8 checkpoints: f32 (default) or fp8, activations quantised to
                            E4M3 per token as GPU FP8 serving does (docs/fp8.md)
      --json                print one JSON object {token_ids, text, finish_reason, usage, timings}
)";

int cmd_generate(int argc, char** argv) {
  Args args(argc, argv, join({kModelFlags, kSamplingFlags, kCacheFlags, {"--prompt", "--token-ids"}}),
            join({kSamplingBoolFlags, kModelBoolFlags, kEngineBoolFlags, {"--json", "--help", "--chat-template"}}),
            kAliases);
  if (args.flag("--help")) {
    std::fputs(kGenerateHelp, stdout);
    std::fputs(kCacheHelp, stdout);
    return 0;
  }
  if (args.has("--prompt") == args.has("--token-ids")) fail("give exactly one of --prompt or --token-ids");
  engine::GenerationOptions opts = generation_options(args, 0.8);
  LoadedModel m = load_model(args, args.has("--prompt"));

  std::vector<int32_t> prompt;
  if (auto ids = args.opt("--token-ids")) {
    prompt = parse_id_list(*ids, "--token-ids");
  } else {
    std::string text = args.required("--prompt");
    if (args.flag("--chat-template")) {
      const std::string tmpl = m.tokenizer->chat_template();
      if (tmpl.empty()) fail("--chat-template: the model has no chat template");
      auto tok_str = [&](std::optional<int32_t> id) { return id ? m.tokenizer->token_text(*id) : std::string(); };
      text = tokenizer::apply_chat_template(tmpl, {{"user", text}}, true, tok_str(m.tokenizer->bos_id()),
                                            tok_str(m.tokenizer->eos_id()));
      prompt = m.tokenizer->encode(text, false, true);
    } else {
      prompt = m.tokenizer->encode(text, true, true);
    }
  }
  if (prompt.empty()) fail("the prompt is empty");
  const bool json = args.flag("--json");
  engine::Session session(*m.model, m.context_size, m.batch_size, m.tokenizer.get(), engine_options(args));
  engine::GenerationResult r = session.generate(prompt, opts, [&](const std::string& s) {
    if (!json) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    }
  });
  if (json) {
    nlohmann::json j;
    j["token_ids"] = r.tokens;
    j["text"] = r.text;
    j["finish_reason"] = r.finish_reason;
    j["prompt_token_ids"] = prompt;
    j["usage"] = {{"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.tokens.size()}};
    j["timings"] = {{"prefill_seconds", r.prefill_seconds},
                    {"decode_seconds", r.decode_seconds},
                    {"prefill_gflops", r.prefill_flops / 1e9}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::fputc('\n', stdout);
    const double pp = r.prefill_seconds > 0 ? r.prompt_tokens_computed / r.prefill_seconds : 0;
    const double tg = r.decode_seconds > 0 && r.tokens.size() > 1 ? (r.tokens.size() - 1) / r.decode_seconds : 0;
    std::fprintf(stderr, "\n[%lld prompt tokens: %.1f tok/s | %zu generated: %.1f tok/s | finish: %s]\n",
                 static_cast<long long>(r.prompt_tokens), pp, r.tokens.size(), tg, r.finish_reason.c_str());
  }
  return 0;
}

}  // namespace skv::cli
