#pragma once
// The three requests lm-evaluation-harness makes of a model (loglikelihood,
// loglikelihood_rolling, generate_until) on a LlamaModel. Tokenisation follows lm-eval's
// Hugging Face backend (TemplateLM._encode_pair, prefix_token_id) so the same strings are
// scored as the same token ids.
//
// Log-likelihoods are scored in batches (loglikelihood_batch): requests whose inputs share the
// tokens before the first scored one (an item's choices) form a group whose prefix is computed
// once, into a prefix cache that is kept after the call, so a few-shot preamble shared by
// consecutive items is computed once for all of them; every request then copies its group's
// prefix K/V and all requests' scored rows run together, one weight pass for many sequences.
// The single-request paths (loglikelihood, generate_until) keep the last sequence run in their
// own cache and compute only from the first token where a new one differs.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/kv_cache.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::eval {

struct EvalModelOptions {
  int64_t max_length = 2048;  // lm-eval max_length: inputs are left-truncated to it
  // Most rows (tokens) per forward call. The batched scorer also keeps the KV caches of one
  // batch within kCachePositionsPerBatchToken * batch_tokens positions (see cache_budget()).
  int64_t batch_tokens = 512;
  bool add_bos = true;  // encode with the tokenizer's default special tokens
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
  // loglikelihood() of every (ctx, cont) request, computed together: requests whose inputs
  // agree up to their first scored token share that prefix's computation, and the scored rows
  // of many requests run in one forward of at most batch_tokens rows. Results are those of
  // loglikelihood() up to float rounding (the same sums in the same order, over rows computed
  // in blocks of another size), and do not depend on the batch size beyond that.
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

  int64_t tokens_computed() const { return tokens_computed_; }  // rows run through the model
  const EvalModelOptions& options() const { return opts_; }

  // KV cache positions one batch of loglikelihood_batch may use, per batch token: enough for
  // the choices of a block of short items (each choice holds its context and continuation).
  static constexpr int64_t kCachePositionsPerBatchToken = 16;
  // The positions of the caches one batch uses (its groups' prefix caches plus one cache per
  // request) stay within this, except for a single request that alone needs more.
  int64_t cache_budget() const { return kCachePositionsPerBatchToken * opts_.batch_tokens; }
  // A group copies a shared prefix from another group of its batch, which costs another pass
  // over the weights, only when that saves at least this many rows.
  static constexpr int64_t kMinSharedRows = 32;
  // Positions held by the batched scorer's caches now (prefix caches and the request arena).
  int64_t cache_positions_held() const;

 private:
  // Makes the cache hold `ids` and hands over log-softmax rows for positions >= logits_from
  // (row i is the distribution of the token after ids[i]); positions before that run with
  // Logits::None, and the prefix the cache already holds is not run again.
  template <class RowFn>
  void run(const std::vector<int32_t>& ids, int64_t logits_from, RowFn&& row_fn);
  void reserve(int64_t positions);

  // A request of loglikelihood_batch after truncation: inputs inp, the last m of them scored;
  // inp[0, n - m) is its group's prefix.
  struct Prepared {
    std::vector<int32_t> inp;
    const std::vector<int32_t>* cont;
    int64_t m;
    size_t group;
    size_t index;  // in the caller's list
  };
  // Rows [from, to) of one sequence to run; the logits of its rows if `which` is All.
  struct Work {
    engine::KVCache* cache;
    const int32_t* ids;
    int64_t from, to;
    model::Logits which;
  };
  // Scores one batch (caches within cache_budget()); prefixes[g] is group g's prefix.
  void score_batch(const std::vector<const Prepared*>& reqs, const std::vector<std::vector<int32_t>>& prefixes,
                   std::vector<LoglikResult>& out);
  // Runs every work item in forward_batch calls of at most batch_tokens rows (a long one split
  // over consecutive calls); row_fn(item, position, log-softmax row, vocab) for All items.
  template <class RowFn>
  void run_batched(std::vector<Work>& work, RowFn&& row_fn);
  // The prefix cache for a group with this prefix: the free one (not `taken`) that holds the
  // longest part of it, grown if too small; its tokens are cut to that common part.
  size_t prefix_slot(const std::vector<int32_t>& prefix, std::vector<bool>& taken);

  const model::LlamaModel& model_;
  model::ForwardContext ctx_;
  const tokenizer::Tokenizer& tok_;
  EvalModelOptions opts_;
  int32_t prefix_ = 0;
  std::string prefix_text_;  // the prefix token decoded, for the starts-with-BOS rule
  engine::KVCache cache_;
  std::vector<int32_t> cached_;  // the tokens whose K/V the cache holds, position by position
  // Batched scoring: group prefix caches kept between calls with the tokens they hold, and
  // one allocation that the requests' caches are slices of.
  struct PrefixCache {
    engine::KVCache cache;
    std::vector<int32_t> tokens;
  };
  std::vector<PrefixCache> prefixes_;
  engine::KVCache arena_;
  int64_t tokens_computed_ = 0;
};

}  // namespace skv::eval
