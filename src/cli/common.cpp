#include "cli/common.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "backend/cpu/threads.h"
#include "backend/ops.h"
#include "core/error.h"

namespace skv::cli {

const std::set<std::string> kModelFlags = {"--model", "--threads", "--ctx-size", "--batch-size", "--fp8-activations"};
const std::set<std::string> kModelBoolFlags = {"--no-swiftkv"};
const std::set<std::string> kSamplingFlags = {"--temperature",
                                              "--top-k",
                                              "--top-p",
                                              "--min-p",
                                              "--seed",
                                              "--repetition-penalty",
                                              "--presence-penalty",
                                              "--frequency-penalty",
                                              "--max-tokens",
                                              "--stop",
                                              "--stop-token-ids"};
const std::set<std::string> kSamplingBoolFlags = {"--ignore-eos"};
const std::map<std::string, std::string> kAliases = {
    {"-m", "--model"},      {"-t", "--threads"},
    {"-c", "--ctx-size"},   {"--max-model-len", "--ctx-size"},
    {"-b", "--batch-size"}, {"--temp", "--temperature"},
    {"-n", "--max-tokens"}, {"--n-predict", "--max-tokens"},
    {"-s", "--seed"},       {"--repeat-penalty", "--repetition-penalty"},
    {"-p", "--prompt"}};

std::set<std::string> join(std::initializer_list<std::set<std::string>> sets) {
  std::set<std::string> out;
  for (const auto& s : sets) out.insert(s.begin(), s.end());
  return out;
}

void log_swiftkv_path(const model::LlamaModel& model) {
  const io::ModelConfig& c = model.config();
  if (!c.swiftkv_checkpoint) return;
  const model::KVLayout skv = model::KVLayout::swiftkv(c), teacher = model::KVLayout::teacher(c);
  const double skv_kib = model::LlamaModel::kv_bytes_per_token(c, skv) / 1024.0;
  const double teacher_kib = model::LlamaModel::kv_bytes_per_token(c, teacher) / 1024.0;
  if (model.swiftkv_active()) {
    std::fprintf(stderr,
                 "swiftkv: SwiftKV path (num_key_value_layers %lld of %lld, group %lld): KV cache %lld layers, "
                 "%.1f KiB/token (teacher path %.1f KiB/token)\n",
                 (long long)skv.first_skip, (long long)c.num_layers, (long long)skv.group,
                 (long long)skv.cache_layers(), skv_kib, teacher_kib);
  } else {
    std::fprintf(
        stderr, "swiftkv: teacher path (%s): KV cache %lld layers, %.1f KiB/token (SwiftKV path %.1f KiB/token)\n",
        c.swiftkv ? "--no-swiftkv" : "config swiftkv = false", (long long)teacher.cache_layers(), teacher_kib, skv_kib);
  }
}

LoadedModel load_model(const Args& args, bool need_tokenizer) {
  LoadedModel m;
  m.threads = static_cast<int>(args.integer("--threads", 0));
  if (m.threads < 0) fail("--threads must be >= 0 (0 = all cores), got ", m.threads);
  backend::cpu::set_num_threads(m.threads);
  if (const auto mode = args.opt("--fp8-activations"))
    backend::set_fp8_activations(backend::parse_fp8_activations(*mode));
  const std::string path = args.required("--model");
  m.model = model::LlamaModel::load(path, model::ModelOptions{.swiftkv = !args.flag("--no-swiftkv")});
  log_swiftkv_path(*m.model);
  try {
    m.tokenizer = tokenizer::Tokenizer::from_path(path);
  } catch (const Error& e) {
    if (need_tokenizer) throw;
  }
  const int64_t max_pos = m.model->config().max_position_embeddings;
  m.context_size = args.integer("--ctx-size", std::min<int64_t>(4096, max_pos));
  if (m.context_size <= 0) fail("--ctx-size must be positive, got ", m.context_size);
  m.batch_size = args.integer("--batch-size", 512);
  if (m.batch_size <= 0) fail("--batch-size must be positive, got ", m.batch_size);
  return m;
}

engine::GenerationOptions generation_options(const Args& args, double default_temperature) {
  engine::GenerationOptions o;
  engine::SamplingParams& s = o.sampling;
  s.temperature = static_cast<float>(args.real("--temperature", default_temperature));
  s.top_k = static_cast<int>(args.integer("--top-k", 40));
  s.top_p = static_cast<float>(args.real("--top-p", 0.95));
  s.min_p = static_cast<float>(args.real("--min-p", 0.05));
  s.repetition_penalty = static_cast<float>(args.real("--repetition-penalty", 1.0));
  s.presence_penalty = static_cast<float>(args.real("--presence-penalty", 0.0));
  s.frequency_penalty = static_cast<float>(args.real("--frequency-penalty", 0.0));
  if (args.has("--seed")) {
    const int64_t seed = args.integer("--seed", 0);
    if (seed < 0) fail("--seed must be >= 0, got ", seed);
    s.seed = static_cast<uint64_t>(seed);
    s.has_seed = true;
  }
  s.validate();
  o.max_tokens = args.integer("--max-tokens", 256);
  if (o.max_tokens < 0) fail("--max-tokens must be >= 0, got ", o.max_tokens);
  o.ignore_eos = args.flag("--ignore-eos");
  o.stop = args.all("--stop");
  if (auto ids = args.opt("--stop-token-ids")) o.stop_token_ids = parse_id_list(*ids, "--stop-token-ids");
  return o;
}

const std::set<std::string> kEngineFlags = {"--max-num-seqs", "--max-num-batched-tokens", "--block-size",
                                            "--kv-cache-memory-bytes", "--kv-cache-dtype"};
const char* const kEngineHelp =
    "  -c, --max-model-len N     longest sequence, prompt + answer (default: the model's, capped by the KV cache)\n"
    "      --max-num-seqs N      sequences running at once (default 64)\n"
    "      --max-num-batched-tokens N  rows per engine step: decodes plus prompt chunks (default 512)\n"
    "      --block-size N        KV cache block, in positions (default 16)\n"
    "      --kv-cache-memory-bytes B  KV cache size, e.g. 2GiB (default: half of MemAvailable after the\n"
    "                            weights, at most 4 GiB)\n"
    "      --kv-cache-dtype T    auto (= f32), f32, f16, bf16, q8_0 (8-bit, a scale per 32 values) or fp8\n"
    "                            (MXFP8: E4M3 values with a power-of-two scale per 32)\n"
    "      --no-enable-prefix-caching  recompute shared prompt prefixes instead of reusing their blocks\n";
const std::set<std::string> kCacheFlags = {"--block-size", "--kv-cache-dtype"};
const char* const kCacheHelp =
    "      --kv-cache-dtype T    auto (= f32), f32, f16, bf16, q8_0 or fp8 (MXFP8), as for serve\n"
    "      --block-size N        KV cache block, in positions (default 16)\n"
    "      --no-enable-prefix-caching  recompute a repeated prefix instead of reusing its blocks\n";
const std::set<std::string> kEngineBoolFlags = {"--enable-prefix-caching", "--no-enable-prefix-caching"};

int64_t block_size_flag(const Args& args) {
  const int64_t b = args.integer("--block-size", engine::EngineOptions{}.block_size);
  if (b <= 0 || b > 1024) fail("--block-size must be in 1..1024, got ", b);
  return b;
}

engine::EngineOptions engine_options(const Args& args) {
  engine::EngineOptions o;
  o.max_num_seqs = args.integer("--max-num-seqs", o.max_num_seqs);
  if (o.max_num_seqs <= 0) fail("--max-num-seqs must be positive, got ", o.max_num_seqs);
  o.max_num_batched_tokens = args.integer("--max-num-batched-tokens", o.max_num_batched_tokens);
  if (o.max_num_batched_tokens <= 0) fail("--max-num-batched-tokens must be positive, got ", o.max_num_batched_tokens);
  o.block_size = block_size_flag(args);
  if (auto b = args.opt("--kv-cache-memory-bytes")) {
    try {
      o.kv.memory_bytes = engine::parse_bytes(*b);
    } catch (const Error& e) {
      fail("--kv-cache-memory-bytes: ", e.what());
    }
  }
  if (auto t = args.opt("--kv-cache-dtype")) o.kv_dtype = engine::parse_kv_dtype(*t);
  if (args.flag("--enable-prefix-caching") && args.flag("--no-enable-prefix-caching"))
    fail("give at most one of --enable-prefix-caching and --no-enable-prefix-caching");
  o.enable_prefix_caching = !args.flag("--no-enable-prefix-caching");
  if (args.has("--ctx-size")) {
    o.max_model_len = args.integer("--ctx-size", 0);
    if (o.max_model_len <= 0) fail("--max-model-len must be positive, got ", o.max_model_len);
  }
  return o;
}

std::string shared_data_dir() {
  if (const char* env = std::getenv("SKV_DATA"); env && *env) return env;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  // build dir inside the source tree: <root>/<build>/swiftkv, data at <root>/../shared/data
  if (!ec) candidates.push_back(exe.parent_path().parent_path().parent_path() / "shared" / "data");
  candidates.push_back(fs::path("..") / "shared" / "data");
  for (const auto& c : candidates)
    if (fs::is_directory(c, ec)) return c.lexically_normal().string();
  return candidates.back().string();
}

}  // namespace skv::cli
