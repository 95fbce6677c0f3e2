#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "backend/ops.h"
#include "core/error.h"

namespace skv::engine {

struct Engine::Seq {
  RequestId id = 0;
  int index = 0;
  Request req;                  // shared settings (the prompt lives in `tokens`)
  std::vector<int32_t> tokens;  // prompt, then generated ids
  int64_t prompt_len = 0;
  int64_t computed = 0;  // positions whose K/V are in the cache
  int64_t max_len = 0;   // tokens.size() may not pass this (prompt + max_tokens, capped by the model length)
  BlockTable table;
  Sampler sampler;
  StopStringMatcher stops;
  std::unique_ptr<tokenizer::StreamDecoder> decoder;
  Seq* parent = nullptr;  // sample 0 of the request, whose prompt blocks samples 1.. reuse
  bool echo = false;      // prompt log-probs: rows from logprobs_from - 1 on run every layer, none from the cache
  int64_t logprobs_from = 1;
  bool prompt_reported = false;
  std::vector<TokenLogprob> prompt_logprobs;
  int64_t cached_tokens = 0;  // at first admission
  bool admitted = false;
  Timing timing;

  Seq(const Request& r, const SamplingParams& sp) : req(r), sampler(sp), stops(r.stop) {}
  std::vector<int32_t> generated() const { return {tokens.begin() + prompt_len, tokens.end()}; }
  int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }
};

namespace {

int64_t pool_blocks(const model::LlamaModel& model, const EngineOptions& o, std::string& how) {
  if (o.block_size <= 0) fail("--block-size must be positive, got ", o.block_size);
  const io::ModelConfig& c = model.config();
  if (c.head_dim % dtype_block_size(o.kv_dtype) != 0)
    fail("--kv-cache-dtype ", dtype_name(o.kv_dtype), " needs a head dim that is a multiple of ",
         dtype_block_size(o.kv_dtype), "; this model's is ", c.head_dim);
  if (o.num_kv_blocks > 0) {
    how = "fixed";
    return o.num_kv_blocks;
  }
  const model::KVSpec spec = model.kv_spec();
  return kv_pool_blocks(o.kv, engine::kv_bytes_per_token(spec.layers, spec.row, o.kv_dtype), o.block_size,
                        model.weight_bytes(), &how);
}

}  // namespace

Engine::Engine(const model::LlamaModel& model, const tokenizer::Tokenizer* tok, EngineOptions opts)
    : model_(model),
      tok_(tok),
      opts_(opts),
      ctx_(model),
      pool_(model.kv_spec(), pool_blocks(model, opts, sizing_), opts.block_size, opts.kv_dtype),
      blocks_(pool_.num_blocks, opts.block_size, opts.enable_prefix_caching),
      t0_(std::chrono::steady_clock::now()) {
  if (opts_.max_num_seqs <= 0) fail("--max-num-seqs must be positive, got ", opts_.max_num_seqs);
  if (opts_.max_num_batched_tokens <= 0)
    fail("--max-num-batched-tokens must be positive, got ", opts_.max_num_batched_tokens);
  if (opts_.max_model_len < 0) fail("--max-model-len must be positive, got ", opts_.max_model_len);
  const int64_t capacity = pool_.capacity_tokens();
  if (opts_.max_model_len > capacity)
    fail_resource("--max-model-len ", opts_.max_model_len, " does not fit the KV cache (", capacity, " tokens in ",
                  pool_.num_blocks, " blocks); lower it or raise --kv-cache-memory-bytes");
  max_model_len_ = opts_.max_model_len > 0 ? opts_.max_model_len
                                           : std::min<int64_t>(model.config().max_position_embeddings, capacity);
  for (int64_t e : model.config().eos_token_ids) stop_ids_.push_back(static_cast<int32_t>(e));
  if (tok_ && tok_->eos_id()) stop_ids_.push_back(*tok_->eos_id());
  row_.resize(model.config().vocab_size);
}

Engine::~Engine() = default;

double Engine::now() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

std::string Engine::describe() const {
  std::ostringstream s;
  s << "KV cache: " << pool_.num_blocks << " blocks of " << pool_.block_size << " tokens, " << kv_bytes_per_token()
    << " bytes per token (" << pool_.num_layers() << " cache layers, " << dtype_name(pool_.dtype) << "), "
    << pool_.capacity_tokens() << " tokens, " << pool_.bytes() / (1 << 20) << " MiB (" << sizing_ << "); max model len "
    << max_model_len_ << ", max num seqs " << opts_.max_num_seqs << ", max num batched tokens "
    << opts_.max_num_batched_tokens << ", prefix caching " << (blocks_.prefix_caching() ? "on" : "off");
  return s.str();
}

