#include "eval/lm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>

#include "backend/ops.h"
#include "core/error.h"
#include "engine/stop_strings.h"
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

int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

}  // namespace

EvalModel::EvalModel(const model::LlamaModel& model, const tokenizer::Tokenizer& tok, EvalModelOptions opts)
    : model_(model),
      ctx_(model),
      tok_(tok),
      opts_(opts),
      cache_(engine::make_cache(model, 1)),
      arena_(engine::make_cache(model, 1)) {
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
  cache_ = engine::make_cache(model_, cap);
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
    Tensor logits =
        model_.forward(ctx_, cache_, ids.data() + pos, len, pos, want ? model::Logits::All : model::Logits::None);
    tokens_computed_ += len;
    if (want) {
      backend::log_softmax_rows(logits);
      logits = backend::to_host(logits);
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
    fail_resource("a continuation of ", m, " tokens does not fit the evaluation context of ", opts_.max_length,
                  " tokens");
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
  std::vector<Request> requests;
  requests.reserve(continuations.size());
  for (const std::string& c : continuations) requests.push_back(encode_pair(context, c));
  return loglikelihood_batch(requests);
}

int64_t EvalModel::cache_positions_held() const {
  int64_t n = arena_.capacity;
  for (const PrefixCache& p : prefixes_) n += p.cache.capacity;
  return n;
}

std::vector<LoglikResult> EvalModel::loglikelihood_batch(const std::vector<Request>& requests) {
  const int64_t vocab = model_.config().vocab_size;
  // Truncate each request as loglikelihood() does and group the requests by the inputs before
  // their first scored token (groups in order of first appearance).
  std::vector<Prepared> prep;
  prep.reserve(requests.size());
  std::map<std::vector<int32_t>, size_t> group_of;
  std::vector<std::vector<int32_t>> prefixes;
  std::vector<std::vector<size_t>> members;
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
    std::vector<int32_t> whole(ctx);
    whole.insert(whole.end(), cont.begin(), cont.end());
    const int64_t keep = std::min<int64_t>(whole.size(), opts_.max_length + 1);
    std::vector<int32_t> inp(whole.end() - keep, whole.end() - 1);
    std::vector<int32_t> prefix(inp.begin(), inp.end() - m);
    auto [it, fresh] = group_of.try_emplace(std::move(prefix), prefixes.size());
    if (fresh) {
      prefixes.push_back(it->first);
      members.emplace_back();
    }
    members[it->second].push_back(i);
    prep.push_back({std::move(inp), &cont, m, it->second, i});
  }

  std::vector<LoglikResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) out[i] = {.loglik = 0, .is_greedy = true, .tokens = prep[i].m};
  // Batches of whole groups in order, within the cache budget (each request's inputs plus each
  // group's prefix); a group too big for one batch goes on in the next, whose prefix cache then
  // already holds its prefix.
  std::vector<const Prepared*> batch;
  std::vector<bool> in_batch(prefixes.size(), false);
  int64_t used = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    score_batch(batch, prefixes, out);
    for (const Prepared* r : batch) in_batch[r->group] = false;
    batch.clear();
    used = 0;
  };
  for (size_t g = 0; g < prefixes.size(); ++g) {
    for (size_t i : members[g]) {
      const Prepared& r = prep[i];
      const int64_t n = r.inp.size();
      if (!batch.empty() && used + n + (in_batch[g] ? 0 : n - r.m) > cache_budget()) flush();
      used += n + (in_batch[g] ? 0 : n - r.m);
      in_batch[g] = true;
      batch.push_back(&r);
    }
  }
  flush();
  return out;
}

