#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace skv::cli {

int cmd_info(int argc, char** argv) {
  Args args(argc, argv, {"--model"}, {"--help", "--json"}, kAliases);
  if (args.flag("--help")) {
    std::puts("usage: swiftkv info --model PATH [--json]");
    return 0;
  }
  auto model = LlamaModel::load(args.required("--model"));
  const ModelConfig& c = model->config();
  std::map<std::string, std::pair<int64_t, size_t>> by_dtype;  // tensors, bytes
  for (const auto& [name, t] : model->files().tensors) {
    auto& e = by_dtype[dtype_name(t.dtype)];
    e.first += 1;
    e.second += t.nbytes();
  }
  nlohmann::json j = {
      {"path", model->files().path},
      {"format", model->files().format == ModelFormat::GGUF ? "gguf" : "hf"},
      {"architecture", c.architecture},
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
      {"parameters", model->parameter_count()},
      {"weight_bytes", model->weight_bytes()},
      {"kv_cache_bytes_per_token", KVCache::bytes_per_token(c)},
  };
  for (const auto& [dt, e] : by_dtype) j["dtypes"][dt] = {{"tensors", e.first}, {"bytes", e.second}};
  if (args.flag("--json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model:         %s (%s)\n", model->files().path.c_str(), j["format"].get<std::string>().c_str());
  std::printf("architecture:  %s, %lld layers, hidden %lld, ffn %lld, vocab %lld\n", c.architecture.c_str(),
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
  std::printf("KV cache:      %.1f KiB per token (F32)\n", KVCache::bytes_per_token(c) / 1024.0);
  return 0;
}

}  // namespace skv::cli