EngineCounters Engine::counters() const {
  EngineCounters c = counters_;
  c.early_rows = ctx_.rows().early;
  c.late_rows = ctx_.rows().late;
  c.prefix_queried_tokens = blocks_.queried_tokens();
  c.prefix_hit_tokens = blocks_.hit_tokens();
  return c;
}

void Engine::validate(const Request& r) const {
  const int64_t vocab = model_.config().vocab_size;
  if (r.prompt.empty()) fail("the prompt is empty");
  for (int32_t id : r.prompt)
    if (id < 0 || id >= vocab) fail("prompt token id ", id, " is out of range for vocabulary size ", vocab);
  for (int32_t id : r.stop_token_ids)
    if (id < 0 || id >= vocab) fail("stop token id ", id, " is out of range for vocabulary size ", vocab);
  r.sampling.validate();
  if (r.n < 1) fail("n must be at least 1, got ", r.n);
  if (r.logprobs > 20 || r.prompt_logprobs > 20)
    fail("at most 20 log-prob alternatives, got ", std::max(r.logprobs, r.prompt_logprobs));
  if (r.min_tokens < 0) fail("min_tokens must be >= 0, got ", r.min_tokens);
  if (!r.stop.empty() && !tok_) fail("stop strings need a tokenizer");
  for (const std::string& s : r.stop)
    if (s.empty()) fail("a stop string is empty");
  const int64_t plen = static_cast<int64_t>(r.prompt.size());
  const bool score_only = r.max_tokens == 0 && r.prompt_logprobs >= 0;
  if (score_only ? plen > max_model_len_ : plen >= max_model_len_)
    fail("the prompt has ", plen, " tokens; the model length is ", max_model_len_, " (--max-model-len)",
         score_only ? "" : ", which must leave room for at least one generated token");
  if (r.prompt_logits && r.prompt_logprobs < 0) fail("a prompt-logits callback needs prompt log-probs");
  if (r.max_tokens == 0 && r.prompt_logprobs < 0) fail("max_tokens must be at least 1 (or ask for prompt log-probs)");
  if (r.prompt_logprobs >= 0 &&
      (r.prompt_logprobs_from < 1 || r.prompt_logprobs_from >= static_cast<int64_t>(r.prompt.size())))
    fail("prompt log-probs from position ", r.prompt_logprobs_from, " of a ", r.prompt.size(), "-token prompt");
  if (r.min_tokens > 0 && r.max_tokens >= 0 && r.min_tokens > r.max_tokens)
    fail("min_tokens ", r.min_tokens, " exceeds max_tokens ", r.max_tokens);
}

RequestId Engine::add(Request r, RequestId id) {
  validate(r);
  const int64_t plen = static_cast<int64_t>(r.prompt.size());
  if (id == 0) id = next_id_++;
  next_id_ = std::max(next_id_, id + 1);
  const double t = now();
  Seq* parent = nullptr;
  for (int i = 0; i < r.n; ++i) {
    SamplingParams sp = r.sampling;
    // Each sample draws from its own generator: the same seed gives the same samples whatever
    // else shares the step, and the samples of one request differ from each other.
    if (sp.has_seed) sp.seed += static_cast<uint64_t>(i);
    auto s = std::make_unique<Seq>(r, sp);
    s->id = id;
    s->index = i;
    s->tokens = r.prompt;
    s->prompt_len = plen;
    s->max_len =
        r.max_tokens < 0 ? max_model_len_ : std::min(max_model_len_, plen + std::max<int64_t>(r.max_tokens, 0));
    if (r.max_tokens == 0) s->max_len = plen;  // prompt log-probs only
    s->echo = r.prompt_logprobs >= 0;
    s->logprobs_from = std::max<int64_t>(1, r.prompt_logprobs_from);
    s->parent = i > 0 && opts_.enable_prefix_caching && !s->echo ? parent : nullptr;
    if (r.detokenize && tok_) s->decoder = std::make_unique<tokenizer::StreamDecoder>(*tok_);
    s->timing.arrival = t;
    s->req.prompt.clear();
    s->req.prompt.shrink_to_fit();
    if (i == 0) parent = s.get();
    waiting_.push_back(s.get());
    seqs_.push_back(std::move(s));
  }
  return id;
}

void Engine::abort(RequestId id) { aborted_.push_back(id); }

void Engine::preempt(Seq* s) {
  blocks_.release(s->table);
  if (!s->prompt_reported) s->prompt_logprobs.clear();  // recomputed on readmission
  s->computed = 0;
  ++counters_.preemptions;
  waiting_.push_front(s);
}

