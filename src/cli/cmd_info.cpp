#include <cblas.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "backend/cpu/kernels.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "engine/kv_pool.h"

namespace skv::cli {

int cmd_info(int argc, char** argv) {
  Args args(argc, argv, join({{"--model"}, kEngineFlags}),
            join({kModelBoolFlags, kEngineBoolFlags, {"--help", "--json"}}), kAliases);
  if (args.flag("--help")) {
    std::puts(
        "usage: swiftkv info --model PATH [--json] [--no-swiftkv] [--block-size N] [--kv-cache-memory-bytes B]\n"
        "weights and parameters count what the chosen path loads (SwiftKV drops the later layers' teacher q/k/v);\n"
        "the KV cache pool is what the engine (run-batch, generate-data) would allocate with these flags");
    return 0;
  }
  const engine::EngineOptions eo = engine_options(args);
  auto model =
      model::LlamaModel::load(args.required("--model"), model::ModelOptions{.swiftkv = !args.flag("--no-swiftkv")});
  const io::ModelConfig& c = model->config();
  const model::KVLayout teacher = model::KVLayout::teacher(c);
  std::map<std::string, std::pair<int64_t, size_t>> by_dtype;  // tensors, bytes
  for (const auto& [name, t] : model->tensors_in_use()) {
    auto& e = by_dtype[dtype_name(t.dtype)];
    e.first += 1;
    e.second += t.nbytes();
  }
  nlohmann::json j = {
      {"path", model->files().path},
      {"format", model->files().format == io::ModelFormat::GGUF ? "gguf" : "hf"},
      {"architecture", c.model_type()},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_layers", c.num_layers},
      {"num_heads", c.num_heads},
      {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", c.rope_scaling.type},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", c.attention_bias},
      {"qk_norm", c.qk_norm()},
      {"sliding_window", c.sliding_window},
      {"parameters", model->parameter_count()},
      {"weight_bytes", model->weight_bytes()},
      {"kv_cache_bytes_per_token", model->kv_bytes_per_token()},
      {"kv_cache_bytes_per_token_teacher", model::LlamaModel::kv_bytes_per_token(c, teacher)},
      {"inference_path", model->swiftkv_active() ? "swiftkv" : "teacher"},
  };
  if (c.swiftkv_checkpoint) {
    const model::KVLayout skv = model::KVLayout::swiftkv(c);
    j["kv_cache_bytes_per_token_swiftkv"] = model::LlamaModel::kv_bytes_per_token(c, skv);
    j["swiftkv"] = {{"enabled_in_config", c.swiftkv},
                    {"num_key_value_layers", skv.first_skip},
                    {"key_value_group_size", skv.group},
                    {"kv_cache_layers", skv.cache_layers()}};
  }
  for (const auto& [dt, e] : by_dtype) j["dtypes"][dt] = {{"tensors", e.first}, {"bytes", e.second}};
  std::string sized_by;
  const model::KVSpec spec = model->kv_spec();
  const size_t per_token = engine::kv_bytes_per_token(spec.layers, spec.row, eo.kv_dtype);
  const int64_t blocks = engine::kv_pool_blocks(eo.kv, per_token, eo.block_size, model->weight_bytes(), &sized_by);
  const int64_t capacity = blocks * eo.block_size;
  j["kv_cache_pool"] = {{"blocks", blocks},
                        {"block_size", eo.block_size},
                        {"capacity_tokens", capacity},
                        {"bytes_per_token", per_token},
                        {"bytes", static_cast<int64_t>(capacity * per_token)},
                        {"dtype", dtype_name(eo.kv_dtype)},
                        {"sized_by", sized_by}};
  const char* isa = backend::cpu::isa_name(backend::cpu::active_isa());
  j["kernels"] = {{"isa", isa}, {"blas", openblas_get_corename()}};
  if (args.flag("--json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model:         %s (%s)\n", model->files().path.c_str(), j["format"].get<std::string>().c_str());
  std::printf("architecture:  %s, %lld layers, hidden %lld, ffn %lld, vocab %lld\n", c.model_type().c_str(),
              (long long)c.num_layers, (long long)c.hidden_size, (long long)c.intermediate_size,
              (long long)c.vocab_size);
  std::printf("attention:     %lld heads, %lld kv heads, head dim %lld, rope theta %g (%s scaling), max pos %lld\n",
              (long long)c.num_heads, (long long)c.num_kv_heads, (long long)c.head_dim, c.rope_theta,
              c.rope_scaling.type.c_str(), (long long)c.max_position_embeddings);
  std::printf("parameters:    %.2f M (%s embeddings)\n", model->parameter_count() / 1e6,
              c.tie_word_embeddings ? "tied" : "untied");
  std::printf("weights:       %.1f MiB\n", model->weight_bytes() / 1048576.0);
  for (const auto& [dt, e] : by_dtype)
    std::printf("  %-6s       %lld tensors, %.1f MiB\n", dt.c_str(), (long long)e.first, e.second / 1048576.0);
  if (c.swiftkv_checkpoint) {
    const model::KVLayout skv = model::KVLayout::swiftkv(c);
    std::printf("SwiftKV:       num_key_value_layers %lld, group %lld, %s; running the %s path\n",
                (long long)skv.first_skip, (long long)skv.group, c.swiftkv ? "enabled" : "disabled in config",
                model->swiftkv_active() ? "SwiftKV" : "teacher");
    std::printf(
        "KV cache:      %.1f KiB per token (F32): SwiftKV path %lld layers %.1f KiB, teacher path %lld layers "
        "%.1f KiB\n",
        model->kv_bytes_per_token() / 1024.0, (long long)skv.cache_layers(),
        model::LlamaModel::kv_bytes_per_token(c, skv) / 1024.0, (long long)teacher.cache_layers(),
        model::LlamaModel::kv_bytes_per_token(c, teacher) / 1024.0);
  } else {
    std::printf("KV cache:      %.1f KiB per token (F32)\n", model->kv_bytes_per_token() / 1024.0);
  }
  std::printf("KV pool:       %s, %zu bytes per token: %lld blocks of %lld tokens = %lld tokens, %.1f MiB (%s)\n",
              dtype_name(eo.kv_dtype), per_token, (long long)blocks, (long long)eo.block_size, (long long)capacity,
              capacity * per_token / 1048576.0, sized_by.c_str());
  std::printf("kernels:       %s; OpenBLAS %s\n", isa, openblas_get_corename());
  return 0;
}

}  // namespace skv::cli