size_t EvalModel::prefix_slot(const std::vector<int32_t>& prefix, std::vector<bool>& taken) {
  size_t best = prefixes_.size();
  int64_t best_len = -1;
  for (size_t s = 0; s < prefixes_.size(); ++s) {
    if (taken[s]) continue;
    const int64_t len = common_prefix(prefixes_[s].tokens, prefix);
    if (len > best_len) best = s, best_len = len;
  }
  const int64_t p = prefix.size();
  // Capacities in steps of 128 positions, so prefixes of slowly varying length reuse a cache.
  const int64_t cap = (p + 127) / 128 * 128;
  if (best == prefixes_.size()) {
    prefixes_.push_back({engine::make_cache(model_, cap), {}});
    taken.push_back(false);
    best_len = 0;
  }
  PrefixCache& pc = prefixes_[best];
  pc.tokens.resize(best_len);
  if (pc.cache.capacity < p) {
    engine::KVCache bigger = engine::make_cache(model_, cap);
    bigger.copy_prefix_from(pc.cache, best_len);
    pc.cache = std::move(bigger);
  }
  taken[best] = true;
  return best;
}

template <class RowFn>
void EvalModel::run_batched(std::vector<Work>& work, RowFn&& row_fn) {
  const int64_t vocab = model_.config().vocab_size;
  std::vector<int64_t> done(work.size());
  for (size_t i = 0; i < work.size(); ++i) done[i] = work[i].from;
  std::vector<model::SeqChunk> chunks;
  std::vector<size_t> owner;
  for (size_t next = 0;;) {
    while (next < work.size() && done[next] >= work[next].to) ++next;
    if (next == work.size()) break;
    // Each item at most once per call: the rest of a split one runs after its first rows.
    chunks.clear();
    owner.clear();
    int64_t room = opts_.batch_tokens;
    for (size_t i = next; i < work.size() && room > 0; ++i) {
      const int64_t len = std::min(work[i].to - done[i], room);
      if (len <= 0) continue;
      chunks.push_back({.kv = work[i].cache->view(),
                        .ids = work[i].ids + done[i],
                        .n = len,
                        .n_past = done[i],
                        .which = work[i].which});
      owner.push_back(i);
      room -= len;
    }
    model_.forward_batch(ctx_, chunks);
    tokens_computed_ += opts_.batch_tokens - room;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const size_t i = owner[c];
      if (chunks[c].logits.defined()) {
        backend::log_softmax_rows(chunks[c].logits);
        const Tensor rows = backend::to_host(chunks[c].logits);
        for (int64_t r = 0; r < chunks[c].n; ++r) row_fn(i, done[i] + r, rows.as<float>() + r * vocab, vocab);
      }
      done[i] += chunks[c].n;
    }
  }
}

