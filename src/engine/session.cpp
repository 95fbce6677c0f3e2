#include "engine/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "backend/ops.h"
#include "core/error.h"
#include "engine/stop_strings.h"

namespace skv::engine {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Session::Session(const model::LlamaModel& model, int64_t context_size, int64_t batch_size)
    : model_(model), ctx_(model), cache_(make_cache(model, context_size)), batch_size_(batch_size) {
  if (batch_size <= 0) fail("batch size must be positive, got ", batch_size);
}

Tensor Session::prefill(const std::vector<int32_t>& ids) {
  if (ids.empty()) fail("the prompt is empty");
  if (static_cast<int64_t>(ids.size()) > cache_.capacity)
    fail_resource("prompt has ", ids.size(), " tokens, more than the context size ", cache_.capacity,
                  " (raise --ctx-size or shorten the prompt)");
  size_t common = 0;
  while (common < tokens_.size() && common < ids.size() && tokens_[common] == ids[common]) ++common;
  if (common == ids.size()) --common;  // the last token must run again to produce logits
  tokens_.resize(common);
  last_prefill_computed_ = static_cast<int64_t>(ids.size() - common);
  Tensor logits;
  for (size_t start = common; start < ids.size(); start += batch_size_) {
    const int64_t n = std::min<int64_t>(batch_size_, ids.size() - start);
    const bool last = start + n == ids.size();
    logits =
        model_.forward(ctx_, cache_, ids.data() + start, n, start, last ? model::Logits::Last : model::Logits::None);
    tokens_.insert(tokens_.end(), ids.begin() + start, ids.begin() + start + n);
  }
  return logits;
}

GenerationResult Session::generate(const std::vector<int32_t>& prompt, const GenerationOptions& opts,
                                   const tokenizer::Tokenizer* tok,
                                   const std::function<void(const std::string&)>& on_text) {
  opts.sampling.validate();
  if (opts.max_tokens < 0) fail("max tokens must be >= 0, got ", opts.max_tokens);
  GenerationResult r;
  r.prompt_tokens = prompt.size();
  auto t0 = std::chrono::steady_clock::now();
  const double flops0 = ctx_.flops().total();
  Tensor logits = prefill(prompt);
  r.prompt_tokens_computed = last_prefill_computed_;
  r.prefill_seconds = seconds_since(t0);
  r.prefill_flops = ctx_.flops().total() - flops0;

  std::set<int32_t> stop_ids(opts.stop_token_ids.begin(), opts.stop_token_ids.end());
  if (!opts.ignore_eos) {
    for (int64_t e : model_.config().eos_token_ids) stop_ids.insert(static_cast<int32_t>(e));
    if (tok && tok->eos_id()) stop_ids.insert(*tok->eos_id());
  }
  Sampler sampler(opts.sampling);
  StopStringMatcher stops(opts.stop);
  std::unique_ptr<tokenizer::StreamDecoder> decoder = tok ? std::make_unique<tokenizer::StreamDecoder>(*tok) : nullptr;
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    if (on_text) on_text(s);
  };

  const int64_t vocab = model_.config().vocab_size;
  r.finish_reason = "length";
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opts.max_tokens; ++i) {
    Tensor host_logits = backend::to_host(logits);  // the sampler edits it in place
    int32_t id = sampler.sample(host_logits.as<float>(), vocab, prompt, r.tokens);
    r.tokens.push_back(id);
    if (stop_ids.count(id)) {
      r.finish_reason = "stop";
      break;
    }
    if (decoder) {
      emit(stops.push(decoder->push(id)));
      if (stops.stopped()) {
        r.finish_reason = "stop";
        break;
      }
    }
    if (i + 1 == opts.max_tokens) break;                                 // the last token needs no forward pass
    if (static_cast<int64_t>(tokens_.size()) >= cache_.capacity) break;  // context full: "length"
    logits = model_.forward(ctx_, cache_, &id, 1, tokens_.size(), model::Logits::Last);
    tokens_.push_back(id);
  }
  if (decoder && !stops.stopped()) emit(stops.push(decoder->flush()) + stops.flush());
  r.decode_seconds = seconds_since(t0);
  return r;
}

std::vector<double> Session::score(const std::vector<int32_t>& ids) {
  if (ids.empty()) fail("no tokens to score");
  if (static_cast<int64_t>(ids.size()) > cache_.capacity)
    fail_resource("sequence has ", ids.size(), " tokens, more than the context size ", cache_.capacity);
  std::vector<double> out(ids.size(), std::numeric_limits<double>::quiet_NaN());
  const int64_t vocab = model_.config().vocab_size;
  tokens_.clear();
  for (size_t start = 0; start < ids.size(); start += batch_size_) {
    const int64_t n = std::min<int64_t>(batch_size_, ids.size() - start);
    Tensor logits = model_.forward(ctx_, cache_, ids.data() + start, n, start, model::Logits::All);
    backend::log_softmax_rows(logits);
    logits = backend::to_host(logits);
    for (int64_t i = 0; i < n; ++i) {
      const size_t next = start + i + 1;
      if (next < ids.size()) out[next] = logits.as<float>()[i * vocab + ids[next]];
    }
    tokens_.insert(tokens_.end(), ids.begin() + start, ids.begin() + start + n);
  }
  return out;
}

}  // namespace skv::engine
