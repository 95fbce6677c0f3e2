#pragma once
// One conversation at a time on the engine core: a thin synchronous client for commands that
// run one sequence (generate, chat, score). Successive calls share their common prefix through
// the engine's prefix cache (multi-turn chat re-sends the whole conversation, and only the new
// turn is computed).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::engine {

struct GenerationOptions {
  SamplingParams sampling;
  int64_t max_tokens = 256;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids, including a final EOS / stop token if one ended it
  std::string text;             // detokenised output without the stop token / stop string
  std::string finish_reason;    // "stop" or "length"
  int64_t prompt_tokens = 0;
  int64_t prompt_tokens_computed = 0;  // after prefix reuse
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_flops = 0;  // executed by the prompt's forward passes (LlamaModel::flops)
};

// The request a GenerationOptions describes.
Request make_request(const std::vector<int32_t>& prompt, const GenerationOptions& opts);

class Session {
 public:
  // context_size: the longest sequence (the KV pool holds exactly one); batch_size: prompt
  // tokens per step. `tok` (may be null) detokenises and matches stop strings. From `base` the
  // session takes the cache's form (--kv-cache-dtype, --block-size, prefix caching); it sets
  // the sizes itself.
  Session(const model::LlamaModel& model, int64_t context_size, int64_t batch_size = 512,
          const tokenizer::Tokenizer* tok = nullptr, const EngineOptions& base = {});

  GenerationResult generate(const std::vector<int32_t>& prompt, const GenerationOptions& opts,
                            const std::function<void(const std::string&)>& on_text = {});
  // Natural-log probability of ids[i] given ids[0..i) for i >= 1 (entry 0 is NaN); runs every
  // position through every layer.
  std::vector<double> score(const std::vector<int32_t>& ids);

  int64_t context_size() const { return engine_->max_model_len(); }
  Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
};

}  // namespace skv::engine
