#include "engine/session.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace skv::engine {
namespace {

EngineOptions session_options(int64_t context_size, int64_t batch_size, const EngineOptions& base) {
  if (context_size <= 0) fail("context size must be positive, got ", context_size);
  if (batch_size <= 0) fail("batch size must be positive, got ", batch_size);
  EngineOptions o;
  o.block_size = base.block_size;
  o.kv_dtype = base.kv_dtype;
  o.enable_prefix_caching = base.enable_prefix_caching;
  o.max_num_seqs = 1;
  o.max_num_batched_tokens = batch_size;
  o.max_model_len = context_size;
  o.num_kv_blocks = (context_size + o.block_size - 1) / o.block_size;
  return o;
}

}  // namespace

Request make_request(const std::vector<int32_t>& prompt, const GenerationOptions& opts) {
  if (opts.max_tokens < 0) fail("max tokens must be >= 0, got ", opts.max_tokens);
  Request r;
  r.prompt = prompt;
  r.sampling = opts.sampling;
  r.max_tokens = opts.max_tokens;
  r.ignore_eos = opts.ignore_eos;
  r.stop = opts.stop;
  r.stop_token_ids = opts.stop_token_ids;
  return r;
}

Session::Session(const model::LlamaModel& model, int64_t context_size, int64_t batch_size,
                 const tokenizer::Tokenizer* tok, const EngineOptions& base)
    : engine_(std::make_unique<Engine>(model, tok, session_options(context_size, batch_size, base))) {}

GenerationResult Session::generate(const std::vector<int32_t>& prompt, const GenerationOptions& opts,
                                   const std::function<void(const std::string&)>& on_text) {
  GenerationResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.finish_reason = "length";
  if (opts.max_tokens == 0) {
    opts.sampling.validate();
    return r;
  }
  if (static_cast<int64_t>(prompt.size()) >= engine_->max_model_len())
    fail_resource("prompt has ", prompt.size(), " tokens, which leaves no room in the context size ",
                  engine_->max_model_len(), " (raise --ctx-size or shorten the prompt)");
  const auto t0 = std::chrono::steady_clock::now();
  const double flops0 = engine_->flops().total();
  engine_->add(make_request(prompt, opts));
  std::chrono::steady_clock::time_point t_first{};
  bool first = true;
  while (engine_->has_work()) {
    for (Event& e : engine_->step()) {
      if (first && !e.tokens.empty()) {
        first = false;
        t_first = std::chrono::steady_clock::now();
        r.prefill_seconds = std::chrono::duration<double>(t_first - t0).count();
        r.prefill_flops = engine_->flops().total() - flops0;
      }
      r.tokens.insert(r.tokens.end(), e.tokens.begin(), e.tokens.end());
      if (!e.text.empty()) {
        r.text += e.text;
        if (on_text) on_text(e.text);
      }
      if (e.finished) {
        r.finish_reason = e.finish_reason;
        r.prompt_tokens_computed = e.usage.prompt_tokens - e.usage.cached_tokens;
      }
    }
  }
  if (!first) r.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_first).count();
  return r;
}

std::vector<double> Session::score(const std::vector<int32_t>& ids) {
  if (ids.empty()) fail("no tokens to score");
  if (static_cast<int64_t>(ids.size()) > engine_->max_model_len())
    fail_resource("sequence has ", ids.size(), " tokens, more than the context size ", engine_->max_model_len());
  std::vector<double> out(ids.size(), std::numeric_limits<double>::quiet_NaN());
  Request r;
  r.prompt = ids;
  r.max_tokens = 0;
  r.prompt_logprobs = 0;
  r.detokenize = false;
  engine_->add(r);
  size_t next = 1;
  while (engine_->has_work())
    for (const Event& e : engine_->step())
      for (const TokenLogprob& lp : e.prompt_logprobs) out.at(next++) = lp.logprob;
  return out;
}

}  // namespace skv::engine
