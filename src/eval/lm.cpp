#include "eval/lm.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "core/error.h"
#include "eval/pystr.h"
#include "eval/rolling.h"

namespace skv::eval {
namespace {

void check_options(const EvalModelOptions& o) {
  if (o.max_length < 2) fail("the evaluation context (max length) must be at least 2 tokens, got ", o.max_length);
  if (o.batch_tokens <= 0) fail("--batch-tokens must be positive, got ", o.batch_tokens);
}

int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

}  // namespace

EvalModel::EvalModel(const model::LlamaModel& model, const tokenizer::Tokenizer& tok, EvalModelOptions opts)
    : model_(model), tok_(tok), opts_(opts) {
  check_options(opts_);
  if (auto bos = tok.bos_id()) {
    prefix_ = *bos;
  } else if (auto eos = tok.eos_id()) {
    prefix_ = *eos;
  } else if (!model.config().eos_token_ids.empty()) {
    prefix_ = static_cast<int32_t>(model.config().eos_token_ids.front());
  } else {
    fail("the tokenizer has neither a BOS nor an EOS token to condition the first token on");
  }
  prefix_text_ = tok.decode({prefix_}, false);
  engine_for(1);
}

EvalModel::~EvalModel() = default;

engine::Engine& EvalModel::engine_for(int64_t tokens) {
  if (engine_ && engine_->max_model_len() >= tokens) return *engine_;
  // The pool is what one step's requests and the contexts kept for the next items need, not a
  // share of the machine (the evaluation runs beside other work), and it grows, like the old
  // contiguous caches did, only when an input needs more: a model's max_length may be 128k
  // positions that no task item comes near. Growing starts a new engine, whose prefix cache
  // starts empty.
  const int64_t cap = std::max(tokens, opts_.max_length + 1) + opts_.batch_tokens;
  int64_t positions = std::max(kPoolTokensPerBatchToken * opts_.batch_tokens, tokens + opts_.batch_tokens);
  if (engine_) {
    positions = std::max(positions, std::min(2 * engine_->max_model_len(), cap));
    const engine::EngineCounters c = engine_->counters();
    rows_before_ += c.prompt_rows + c.decode_rows;
    engine_.reset();  // its pool goes before the bigger one is made
  }
  engine::EngineOptions e;
  e.max_num_batched_tokens = opts_.batch_tokens;
  // Every request takes at least one row of a step, so this many can share one.
  e.max_num_seqs = opts_.batch_tokens;
  e.enable_prefix_caching = true;
  e.kv_dtype = opts_.kv_dtype;
  const int64_t blocks = (positions + e.block_size - 1) / e.block_size;
  e.num_kv_blocks = blocks;
  // Inputs are truncated here, so the engine's only limit is its pool.
  e.max_model_len = blocks * e.block_size;
  engine_ = std::make_unique<engine::Engine>(model_, &tok_, e);
  return *engine_;
}

int64_t EvalModel::tokens_computed() const {
  const engine::EngineCounters c = engine_->counters();
  return rows_before_ + c.prompt_rows + c.decode_rows;
}

std::vector<int32_t> EvalModel::encode(const std::string& text) const {
  // lm-eval's tok_encode: the tokenizer's default special tokens, except for text that already
  // starts with the prefix token's text (a chat template that writes BOS itself).
  const bool has_prefix = !prefix_text_.empty() && text.compare(0, prefix_text_.size(), prefix_text_) == 0;
  return tok_.encode(text, opts_.add_bos && !has_prefix, true);
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> EvalModel::encode_pair(const std::string& context,
                                                                             const std::string& continuation) const {
  if (context.empty()) {
    std::vector<int32_t> cont = tok_.encode(continuation, false, true);
    // A continuation that itself starts with the prefix token is conditioned on that token.
    if (!cont.empty() && cont[0] == prefix_) return {{prefix_}, std::vector<int32_t>(cont.begin() + 1, cont.end())};
    return {{prefix_}, std::move(cont)};
  }
  const size_t spaces = trailing_space_bytes(context);
  const std::string ctx = context.substr(0, context.size() - spaces);
  const std::string cont = context.substr(context.size() - spaces) + continuation;
  std::vector<int32_t> whole = encode(ctx + cont);
  std::vector<int32_t> ctx_ids = encode(ctx);
  // A whitespace-only context leaves nothing to condition on (lm-eval would index out of its
  // logits); condition on the prefix token as for an empty context.
  if (ctx_ids.empty()) return {{prefix_}, std::move(whole)};
  // Like lm-eval, a context whose tokens merge with the continuation's first bytes keeps its
  // own token count, so the split may fall inside what the context encoded to on its own.
  std::vector<int32_t> cont_ids(whole.begin() + std::min(ctx_ids.size(), whole.size()), whole.end());
  return {std::move(ctx_ids), std::move(cont_ids)};
}

LoglikResult EvalModel::loglikelihood(const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont) {
  return loglikelihood_batch({{ctx, cont}}).front();
}

std::vector<LoglikResult> EvalModel::loglikelihoods(const std::string& context,
                                                    const std::vector<std::string>& continuations) {
  std::vector<Request> requests;
  requests.reserve(continuations.size());
  for (const std::string& c : continuations) requests.push_back(encode_pair(context, c));
  return loglikelihood_batch(requests);
}

std::vector<LoglikResult> EvalModel::loglikelihood_batch(const std::vector<Request>& requests) {
  const int64_t vocab = model_.config().vocab_size;
  const int64_t block = engine_->options().block_size;
  // One score-only engine request per (ctx, cont): the input truncated as lm-eval does plus the
  // continuation's last token, with log-probs from the first continuation token on.
  std::vector<engine::Request> reqs(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& [ctx, cont] = requests[i];
    if (cont.empty()) fail("a continuation encodes to no tokens, so it has no log-likelihood");
    if (ctx.empty()) fail("a context encodes to no tokens; lm-eval conditions on the prefix token instead");
    const int64_t m = cont.size();
    if (m > opts_.max_length)
      fail_resource("a continuation of ", m, " tokens does not fit the evaluation context of ", opts_.max_length,
                    " tokens");
    for (int32_t t : cont)
      if (t < 0 || t >= vocab) fail("token id ", t, " is outside the model's vocabulary of ", vocab);
    // lm-eval: inp = (context_enc + continuation_enc)[-(max_length + 1):][:-1]
    std::vector<int32_t>& p = reqs[i].prompt;
    p = ctx;
    p.insert(p.end(), cont.begin(), cont.end());
    if (static_cast<int64_t>(p.size()) > opts_.max_length + 1) p.erase(p.begin(), p.end() - (opts_.max_length + 1));
    reqs[i].max_tokens = 0;
    reqs[i].prompt_logprobs = 1;  // the best alternative decides is_greedy
    reqs[i].prompt_logprobs_from = static_cast<int64_t>(p.size()) - m;
    reqs[i].detokenize = false;
  }
  // The engine shares only blocks that are already computed, so requests admitted in the same
  // step would each compute their common context. A request that can take whole blocks from an
  // earlier one of this call (an item's other choices, the next item's few-shot preamble) is
  // submitted when that one has finished; the earliest such request is chosen so the chains
  // stay short.
  int64_t longest = 1;
  for (const engine::Request& r : reqs) longest = std::max<int64_t>(longest, r.prompt.size());
  engine::Engine& eng = engine_for(longest);
  std::vector<std::vector<size_t>> after(reqs.size());
  std::vector<size_t> ready;
  for (size_t i = 0; i < reqs.size(); ++i) {
    // At most the positions before the first scored row come from the cache.
    const int64_t cacheable = reqs[i].prompt_logprobs_from - 1;
    int64_t best = 0;
    size_t from = SIZE_MAX;
    for (size_t j = 0; j < i; ++j) {
      const int64_t blocks = std::min(common_prefix(reqs[i].prompt, reqs[j].prompt), cacheable) / block;
      if (blocks > best) best = blocks, from = j;
    }
    if (from == SIZE_MAX)
      ready.push_back(i);
    else
      after[from].push_back(i);
  }

  std::vector<LoglikResult> out(requests.size());
  std::unordered_map<engine::RequestId, size_t> index_of;
  auto submit = [&](size_t i) {
    out[i] = {.loglik = 0, .is_greedy = true, .tokens = static_cast<int64_t>(requests[i].second.size())};
    index_of[eng.add(reqs[i])] = i;
  };
  size_t finished = 0;
  try {
    for (size_t i : ready) submit(i);
    while (finished < reqs.size()) {
      if (!eng.has_work()) fail_internal("the engine stopped with ", reqs.size() - finished, " scoring requests left");
      for (const engine::Event& ev : eng.step()) {
        auto it = index_of.find(ev.request);
        if (it == index_of.end()) continue;  // left over from a call that failed
        const size_t i = it->second;
        if (!ev.error.empty()) fail(ev.error);
        LoglikResult& r = out[i];
        for (const engine::TokenLogprob& lp : ev.prompt_logprobs) {
          r.loglik += lp.logprob;
          // top[0] is the first maximum (the lowest id among equal logits), as an argmax.
          if (lp.top.empty() || lp.top[0].first != lp.id) r.is_greedy = false;
        }
        if (!ev.finished) continue;
        if (ev.finish_reason == "abort") fail("a scoring request was aborted");
        ++finished;
        index_of.erase(it);
        for (size_t k : after[i]) submit(k);
      }
    }
  } catch (...) {
    for (const auto& [id, i] : index_of) eng.abort(id);
    throw;
  }
  return out;
}

double EvalModel::loglikelihood_rolling(const std::string& text, int64_t* tokens) {
  // lm-eval encodes the document with tok_encode's defaults, so a tokenizer that adds BOS
  // puts one after the prefix token (also BOS) and it is scored like any other token.
  const std::vector<int32_t> ids = encode(text);
  if (tokens) *tokens = ids.size();
  // The windows are independent requests, so they are scored as one batch; each one's
  // prediction is its continuation, so exactly those tokens are scored.
  std::vector<Request> windows;
  for (TokenWindow& w : rolling_windows(ids, prefix_, opts_.max_length, 1))
    windows.emplace_back(std::move(w.context), std::move(w.prediction));
  double sum = 0;
  for (const LoglikResult& r : loglikelihood_batch(windows)) sum += r.loglik;
  return sum;
}

GenerateResult EvalModel::generate_until(const std::string& context, const std::vector<std::string>& until,
                                         int64_t max_tokens) {
  if (max_tokens >= opts_.max_length)
    fail_resource("generating ", max_tokens, " tokens needs a context larger than ", opts_.max_length);
  engine::Request req;
  req.prompt = encode(context);
  if (req.prompt.empty()) fail("a generation prompt encodes to no tokens");
  const int64_t room = opts_.max_length - max_tokens;
  if (static_cast<int64_t>(req.prompt.size()) > room) req.prompt.erase(req.prompt.begin(), req.prompt.end() - room);
  req.sampling.temperature = 0;  // argmax, ties to the lowest id
  req.max_tokens = max_tokens;
  // The engine ends at EOS (the model's and the tokenizer's) and at the first stop string,
  // whose text it leaves out; an empty stop string never matches.
  for (const std::string& s : until)
    if (!s.empty()) req.stop.push_back(s);
  engine::Engine& eng = engine_for(static_cast<int64_t>(req.prompt.size()) + max_tokens);
  const engine::RequestId id = eng.add(std::move(req));
  GenerateResult g;
  try {
    for (bool done = false; !done;) {
      if (!eng.has_work()) fail_internal("the engine stopped before the generation finished");
      for (engine::Event& ev : eng.step()) {
        if (ev.request != id) continue;
        if (!ev.error.empty()) fail(ev.error);
        g.text += ev.text;
        g.tokens += static_cast<int64_t>(ev.tokens.size());
        if (ev.finished) {
          if (ev.finish_reason == "abort") fail("the generation request was aborted");
          done = true;
        }
      }
    }
  } catch (...) {
    eng.abort(id);
    throw;
  }
  return g;
}

}  // namespace skv::eval
