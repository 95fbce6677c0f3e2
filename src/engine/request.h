#pragma once
// What a caller asks of the engine and what it hears back. One request may ask for n samples
// of one prompt; every event names the request and which of its samples it is about.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/sampler.h"

namespace skv::engine {

using RequestId = uint64_t;

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 16;  // < 0: until the model length
  int64_t min_tokens = 0;   // EOS and stop ids are masked until this many tokens exist
  bool ignore_eos = false;
  std::vector<std::string> stop;  // stop strings (need a tokenizer); not part of the text
  std::vector<int32_t> stop_token_ids;
  int logprobs = -1;         // >= 0: log-prob of each sampled token and this many top alternatives (<= 20)
  int prompt_logprobs = -1;  // >= 0: the same for each prompt token after the first (exact on SwiftKV)
  // Prompt log-probs only for positions >= this (>= 1): a scorer of (context, continuation)
  // asks from the continuation on, so the context may come from the prefix cache.
  int64_t prompt_logprobs_from = 1;
  // With prompt log-probs: called on the engine's thread with the raw logits (vocab floats)
  // that predict each prompt position >= prompt_logprobs_from, for measurements that need
  // whole distributions (KL divergence) without the engine holding them. After a preemption a
  // position may be reported again, with the same values.
  std::function<void(int64_t position, const float* logits)> prompt_logits;
  int n = 1;               // samples of this prompt; they share its cached blocks
  bool detokenize = true;  // text deltas (needs a tokenizer)
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // best alternatives, most likely first
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

// Seconds on the engine's steady clock since it started.
struct Timing {
  double arrival = 0, scheduled = -1, first_token = -1, finished = -1;
};

struct Event {
  RequestId request = 0;
  int index = 0;                              // which of the request's n samples
  std::vector<int32_t> tokens;                // new tokens
  std::string text;                           // new text (held back while it may start a stop string)
  std::vector<TokenLogprob> logprobs;         // one per new token (when asked)
  std::vector<TokenLogprob> prompt_logprobs;  // with the first event (when asked): positions from ..
  bool finished = false;
  std::string finish_reason;  // "stop", "length" or "abort"
  std::string error;          // set when the request could not run (finish_reason "abort")
  Usage usage;                // complete when finished
  Timing timing;              // complete when finished
};

}  // namespace skv::engine
