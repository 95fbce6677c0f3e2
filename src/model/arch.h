#pragma once
// The one table of supported architectures: how each is named in Hugging Face configs and
// GGUF files, which config fields it reads, and how its attention layer differs from Llama's.
// Everything that depends on the architecture asks this table instead of comparing names, so
// adding an architecture is adding a row (docs/architectures.md).
#include <cstdint>
#include <string>
#include <vector>

namespace skv::model {

enum class Arch { Llama, Qwen2, Qwen3, Mistral };

struct ArchInfo {
  Arch id;
  const char* model_type;          // config.json model_type of the base model
  const char* hf_class;            // its transformers class
  const char* swiftkv_model_type;  // docs/swiftkv.md#checkpoint-layout
  const char* swiftkv_class;
  const char* gguf_name;  // general.architecture written by llama.cpp; nullptr: none of its own
  // q/k/v carry a bias whatever config.json says (Qwen2 has no attention_bias field).
  bool implicit_qkv_bias;
  // config.json's attention_bias decides the q/k/v(/o) biases; false: it is ignored (Mistral's
  // attention has no biases, whatever the config says).
  bool reads_attention_bias;
  // o_proj has a bias exactly when q/k/v do (transformers' Llama/Mistral/Qwen3 attention);
  // false: o_proj never has one (Qwen2Attention).
  bool o_bias_follows_qkv;
  // Per-head RMSNorm of Q and K after projection, before RoPE (`q_norm` / `k_norm` [head_dim]).
  bool qk_norm;
  // Reads `sliding_window` from config.json (null = no window).
  bool reads_sliding_window;
  // llama.cpp's converter permutes this architecture's q/k rows for ggml's adjacent-pair RoPE,
  // so a GGUF of it is run with interleaved RoPE (or un-permuted on export).
  bool gguf_permuted_qk;
};

const std::vector<ArchInfo>& all_archs();
const ArchInfo& arch_info(Arch a);

// A config's `architectures[0]` class or its model_type, base or SwiftKV variant; nullptr when
// unknown. `swiftkv` (may be null) is set to whether the name is the SwiftKV variant.
const ArchInfo* arch_by_class(const std::string& cls, bool* swiftkv);
const ArchInfo* arch_by_model_type(const std::string& model_type, bool* swiftkv);
const ArchInfo* arch_by_gguf_name(const std::string& gguf_name);

// "llama, qwen2, qwen3, mistral" (and with_swiftkv: their *_swiftkv variants), for errors.
std::string supported_arch_list(bool with_swiftkv);
std::string supported_gguf_arch_list();

// model_type / class of a base model or of its SwiftKV variant.
std::string model_type_name(Arch a, bool swiftkv);
std::string hf_class_name(Arch a, bool swiftkv);

// llama.cpp's GGUF tensor name -> the Hugging Face name the model code uses
// (blk.3.attn_q.weight -> model.layers.3.self_attn.q_proj.weight). Unknown names are returned
// unchanged so model code can still look them up.
std::string hf_tensor_name_from_gguf(const std::string& gguf_name);
// The inverse, for writing GGUF files; throws for a name GGUF has no spelling for.
std::string gguf_tensor_name_from_hf(const std::string& hf_name);

}  // namespace skv::model
