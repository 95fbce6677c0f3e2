#include "io/config_json.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/compressed_tensors.h"

namespace skv::io {

namespace {

using ojson = nlohmann::ordered_json;

ojson rope_scaling_json(const RopeScaling& r) {
  if (r.type == "none") return nullptr;
  ojson j = {{"rope_type", r.type}, {"factor", r.factor}};
  if (r.type == "llama3") {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  }
  return j;
}

// An absent id is removed, so a stale value from an original config cannot survive.
void set_token_ids(ojson& j, const ModelConfig& c) {
  if (c.bos_token_id >= 0) {
    j["bos_token_id"] = c.bos_token_id;
  } else {
    j.erase("bos_token_id");
  }
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids.front();
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  } else {
    j.erase("eos_token_id");
  }
}

// Every field config_from_json_text reads except the rope ones. They are written from `c` even
// over an original config: values parsed from it come back unchanged, and fields whose default
// depends on the model type (a qwen2 base has implicit q/k/v biases and no head_dim) are stated
// explicitly, so a loader of the SwiftKV variant need not know the base type's defaults.
void set_model_fields(ojson& j, const ModelConfig& c) {
  j["architectures"] = ojson::array({model::hf_class_name(c.arch, c.swiftkv_checkpoint)});
  j["model_type"] = c.model_type();
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  if (c.arch_info().reads_sliding_window) {
    if (c.sliding_window > 0) {
      j["sliding_window"] = c.sliding_window;
    } else {
      j["sliding_window"] = nullptr;  // transformers' Mistral default is 4096, so "none" must be said
    }
  }
  set_token_ids(j, c);
  if (c.swiftkv_checkpoint) {
    j["swiftkv"] = c.swiftkv;
    j["num_key_value_layers"] = c.num_key_value_layers;
    j["key_value_group_size"] = c.key_value_group_size;
  } else {
    for (const char* k : {"swiftkv", "num_key_value_layers", "key_value_group_size"}) j.erase(k);
  }
  if (c.fp8.enabled) {
    j["quantization_config"] = compressed_tensors_json(c.fp8);
  } else {
    j.erase("quantization_config");
  }
}

// transformers 5.x renamed torch_dtype to dtype; keep whichever spelling the source used so a
// loader of either version reads the dtype actually stored.
void set_dtype(ojson& j, const std::string& dtype) {
  const bool has_new = j.contains("dtype");
  if (has_new) j["dtype"] = dtype;
  if (j.contains("torch_dtype") || !has_new) j["torch_dtype"] = dtype;
}

ojson synthesise(const ModelConfig& c) {
  ojson j = ojson::object();
  set_model_fields(j, c);
  j["attention_dropout"] = 0.0;
  j["hidden_act"] = "silu";  // the only activation the engine implements
  j["mlp_bias"] = false;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = rope_scaling_json(c.rope_scaling);
  j["torch_dtype"] = c.torch_dtype;
  j["use_cache"] = true;
  return j;
}

// The original's rope fields already parse to c's rope settings (c was read from them), and
// rewriting them would turn a 5.x rope_parameters config into a mixed one, so they are kept.
ojson from_original(const ModelConfig& c, const std::string& text) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("original config.json: invalid JSON: ", bound_message(e.what(), 300));
  }
  if (!j.is_object()) fail("original config.json: top level is not a JSON object");
  set_model_fields(j, c);
  set_dtype(j, c.torch_dtype);
  return j;
}

}  // namespace

std::string config_to_json_text(const ModelConfig& c, const std::string& original_json) {
  const ojson j = original_json.empty() ? synthesise(c) : from_original(c, original_json);
  return j.dump(2) + "\n";
}

std::string generation_config_to_json_text(const ModelConfig& c) {
  ojson j = ojson::object();
  set_token_ids(j, c);
  return j.dump(2) + "\n";
}

}  // namespace skv::io
