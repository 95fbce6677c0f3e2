#pragma once
// The distillation run: data, schedule, data-parallel gradient sums, AdamW, checkpoints that a
// killed run resumes from exactly, a JSONL metrics log, and the distilled SwiftKV checkpoint.
#include <cstdint>
#include <string>
#include <vector>

namespace skv::train {

struct DistillOptions {
  std::string model;              // SwiftKV checkpoint directory (teacher = its --no-swiftkv path)
  std::vector<std::string> data;  // .txt / .jsonl files (train/data.h)
  std::string out;                // the distilled checkpoint directory
  std::string checkpoint_dir;     // training state + metrics.jsonl (default: <out>.state)
  int64_t steps = 0;              // > 0: exactly this many optimiser steps
  double epochs = 1.0;            // otherwise: passes over the packed data
  double lr = 2e-4, warmup_ratio = 0.05, weight_decay = 0.0, max_grad_norm = 1.0;
  int64_t max_seq_len = 2048;
  int64_t batch_tokens = 16384;  // global tokens per optimiser step (rounded to whole sequences)
  double temperature = 2.0, kl_weight = 1.0, hidden_loss_weight = 1.0;
  int64_t save_every = 100;  // steps between checkpoints (0: only at the end)
  bool resume = false;
  uint64_t seed = 42;
  std::string decontaminate_dir;  // evaluation data whose items must not be trained on ("" = off)
  int64_t head_chunk_rows = 256;
  bool force = false;         // replace an existing --out model directory
  int64_t stop_after = 0;     // > 0: stop (checkpointed, weights exported) after this many steps of this run
  std::string teacher_cache;  // "": run the teacher every step; else its targets cached there (teacher_cache.h)
  int64_t teacher_top_k = 0;  // > 0: the cache keeps this many log-probs per token (top-k KL);
                              // 0: the teacher's final hidden state (full KL)
};

struct DistillResult {
  int64_t steps_done = 0, total_steps = 0;  // steps of this run; of the whole schedule
  int64_t end_step = 0;                     // the schedule step reached
  bool completed = false;                   // all steps done and the model written
  int64_t tokens = 0;                       // trained on in this run
  double seconds = 0;
  double first_loss = 0, last_loss = 0;
  std::string partial_model;          // stopped by stop_after: the weights so far, a full checkpoint
  double cache_seconds = 0;           // building the teacher cache (part of seconds)
  double cached_kl = 0, live_kl = 0;  // a fresh cache's check: both KLs on its first sequences
};

// Runs on every rank of Comm::world(); only rank 0 writes files. Throws skv::Error.
DistillResult run_distill(const DistillOptions& opts);

}  // namespace skv::train