// vLLM v1's policy: running sequences first, in admission order, each taking the tokens it
// still needs (a decode: one) from the step's budget; blocks for them come first, preempting
// the newest running sequence when the pool is short. Then waiting sequences, first come
// first served, while budget, blocks and --max-num-seqs allow; none is admitted in a step that
// had to preempt.
void Engine::schedule(std::vector<Scheduled>& out) {
  out.clear();
  int64_t budget = opts_.max_num_batched_tokens;
  bool preempted = false;
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Seq* s = running_[i];
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(s->tokens.size()) - s->computed, budget);
    if (n <= 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!blocks_.grow(s->table, s->computed + n)) {
      Seq* victim = running_.back();
      running_.pop_back();
      preempt(victim);
      preempted = true;
      if (victim == s) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    out.push_back({s, n});
    budget -= n;
    ++i;
  }
  if (preempted) return;
  while (!waiting_.empty() && budget > 0 && static_cast<int64_t>(running_.size()) < opts_.max_num_seqs) {
    Seq* s = waiting_.front();
    // Later samples of a request wait until sample 0 has computed the prompt, then find it in
    // the prefix cache.
    if (s->parent && s->parent->computed < s->prompt_len && !s->admitted) {
      const bool parent_alive = std::find(running_.begin(), running_.end(), s->parent) != running_.end() ||
                                std::find(waiting_.begin(), waiting_.end(), s->parent) != waiting_.end();
      if (parent_alive) break;
    }
    // A prompt whose log-probs are wanted from position f must compute row f - 1 and on.
    const int64_t max_cached = s->echo ? s->logprobs_from - 1 : std::numeric_limits<int64_t>::max();
    if (!blocks_.allocate(s->table, s->tokens, budget, true, max_cached)) break;
    if (!s->admitted) {
      s->cached_tokens = s->table.cached_tokens;
      s->admitted = true;
      s->timing.scheduled = now();
    }
    s->computed = s->table.cached_tokens;
    const int64_t n =
        std::min<int64_t>(budget, static_cast<int64_t>(s->table.blocks.size()) * blocks_.block_size() - s->computed);
    const int64_t take = std::min<int64_t>(n, static_cast<int64_t>(s->tokens.size()) - s->computed);
    waiting_.pop_front();
    running_.push_back(s);
    out.push_back({s, take});
    budget -= take;
  }
}

TokenLogprob Engine::logprob_of(const float* logits, int32_t id, int top) {
  const int64_t vocab = model_.config().vocab_size;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, logits[j]);
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(logits[j]) - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  TokenLogprob t;
  t.id = id;
  t.logprob = logits[id] - lse;
  if (top > 0) {
    std::vector<int32_t> idx(vocab);
    for (int64_t j = 0; j < vocab; ++j) idx[j] = static_cast<int32_t>(j);
    std::partial_sort(idx.begin(), idx.begin() + std::min<int64_t>(top, vocab), idx.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (int64_t j = 0; j < std::min<int64_t>(top, vocab); ++j) t.top.emplace_back(idx[j], logits[idx[j]] - lse);
  }
  return t;
}

void Engine::sample_into(Seq& s, const float* logits, Event& ev) {
  const int64_t vocab = model_.config().vocab_size;
  std::copy(logits, logits + vocab, row_.begin());
  // min_tokens: EOS and stop ids cannot be drawn yet (vLLM masks them the same way).
  if (s.num_generated() < s.req.min_tokens) {
    for (int32_t e : s.req.stop_token_ids) row_[e] = -std::numeric_limits<float>::infinity();
    if (!s.req.ignore_eos)
      for (int32_t e : stop_ids_) row_[e] = -std::numeric_limits<float>::infinity();
  }
  const std::vector<int32_t> prompt(s.tokens.begin(), s.tokens.begin() + s.prompt_len);
  const int32_t id = s.sampler.sample(row_.data(), vocab, prompt, s.generated());
  if (s.req.logprobs >= 0) ev.logprobs.push_back(logprob_of(logits, id, s.req.logprobs));
  s.tokens.push_back(id);
  ev.tokens.push_back(id);
}

void Engine::finish(Seq* s, const std::string& reason, std::vector<Event>& events, Event* ev) {
  Event local;
  Event& e = ev ? *ev : local;
  e.request = s->id;
  e.index = s->index;
  if (s->decoder && !s->stops.stopped()) e.text += s->stops.push(s->decoder->flush()) + s->stops.flush();
  e.finished = true;
  e.finish_reason = reason;
  e.usage = {s->prompt_len, s->num_generated(), s->cached_tokens};
  s->timing.finished = now();
  e.timing = s->timing;
  if (!ev) events.push_back(std::move(local));
  blocks_.release(s->table);
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s), waiting_.end());
  for (auto& other : seqs_)
    if (other->parent == s) other->parent = nullptr;
  seqs_.erase(std::remove_if(seqs_.begin(), seqs_.end(), [&](const auto& p) { return p.get() == s; }), seqs_.end());
}

