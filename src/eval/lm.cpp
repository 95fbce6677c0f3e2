#include "eval/lm.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "backend/ops.h"
#include "core/error.h"
#include "engine/sampler.h"
#include "eval/pystr.h"
#include "eval/rolling.h"

namespace skv::eval {
namespace {

int32_t argmax_row(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return static_cast<int32_t>(best);
}

}  // namespace

EvalModel::EvalModel(LlamaModel& model, const Tokenizer& tok, EvalModelOptions opts)
    : model_(model), tok_(tok), opts_(opts), cache_(model.make_cache(1)) {
  if (opts_.max_length < 2)
    fail("the evaluation context (max length) must be at least 2 tokens, got ", opts_.max_length);
  if (opts_.batch_tokens <= 0) fail("--batch-tokens must be positive, got ", opts_.batch_tokens);
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

void EvalModel::reserve(int64_t positions) {
  if (positions <= cache_.capacity) return;
  // Grow geometrically so a run of slowly lengthening inputs does not reallocate every time.
  const int64_t cap = std::min(std::max(positions, 2 * cache_.capacity), std::max(positions, opts_.max_length));
  cache_ = model_.make_cache(cap);
  cached_.clear();
}

template <class RowFn>
void EvalModel::run(const std::vector<int32_t>& ids, int64_t logits_from, RowFn&& row_fn) {
  const int64_t n = ids.size();
  reserve(n);
  int64_t start = 0;
  while (start < static_cast<int64_t>(cached_.size()) && start < logits_from && cached_[start] == ids[start]) ++start;
  cached_.resize(start);
  const int64_t vocab = model_.config().vocab_size;
  for (int64_t pos = start; pos < n;) {
    const bool want = pos >= logits_from;
    const int64_t stop = want ? n : logits_from;
    const int64_t len = std::min(opts_.batch_tokens, stop - pos);
    Tensor logits = model_.forward(cache_, ids.data() + pos, len, pos, want ? Logits::All : Logits::None);
    tokens_computed_ += len;
    if (want) {
      ops::log_softmax_rows(logits);
      for (int64_t r = 0; r < len; ++r) row_fn(pos + r, logits.as<float>() + r * vocab, vocab);
    }
    cached_.insert(cached_.end(), ids.begin() + pos, ids.begin() + pos + len);
    pos += len;
  }
}

LoglikResult EvalModel::loglikelihood(const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont) {
  if (cont.empty()) fail("a continuation encodes to no tokens, so it has no log-likelihood");
  if (ctx.empty()) fail("a context encodes to no tokens; lm-eval conditions on the prefix token instead");
  const int64_t m = cont.size();
  if (m > opts_.max_length)
    fail("a continuation of ", m, " tokens does not fit the evaluation context of ", opts_.max_length, " tokens");
  std::vector<int32_t> whole(ctx);
  whole.insert(whole.end(), cont.begin(), cont.end());
  // lm-eval: inp = (context_enc + continuation_enc)[-(max_length + 1):][:-1]
  const int64_t keep = std::min<int64_t>(whole.size(), opts_.max_length + 1);
  std::vector<int32_t> inp(whole.end() - keep, whole.end() - 1);
  const int64_t n = inp.size();
  LoglikResult r;
  r.is_greedy = true;
  r.tokens = m;
  run(inp, n - m, [&](int64_t pos, const float* row, int64_t vocab) {
    const int32_t target = cont[pos - (n - m)];
    if (target < 0 || target >= vocab) fail("token id ", target, " is outside the model's vocabulary of ", vocab);
    r.loglik += row[target];
    if (argmax_row(row, vocab) != target) r.is_greedy = false;
  });
  return r;
}

std::vector<LoglikResult> EvalModel::loglikelihoods(const std::string& context,
                                                    const std::vector<std::string>& continuations) {
  std::vector<LoglikResult> out;
  out.reserve(continuations.size());
  for (const std::string& c : continuations) {
    auto [ctx, cont] = encode_pair(context, c);
    out.push_back(loglikelihood(ctx, cont));
  }
  return out;
}

double EvalModel::loglikelihood_rolling(const std::string& text, int64_t* tokens) {
  // lm-eval encodes the document with tok_encode's defaults, so a tokenizer that adds BOS
  // puts one after the prefix token (also BOS) and it is scored like any other token.
  const std::vector<int32_t> ids = encode(text);
  if (tokens) *tokens = ids.size();
  double sum = 0;
  for (const TokenWindow& w : rolling_windows(ids, prefix_, opts_.max_length, 1))
    sum += loglikelihood(w.context, w.prediction).loglik;
  return sum;
}

GenerateResult EvalModel::generate_until(const std::string& context, const std::vector<std::string>& until,
                                         int64_t max_tokens) {
  if (max_tokens >= opts_.max_length)
    fail("generating ", max_tokens, " tokens needs a context larger than ", opts_.max_length);
  std::vector<int32_t> ids = encode(context);
  if (ids.empty()) fail("a generation prompt encodes to no tokens");
  const int64_t room = opts_.max_length - max_tokens;
  if (static_cast<int64_t>(ids.size()) > room) ids.erase(ids.begin(), ids.end() - room);
  reserve(ids.size() + max_tokens);

  std::set<int32_t> eos(model_.config().eos_token_ids.begin(), model_.config().eos_token_ids.end());
  if (auto e = tok_.eos_id()) eos.insert(*e);
  StreamDecoder decoder(tok_);
  StopStringMatcher stops(until);
  GenerateResult g;
  int32_t next = 0;
  run(ids, ids.size() - 1, [&](int64_t, const float* row, int64_t vocab) { next = argmax_row(row, vocab); });
  const int64_t vocab = model_.config().vocab_size;
  for (int64_t i = 0; i < max_tokens; ++i) {
    ++g.tokens;
    if (eos.count(next)) break;
    g.text += stops.push(decoder.push(next));
    if (stops.stopped() || i + 1 == max_tokens) break;
    const int64_t pos = cached_.size();
    Tensor logits = model_.forward(cache_, &next, 1, pos, Logits::Last);
    ++tokens_computed_;
    cached_.push_back(next);
    next = argmax_row(logits.as<float>(), vocab);
  }
  if (!stops.stopped()) g.text += stops.push(decoder.flush()) + stops.flush();
  return g;
}

}  // namespace skv::eval
