#pragma once
// The engine core every command runs on: requests in, steps of one batched forward each, events
// out. Continuous batching in vLLM v1's style: no prefill and decode phases, only a token budget
// per step, filled first by running sequences (one token each for a decode, the next chunk for a
// prompt) and then by waiting ones, so long prompts are chunked and running decodes keep
// flowing. The KV cache is paged (engine/kv_pool.h, engine/block_manager.h) with prefix
// caching; when blocks run out, the newest running sequence is preempted (its blocks freed, its
// tokens recomputed later), so no request is lost and none deadlocks.
//
// SwiftKV in mixed steps comes from LlamaModel::forward_batch: only rows whose logits are read
// (decode tokens, the last token of a prompt that completes this step, every prompt token of a
// request that asked for prompt log-probs) run layers >= M.
//
// Not thread-safe: one thread owns an Engine (the server's loop thread, or a command's main).
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/block_manager.h"
#include "engine/kv_pool.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::engine {

struct EngineOptions {
  int64_t max_num_seqs = 64;             // --max-num-seqs: sequences running at once
  int64_t max_num_batched_tokens = 512;  // --max-num-batched-tokens: rows per step
  int64_t max_model_len = 0;             // --max-model-len; 0: the model's, capped by the pool
  int64_t block_size = 16;               // --block-size
  bool enable_prefix_caching = true;     // --enable-prefix-caching / --no-enable-prefix-caching
  KVPoolSizing kv;                       // --kv-cache-memory-bytes, else a share of MemAvailable
  DType kv_dtype = DType::F32;           // --kv-cache-dtype
  int64_t num_kv_blocks = 0;             // > 0: exactly this many blocks (tests)
};

// Rows through the model, by where they went (exported as metrics by the server).
struct EngineCounters {
  int64_t steps = 0;
  int64_t prompt_rows = 0, decode_rows = 0;  // rows computed, by kind
  int64_t early_rows = 0;                    // through layers < M (every row)
  int64_t late_rows = 0;                     // through layers >= M (SwiftKV: rows whose logits are read)
  int64_t preemptions = 0;
  int64_t prefix_queried_tokens = 0, prefix_hit_tokens = 0;
};

class Engine {
 public:
  // `tok` (may be null) detokenises and matches stop strings; it must outlive the engine.
  Engine(const model::LlamaModel& model, const tokenizer::Tokenizer* tok, EngineOptions opts = {});
  ~Engine();

  // Throws InputError for an invalid request (bad ids, parameters, a prompt at or beyond the
  // model length). Reads only what is fixed at construction, so any thread may call it.
  void validate(const Request& r) const;
  // Queues a request (validated first) under `id`, or under the next free id when id is 0.
  RequestId add(Request r, RequestId id = 0);
  // Stops a request at the next step: its blocks are freed and it finishes with "abort".
  void abort(RequestId id);
  bool has_work() const { return !running_.empty() || !waiting_.empty() || !aborted_.empty(); }
  // Runs one step and returns its events (empty when there was nothing to do).
  std::vector<Event> step();

  int64_t max_model_len() const { return max_model_len_; }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  const KVPool& pool() const { return pool_; }
  size_t kv_bytes_per_token() const { return engine::kv_bytes_per_token(pool_.num_layers(), pool_.row, pool_.dtype); }
  const BlockManager& blocks() const { return blocks_; }
  EngineCounters counters() const;
  const model::FlopCount& flops() const { return ctx_.flops(); }
  // One line: blocks, block size, bytes per token, capacity in tokens, how the pool was sized.
  std::string describe() const;
  const EngineOptions& options() const { return opts_; }

 private:
  struct Seq;
  struct Scheduled {
    Seq* seq;
    int64_t n;
  };
  double now() const;
  void schedule(std::vector<Scheduled>& out);
  void preempt(Seq* s);
  void finish(Seq* s, const std::string& reason, std::vector<Event>& events, Event* ev = nullptr);
  void sample_into(Seq& s, const float* logits_row, Event& ev);
  TokenLogprob logprob_of(const float* logits_row, int32_t id, int top);

  const model::LlamaModel& model_;
  const tokenizer::Tokenizer* tok_;
  EngineOptions opts_;
  model::ForwardContext ctx_;
  std::string sizing_;  // how the pool was sized: set while pool_ is made, so declared first
  KVPool pool_;
  BlockManager blocks_;
  int64_t max_model_len_ = 0;
  RequestId next_id_ = 1;
  std::chrono::steady_clock::time_point t0_;
  std::vector<std::unique_ptr<Seq>> seqs_;  // every live sequence
  std::vector<Seq*> running_;               // admission order
  std::deque<Seq*> waiting_;                // arrival order (preempted ones at the front)
  std::vector<RequestId> aborted_;
  EngineCounters counters_;
  std::vector<int32_t> stop_ids_;  // EOS ids of the model and tokenizer
  std::vector<model::SeqChunk> chunks_;
  std::vector<Scheduled> scheduled_;
  std::vector<float> row_;  // one logits row on the host, edited by samplers
};

}  // namespace skv::engine
