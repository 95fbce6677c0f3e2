#pragma once
// Flags and loading shared by the subcommands that run a model.
#include <memory>
#include <set>
#include <string>

#include "cli/args.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::cli {

// --model, -t/--threads, -c/--ctx-size (--max-model-len), -b/--batch-size, --fp8-activations f32|fp8
// (how FP8 weights meet activations, backend/ops.h; also SKV_FP8_ACTIVATIONS)
extern const std::set<std::string> kModelFlags;
// --no-swiftkv: run a SwiftKV checkpoint's teacher path (every layer computes its own K/V)
extern const std::set<std::string> kModelBoolFlags;
// --temperature/--temp, --top-k, --top-p, --min-p (llama.cpp defaults 0.8 / 40 / 0.95 / 0.05), --seed, penalties,
// --max-tokens/-n,
// --stop, --stop-token-ids, --logit-bias; bool: --ignore-eos
extern const std::set<std::string> kSamplingFlags;
extern const std::set<std::string> kSamplingBoolFlags;
extern const std::map<std::string, std::string> kAliases;

std::set<std::string> join(std::initializer_list<std::set<std::string>> sets);

struct LoadedModel {
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null when the model has none and none is needed
  int64_t context_size = 0;
  int64_t batch_size = 512;
  int threads = 0;
};

// Applies --threads, loads the model (--no-swiftkv picks the teacher path), the tokenizer
// (required if need_tokenizer) and sizes the context (--ctx-size, default min(4096, the model's
// max positions)). For SwiftKV checkpoints it logs the path and KV bytes per token to stderr.
LoadedModel load_model(const Args& args, bool need_tokenizer);

void log_swiftkv_path(const model::LlamaModel& model);

engine::GenerationOptions generation_options(const Args& args, double default_temperature);

// The engine core's flags (vLLM's names): --max-num-seqs, --max-num-batched-tokens, --block-size,
// --kv-cache-memory-bytes (2GiB-style values); bool: --enable-prefix-caching (the default),
// --no-enable-prefix-caching.
extern const std::set<std::string> kEngineFlags;
extern const char* const kEngineHelp;  // their --help lines
extern const std::set<std::string> kEngineBoolFlags;
// The cache flags a one-sequence command (generate, chat, score) takes: --block-size,
// --kv-cache-dtype; bool: the prefix-caching pair.
extern const std::set<std::string> kCacheFlags;
extern const char* const kCacheHelp;
// --block-size, checked (default 16).
int64_t block_size_flag(const Args& args);
// EngineOptions from those flags; --ctx-size / --max-model-len, when given, is the model length
// (otherwise the model's, capped by what the KV pool holds).
engine::EngineOptions engine_options(const Args& args);

// The shared evaluation data sets: $SKV_DATA, else ../shared/data beside the source tree that
// holds this binary's build directory, else ../shared/data from the working directory. Returns
// the last candidate even when it does not exist (callers report the missing files).
std::string shared_data_dir();

}  // namespace skv::cli