std::vector<Event> Engine::step() {
  std::vector<Event> events;
  for (RequestId id : aborted_) {
    std::vector<Seq*> victims;
    for (auto& s : seqs_)
      if (s->id == id) victims.push_back(s.get());
    for (Seq* s : victims) finish(s, "abort", events);
  }
  aborted_.clear();

  schedule(scheduled_);
  if (scheduled_.empty()) return events;
  ++counters_.steps;

  chunks_.clear();
  for (const Scheduled& sc : scheduled_) {
    Seq& s = *sc.seq;
    const bool completes = s.computed + sc.n == static_cast<int64_t>(s.tokens.size());
    const bool in_prompt = s.computed < s.prompt_len;
    model::Logits which = model::Logits::None;
    int64_t from = 0;
    // Row p predicts position p + 1: prompt log-probs need rows logprobs_from - 1 .. prompt_len - 2.
    const int64_t first_row = s.logprobs_from - 1;
    if (s.echo && in_prompt && s.computed + sc.n > first_row) {
      which = model::Logits::All;
      from = std::max<int64_t>(0, first_row - s.computed);
    } else if (completes) {
      which = model::Logits::Last;
    }
    chunks_.push_back({.kv = pool_.view(s.table.blocks),
                       .ids = s.tokens.data() + s.computed,
                       .n = sc.n,
                       .n_past = s.computed,
                       .which = which,
                       .logits_from = from,
                       .split_from = s.prompt_len});
    if (in_prompt)
      counters_.prompt_rows += sc.n;
    else
      counters_.decode_rows += sc.n;
  }
  model_.forward_batch(ctx_, chunks_);

  const int64_t vocab = model_.config().vocab_size;
  std::vector<Seq*> done;
  std::vector<std::string> reasons;
  for (size_t c = 0; c < scheduled_.size(); ++c) {
    Seq& s = *scheduled_[c].seq;
    const int64_t n = scheduled_[c].n;
    const int64_t start = s.computed;
    s.computed += n;
    blocks_.commit(s.table, s.tokens, s.computed);
    const model::SeqChunk& ch = chunks_[c];
    if (ch.which == model::Logits::None) continue;
    const Tensor host = backend::to_host(ch.logits);
    const float* rows = host.as<float>();
    const int64_t nrows = ch.which == model::Logits::All ? n - ch.logits_from : 1;
    if (ch.which == model::Logits::All) {
      // Row i predicts position start + logits_from + i + 1.
      for (int64_t i = 0; i < nrows; ++i) {
        const int64_t next = start + ch.logits_from + i + 1;
        if (next >= s.logprobs_from && next < s.prompt_len) {
          s.prompt_logprobs.push_back(logprob_of(rows + i * vocab, s.tokens[next], s.req.prompt_logprobs));
          if (s.req.prompt_logits) s.req.prompt_logits(next, rows + i * vocab);
        }
      }
    }
    if (s.computed < static_cast<int64_t>(s.tokens.size())) continue;  // prompt chunk, more to come
    Event ev;
    ev.request = s.id;
    ev.index = s.index;
    if (s.echo && !s.prompt_reported) {
      ev.prompt_logprobs = std::move(s.prompt_logprobs);
      s.prompt_reported = true;
    }
    if (s.timing.first_token < 0) s.timing.first_token = now();
    std::string reason;
    if (static_cast<int64_t>(s.tokens.size()) >= s.max_len) {
      reason = "length";  // max_tokens 0: prompt log-probs only
    } else {
      sample_into(s, rows + (nrows - 1) * vocab, ev);
      const int32_t id = s.tokens.back();
      const bool eos = !s.req.ignore_eos && std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
      const bool stop_id =
          std::find(s.req.stop_token_ids.begin(), s.req.stop_token_ids.end(), id) != s.req.stop_token_ids.end();
      if (s.decoder && !eos && !stop_id) ev.text = s.stops.push(s.decoder->push(id));
      if (eos || stop_id || s.stops.stopped())
        reason = "stop";
      else if (static_cast<int64_t>(s.tokens.size()) >= s.max_len)
        reason = "length";
    }
    if (reason.empty()) {
      events.push_back(std::move(ev));
    } else {
      events.push_back(std::move(ev));
      done.push_back(&s);
      reasons.push_back(reason);
    }
  }
  for (size_t i = 0; i < done.size(); ++i) {
    // The finishing event is the one just emitted for this sequence: complete it in place.
    Event* ev = nullptr;
    for (auto it = events.rbegin(); it != events.rend(); ++it)
      if (it->request == done[i]->id && it->index == done[i]->index) {
        ev = &*it;
        break;
      }
    finish(done[i], reasons[i], events, ev);
  }
  return events;
}

}  // namespace skv::engine
