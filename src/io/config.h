#pragma once
// Architecture hyper-parameters, read from a Hugging Face config.json (transformers 4.x
// `rope_theta` + `rope_scaling`, or 5.x `rope_parameters`) or from GGUF metadata.
#include <cstdint>
#include <string>
#include <vector>

#include "model/arch.h"

namespace skv::io {

class GGUFFile;

struct RopeScaling {
  std::string type = "none";  // none | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3
  double high_freq_factor = 4.0;                    // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

// A compressed-tensors FP8 checkpoint's scheme (io/compressed_tensors.h, docs/fp8.md): every
// Linear weight not in `ignore` is stored F8_E4M3 with a weight_scale of this strategy.
struct Fp8Scheme {
  bool enabled = false;
  std::string strategy = "channel";  // channel ([out, 1] scales) | tensor (one scale)
  bool dynamic_activations = true;   // input_activations given (dynamic, per token); false: weights only
  std::vector<std::string> ignore;   // module names, or "re:" + a regular expression
};

struct ModelConfig {
  model::Arch arch = model::Arch::Llama;
  bool swiftkv_checkpoint = false;  // model_type <arch>_swiftkv: has the SwiftKV fields / tensors
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // explicit in config or hidden_size / num_heads
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v bias (Qwen2 always; o_proj follows arch().o_bias_follows_qkv)
  int64_t sliding_window = 0;   // Mistral: a query at i sees keys i - W < j <= i; 0 = no window
  std::string torch_dtype = "float32";
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  // SwiftKV (docs/swiftkv.md#checkpoint-layout); zero layers means a plain model.
  bool swiftkv = false;
  int64_t num_key_value_layers = 0;
  int64_t key_value_group_size = 1;
  Fp8Scheme fp8;  // config.json quantization_config (compressed-tensors); HF input only

  const model::ArchInfo& arch_info() const { return skv::model::arch_info(arch); }
  std::string model_type() const { return model::model_type_name(arch, swiftkv_checkpoint); }
  bool o_proj_bias() const { return attention_bias && arch_info().o_bias_follows_qkv; }
  bool qk_norm() const { return arch_info().qk_norm; }

  void validate() const;  // throws skv::Error naming the bad field
};

// Throws skv::Error naming the file and field on missing / malformed input or an
// unsupported architecture.
ModelConfig config_from_json_file(const std::string& path);
ModelConfig config_from_json_text(const std::string& text, const std::string& origin);
ModelConfig config_from_gguf(const GGUFFile& f);

// The metadata keys a SwiftKV GGUF adds to its base file's (u32 values).
inline constexpr const char* kGGUFSwiftKVLayersKey = "swiftkv.num_key_value_layers";
inline constexpr const char* kGGUFSwiftKVGroupKey = "swiftkv.key_value_group_size";

}  // namespace skv::io