void EvalModel::score_batch(const std::vector<const Prepared*>& reqs, const std::vector<std::vector<int32_t>>& prefixes,
                            std::vector<LoglikResult>& out) {
  // A prefix cache per group with a non-empty prefix.
  std::map<size_t, size_t> slot_of;
  std::vector<bool> taken(prefixes_.size(), false);
  for (const Prepared* r : reqs)
    if (!prefixes[r->group].empty() && !slot_of.count(r->group))
      slot_of[r->group] = prefix_slot(prefixes[r->group], taken);
  // Prefix caches this batch does not use are kept for later calls only within the budget.
  if (cache_positions_held() > cache_budget()) {
    std::vector<size_t> new_index(prefixes_.size());
    std::vector<PrefixCache> kept;
    for (size_t s = 0; s < prefixes_.size(); ++s) {
      new_index[s] = kept.size();
      if (taken[s]) kept.push_back(std::move(prefixes_[s]));
    }
    prefixes_ = std::move(kept);
    for (auto& [g, s] : slot_of) s = new_index[s];
  }

  // Pass A: every group's prefix from where its cache stops holding it, no logits. A group that
  // shares more of its prefix with an earlier group of this batch (the few-shot preamble of the
  // items after the first) copies that part from the earlier group's cache once it is computed,
  // so pass A runs in waves; sharing too little to pay for another pass over the weights is
  // recomputed instead.
  struct Plan {
    size_t source = SIZE_MAX;  // group to copy from
    int64_t shared = 0;
    int wave = 0;
  };
  std::map<size_t, Plan> plan;
  int waves = 1;
  for (auto it = slot_of.begin(); it != slot_of.end(); ++it) {
    Plan& pl = plan[it->first];
    const int64_t have = prefixes_[it->second].tokens.size();
    for (auto src = slot_of.begin(); src != it; ++src) {
      const int64_t shared = common_prefix(prefixes[it->first], prefixes[src->first]);
      if (shared - have >= kMinSharedRows && shared > pl.shared) pl = {src->first, shared, plan[src->first].wave + 1};
    }
    waves = std::max(waves, pl.wave + 1);
  }
  std::vector<Work> work;
  for (int wave = 0; wave < waves; ++wave) {
    work.clear();
    for (const auto& [g, s] : slot_of) {
      const Plan& pl = plan[g];
      if (pl.wave != wave) continue;
      PrefixCache& pc = prefixes_[s];
      if (pl.source != SIZE_MAX) {
        pc.cache.copy_prefix_from(prefixes_[slot_of.at(pl.source)].cache, pl.shared);
        pc.tokens.assign(prefixes[g].begin(), prefixes[g].begin() + pl.shared);
      }
      const int64_t have = pc.tokens.size(), p = prefixes[g].size();
      if (have < p) work.push_back({&pc.cache, prefixes[g].data(), have, p, model::Logits::None});
    }
    run_batched(work, [](size_t, int64_t, const float*, int64_t) {});
    for (const auto& [g, s] : slot_of)
      if (plan[g].wave == wave) prefixes_[s].tokens = prefixes[g];
  }

  // Each request's cache is a slice of one reused arena and starts as a copy of its group's
  // prefix.
  int64_t total = 0;
  for (const Prepared* r : reqs) total += r->inp.size();
  if (arena_.capacity < total) {
    const int64_t grown = std::max(total, std::min(2 * arena_.capacity, cache_budget()));
    arena_ = engine::make_cache(model_, 1);  // release the old one before the bigger one is made
    arena_ = engine::make_cache(model_, grown);
  }
  std::vector<engine::KVCache> caches;
  caches.reserve(reqs.size());
  int64_t at = 0;
  for (const Prepared* r : reqs) {
    const int64_t n = r->inp.size();
    caches.push_back(arena_.slice(at, n));
    at += n;
    if (n > r->m) caches.back().copy_prefix_from(prefixes_[slot_of.at(r->group)].cache, n - r->m);
  }

  // Pass B: every request's scored rows, all logits.
  work.clear();
  for (size_t j = 0; j < reqs.size(); ++j) {
    const int64_t n = reqs[j]->inp.size();
    work.push_back({&caches[j], reqs[j]->inp.data(), n - reqs[j]->m, n, model::Logits::All});
  }
  run_batched(work, [&](size_t j, int64_t pos, const float* row, int64_t vocab) {
    const Prepared& r = *reqs[j];
    const int32_t target = (*r.cont)[pos - (static_cast<int64_t>(r.inp.size()) - r.m)];
    LoglikResult& res = out[r.index];
    res.loglik += row[target];
    if (argmax_row(row, vocab) != target) res.is_greedy = false;
  });
}

double EvalModel::loglikelihood_rolling(const std::string& text, int64_t* tokens) {
  // lm-eval encodes the document with tok_encode's defaults, so a tokenizer that adds BOS
  // puts one after the prefix token (also BOS) and it is scored like any other token.
  const std::vector<int32_t> ids = encode(text);
  if (tokens) *tokens = ids.size();
  // The windows are independent requests, so they are scored as one batch.
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
  std::vector<int32_t> ids = encode(context);
  if (ids.empty()) fail("a generation prompt encodes to no tokens");
  const int64_t room = opts_.max_length - max_tokens;
  if (static_cast<int64_t>(ids.size()) > room) ids.erase(ids.begin(), ids.end() - room);
  reserve(ids.size() + max_tokens);

  std::set<int32_t> eos(model_.config().eos_token_ids.begin(), model_.config().eos_token_ids.end());
  if (auto e = tok_.eos_id()) eos.insert(*e);
  tokenizer::StreamDecoder decoder(tok_);
  engine::StopStringMatcher stops(until);
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
    const Tensor logits = backend::to_host(model_.forward(ctx_, cache_, &next, 1, pos, model::Logits::Last));
    ++tokens_computed_;
    cached_.push_back(next);
    next = argmax_row(logits.as<float>(), vocab);
  }
  if (!stops.stopped()) g.text += stops.push(decoder.flush()) + stops.flush();
  return g;
}

}  // namespace skv::eval
