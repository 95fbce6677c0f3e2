#include "model/arch.h"

#include <map>

#include "core/error.h"

namespace skv::model {

namespace {

// Attention rules as transformers implements them: LlamaAttention and Qwen3Attention bias
// q/k/v/o iff attention_bias; MistralAttention never has biases (Mistral configs have no
// attention_bias field, and a stray one is ignored); Qwen2Attention biases q/k/v always, o never.
// llama.cpp writes Mistral checkpoints as GGUF "llama", so Mistral has no GGUF name of its own.
const std::vector<ArchInfo> kArchs = {
    // id, model_type, class, SwiftKV model_type, SwiftKV class, GGUF name,
    // implicit_qkv_bias, reads_attention_bias, o_bias_follows_qkv, qk_norm, reads_sliding_window, gguf_permuted_qk
    {Arch::Llama, "llama", "LlamaForCausalLM", "llama_swiftkv", "LlamaSwiftKVForCausalLM", "llama", false, true, true,
     false, false, true},
    {Arch::Qwen2, "qwen2", "Qwen2ForCausalLM", "qwen2_swiftkv", "Qwen2SwiftKVForCausalLM", "qwen2", true, false, false,
     false, false, false},
    {Arch::Qwen3, "qwen3", "Qwen3ForCausalLM", "qwen3_swiftkv", "Qwen3SwiftKVForCausalLM", "qwen3", false, true, true,
     true, false, false},
    {Arch::Mistral, "mistral", "MistralForCausalLM", "mistral_swiftkv", "MistralSwiftKVForCausalLM", nullptr, false,
     false, true, false, true, true},
};

}  // namespace

const std::vector<ArchInfo>& all_archs() { return kArchs; }

const ArchInfo& arch_info(Arch a) {
  for (const ArchInfo& i : kArchs)
    if (i.id == a) return i;
  fail("unknown architecture id ", static_cast<int>(a));
}

const ArchInfo* arch_by_class(const std::string& cls, bool* swiftkv) {
  for (const ArchInfo& i : kArchs) {
    if (cls != i.hf_class && cls != i.swiftkv_class) continue;
    if (swiftkv) *swiftkv = cls == i.swiftkv_class;
    return &i;
  }
  return nullptr;
}

const ArchInfo* arch_by_model_type(const std::string& model_type, bool* swiftkv) {
  for (const ArchInfo& i : kArchs) {
    if (model_type != i.model_type && model_type != i.swiftkv_model_type) continue;
    if (swiftkv) *swiftkv = model_type == i.swiftkv_model_type;
    return &i;
  }
  return nullptr;
}

const ArchInfo* arch_by_gguf_name(const std::string& gguf_name) {
  for (const ArchInfo& i : kArchs)
    if (i.gguf_name && gguf_name == i.gguf_name) return &i;
  return nullptr;
}

std::string supported_arch_list(bool with_swiftkv) {
  std::string s;
  for (const ArchInfo& i : kArchs) s += (s.empty() ? "" : ", ") + std::string(i.model_type);
  if (with_swiftkv) s += " and their _swiftkv variants";
  return s;
}

std::string supported_gguf_arch_list() {
  std::string s;
  for (const ArchInfo& i : kArchs)
    if (i.gguf_name) s += (s.empty() ? "" : ", ") + std::string(i.gguf_name);
  return s;
}

std::string model_type_name(Arch a, bool swiftkv) {
  const ArchInfo& i = arch_info(a);
  return swiftkv ? i.swiftkv_model_type : i.model_type;
}

std::string hf_class_name(Arch a, bool swiftkv) {
  const ArchInfo& i = arch_info(a);
  return swiftkv ? i.swiftkv_class : i.hf_class;
}

namespace {

// llama.cpp's names, plus the SwiftKV tensors' in the same style (docs/swiftkv.md, "SwiftKV GGUF").
const std::map<std::string, std::string>& gguf_global_names() {
  static const std::map<std::string, std::string> m = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
      {"output_norm_swiftkv.weight", "model.norm_swiftkv.weight"},
  };
  return m;
}

const std::map<std::string, std::string>& gguf_layer_names() {
  static const std::map<std::string, std::string> m = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_output.bias", "self_attn.o_proj.bias"},
      {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      {"attn_q_swiftkv.weight", "self_attn.q_proj_swiftkv.weight"},
      {"attn_k_swiftkv.weight", "self_attn.k_proj_swiftkv.weight"},
      {"attn_v_swiftkv.weight", "self_attn.v_proj_swiftkv.weight"},
      {"attn_q_swiftkv.bias", "self_attn.q_proj_swiftkv.bias"},
      {"attn_k_swiftkv.bias", "self_attn.k_proj_swiftkv.bias"},
      {"attn_v_swiftkv.bias", "self_attn.v_proj_swiftkv.bias"},
      {"attn_q_norm_swiftkv.weight", "self_attn.q_norm_swiftkv.weight"},
      {"attn_k_norm_swiftkv.weight", "self_attn.k_norm_swiftkv.weight"},
  };
  return m;
}

}  // namespace

std::string gguf_tensor_name_from_hf(const std::string& name) {
  for (const auto& [gguf, hf] : gguf_global_names())
    if (hf == name) return gguf;
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) == 0) {
    const size_t dot = name.find('.', prefix.size());
    if (dot != std::string::npos) {
      const std::string layer = name.substr(prefix.size(), dot - prefix.size());
      const std::string rest = name.substr(dot + 1);
      for (const auto& [gguf, hf] : gguf_layer_names())
        if (hf == rest) return "blk." + layer + "." + gguf;
    }
  }
  fail("no GGUF name for tensor ", quote_bounded(name));
}

std::string hf_tensor_name_from_gguf(const std::string& name) {
  const auto& kGlobal = gguf_global_names();
  const auto& kLayer = gguf_layer_names();
  if (auto it = kGlobal.find(name); it != kGlobal.end()) return it->second;
  // blk.<N>.<suffix>
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    const std::string layer = name.substr(4, dot == std::string::npos ? 0 : dot - 4);
    const bool numeric = !layer.empty() && layer.find_first_not_of("0123456789") == std::string::npos;
    if (numeric)
      if (auto it = kLayer.find(name.substr(dot + 1)); it != kLayer.end())
        return "model.layers." + layer + "." + it->second;
  }
  return name;
}

}  // namespace skv::model
