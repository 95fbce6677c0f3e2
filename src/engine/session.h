#pragma once
// One sequence and its KV cache. Successive calls reuse the longest common prefix of the
// tokens already in the cache (multi-turn chat re-sends the whole conversation, and only
// the new turn is computed).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
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

class Session {
 public:
  Session(const model::LlamaModel& model, int64_t context_size, int64_t batch_size = 512);

  // Feeds `ids` after the cached prefix they share and returns the last position's logits
  // (on the model's device, valid until the next call).
  Tensor prefill(const std::vector<int32_t>& ids);
  GenerationResult generate(const std::vector<int32_t>& prompt, const GenerationOptions& opts,
                            const tokenizer::Tokenizer* tok,
                            const std::function<void(const std::string&)>& on_text = {});
  // Natural-log probability of ids[i] given ids[0..i) for i >= 1 (entry 0 is NaN); runs every
  // position through every layer.
  std::vector<double> score(const std::vector<int32_t>& ids);

  int64_t context_size() const { return cache_.capacity; }
  const std::vector<int32_t>& cached_tokens() const { return tokens_; }

 private:
  const model::LlamaModel& model_;
  model::ForwardContext ctx_;
  KVCache cache_;
  int64_t batch_size_;
  std::vector<int32_t> tokens_;  // what the cache holds, position by position
  int64_t last_prefill_computed_ = 0;
};

}  // namespace skv::engine
