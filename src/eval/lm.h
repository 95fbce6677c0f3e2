#pragma once
// The three requests lm-evaluation-harness makes of a model (loglikelihood,
// loglikelihood_rolling, generate_until) on a LlamaModel. Tokenisation follows lm-eval's
// Hugging Face backend (TemplateLM._encode_pair, prefix_token_id) so the same strings are
// scored as the same token ids.
//
// Every request runs on the engine core (engine/engine.h) like the other commands' requests: a
// log-likelihood is a prompt of context + continuation that asks for prompt log-probs from the
// continuation on, and a generation is a greedy request with stop strings. The engine's prefix
// cache, kept between calls, gives an item's choices their shared context and consecutive items
// their few-shot preamble without computing it again.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::eval {

struct EvalModelOptions {
  int64_t max_length = 2048;  // lm-eval max_length: inputs are left-truncated to it
  // Most rows (tokens) per forward call: the engine's max_num_batched_tokens. The KV pool is
  // sized from it too (kPoolTokensPerBatchToken), larger only for an input that needs it.
  int64_t batch_tokens = 512;
  bool add_bos = true;          // encode with the tokenizer's default special tokens
  DType kv_dtype = DType::F32;  // --kv-cache-dtype
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
  EvalModel(const model::LlamaModel& model, const tokenizer::Tokenizer& tok, EvalModelOptions opts);
  ~EvalModel();

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
  // loglikelihood() of every (ctx, cont) request, submitted to the engine together so their rows
  // share forward passes. Results are those of loglikelihood() up to float rounding (the same
  // sums in the same order, over rows computed in steps of another composition).
  using Request = std::pair<std::vector<int32_t>, std::vector<int32_t>>;
  std::vector<LoglikResult> loglikelihood_batch(const std::vector<Request>& requests);
  std::vector<LoglikResult> loglikelihoods(const std::string& context, const std::vector<std::string>& continuations);
  // Sum of ln p over every token of encode(text) in lm-eval's rolling windows of max_length
  // with one token of context, the first conditioned on the prefix token. *tokens gets the
  // token count.
  double loglikelihood_rolling(const std::string& text, int64_t* tokens = nullptr);
  // Greedy continuation of `context` until a stop string, an EOS token or max_tokens; the
  // prompt is left-truncated to max_length - max_tokens like lm-eval's generate_until.
  GenerateResult generate_until(const std::string& context, const std::vector<std::string>& until, int64_t max_tokens);

  // Rows run through the model (prompt and decode rows; prefix-cache hits are not computed).
  int64_t tokens_computed() const;
  const EvalModelOptions& options() const { return opts_; }
  // The engine the requests run on now (a longer input than it holds replaces it).
  const engine::Engine& engine() const { return *engine_; }

  // KV pool positions per batch token: room for the requests of one step and for the prefix
  // cache to keep the blocks of the contexts that the next items share.
  static constexpr int64_t kPoolTokensPerBatchToken = 16;

 private:
  // The engine, with a new, larger pool if a sequence of `tokens` positions does not fit.
  engine::Engine& engine_for(int64_t tokens);

  const model::LlamaModel& model_;
  const tokenizer::Tokenizer& tok_;
  EvalModelOptions opts_;
  int32_t prefix_ = 0;
  std::string prefix_text_;  // the prefix token decoded, for the starts-with-BOS rule
  std::unique_ptr<engine::Engine> engine_;
  int64_t rows_before_ = 0;  // rows computed by the engines replaced so far
};

}  // namespace skv::eval
