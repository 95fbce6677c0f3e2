#pragma once
// The three requests lm-evaluation-harness makes of a model (loglikelihood,
// loglikelihood_rolling, generate_until), on one LlamaModel sequence at a time. Tokenisation
// follows lm-eval's Hugging Face backend (TemplateLM._encode_pair, prefix_token_id) so the
// same strings are scored as the same token ids.
//
// The KV cache keeps the last sequence run; a request only computes from the first token
// where it differs. So an item's context is computed once and each of its continuations
// runs [last context token] + continuation[:-1] on top of it, and a few-shot preamble shared
// by consecutive items is computed once for all of them.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/kv_cache.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::eval {

struct EvalModelOptions {
  int64_t max_length = 2048;   // lm-eval max_length: inputs are left-truncated to it
  int64_t batch_tokens = 512;  // most tokens per forward call
  bool add_bos = true;         // encode with the tokenizer's default special tokens
};

struct LoglikResult {
  double loglik = 0;       // sum of ln p(continuation token | everything before it)
  bool is_greedy = false;  // every continuation token is the argmax at its position
  int64_t tokens = 0;      // continuation tokens scored
};

struct GenerateResult {
  std::string text;  // up to (not including) the first stop string
  int64_t tokens = 0;
};

class EvalModel {
 public:
  EvalModel(LlamaModel& model, const Tokenizer& tok, EvalModelOptions opts);

  // The tokenizer's default special tokens (none without opts.add_bos), and none for text that
  // starts with the prefix token's text, as lm-eval 0.4.13's tok_encode.
  std::vector<int32_t> encode(const std::string& text) const;
  // lm-eval's prefix for an empty context and for rolling windows: BOS, else EOS.
  int32_t prefix_token() const { return prefix_; }
  // lm-eval's _encode_pair: trailing whitespace of the context moves to the continuation,
  // then continuation = encode(context + continuation)[len(encode(context)):]. An empty
  // context becomes [prefix_token] and the continuation is encoded without special tokens
  // (minus a leading prefix token, which then is the context).
  std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const std::string& context,
                                                                    const std::string& continuation) const;

  // ln p(cont | ctx), inputs left-truncated like lm-eval ((ctx + cont)[-(max_length + 1):][:-1]).
  LoglikResult loglikelihood(const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont);
  std::vector<LoglikResult> loglikelihoods(const std::string& context, const std::vector<std::string>& continuations);
  // Sum of ln p over every token of encode(text) in lm-eval's rolling windows of max_length
  // with one token of context, the first conditioned on the prefix token. *tokens gets the
  // token count.
  double loglikelihood_rolling(const std::string& text, int64_t* tokens = nullptr);
  // Greedy continuation of `context` until a stop string, an EOS token or max_tokens; the
  // prompt is left-truncated to max_length - max_tokens like lm-eval's generate_until.
  GenerateResult generate_until(const std::string& context, const std::vector<std::string>& until, int64_t max_tokens);

  int64_t tokens_computed() const { return tokens_computed_; }  // rows run through the model
  const EvalModelOptions& options() const { return opts_; }

 private:
  // Makes the cache hold `ids` and hands over log-softmax rows for positions >= logits_from
  // (row i is the distribution of the token after ids[i]); positions before that run with
  // Logits::None, and the prefix the cache already holds is not run again.
  template <class RowFn>
  void run(const std::vector<int32_t>& ids, int64_t logits_from, RowFn&& row_fn);
  void reserve(int64_t positions);

  LlamaModel& model_;
  const Tokenizer& tok_;
  EvalModelOptions opts_;
  int32_t prefix_ = 0;
  std::string prefix_text_;  // the prefix token decoded, for the starts-with-BOS rule
  KVCache cache_;
  std::vector<int32_t> cached_;  // the tokens whose K/V the cache holds, position by position
  int64_t tokens_computed_ = 0;
};

}  // namespace skv::eval
