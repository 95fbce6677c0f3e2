#include "io/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/compressed_tensors.h"
#include "io/gguf.h"
#include "io/read_file.h"

namespace skv::io {

namespace {

using json = nlohmann::json;

// Typed access to one JSON object; every error names the origin (file) and the field.
// A null value counts as absent, since HF configs write `"head_dim": null` for "derive it".
struct Fields {
  const json& j;
  const std::string& origin;
  std::string scope;  // enclosing field ("rope_scaling") so nested fields are named unambiguously

  const json* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const char* what) const {
    fail(origin, ": field '", scope, scope.empty() ? "" : ".", key, "' ", what);
  }
  int64_t get_int(const char* key) const {
    const json* v = find(key);
    if (!v) bad(key, "is missing");
    if (v->is_number_integer()) return v->get<int64_t>();
    // Some exporters write integral values as floats (e.g. 8192.0).
    if (v->is_number_float() && std::nearbyint(v->get<double>()) == v->get<double>() &&
        std::fabs(v->get<double>()) < 9.0e18)
      return static_cast<int64_t>(v->get<double>());
    bad(key, "must be an integer");
  }
  int64_t get_int(const char* key, int64_t def) const { return find(key) ? get_int(key) : def; }
  double get_num(const char* key) const {
    const json* v = find(key);
    if (!v) bad(key, "is missing");
    if (!v->is_number()) bad(key, "must be a number");
    return v->get<double>();
  }
  double get_num(const char* key, double def) const { return find(key) ? get_num(key) : def; }
  bool get_bool(const char* key, bool def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_boolean()) bad(key, "must be true or false");
    return v->get<bool>();
  }
  std::string get_str(const char* key, const std::string& def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_string()) bad(key, "must be a string");
    return v->get<std::string>();
  }
};

// `architectures` names the exact class (a SwiftKV checkpoint may say model_type "llama"), so
// it wins when recognised; model_type is the fallback for configs without it.
void detect_architecture(const json& j, const std::string& origin, ModelConfig& c) {
  std::string cls, model_type;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string())
    cls = (*it)[0].get<std::string>();
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) model_type = it->get<std::string>();
  const model::ArchInfo* a = model::arch_by_class(cls, &c.swiftkv_checkpoint);
  if (!a) a = model::arch_by_model_type(model_type, &c.swiftkv_checkpoint);
  if (!a) {
    const std::string shown = !cls.empty() ? cls : !model_type.empty() ? model_type : "(none given)";
    fail(origin, ": unsupported architecture ", quote_bounded(shown), " (supported: ", model::supported_arch_list(true),
         ")");
  }
  c.arch = a->id;
}

// The scaling fields are the same in 4.x `rope_scaling` and 5.x `rope_parameters`.
RopeScaling parse_rope_scaling(const Fields& f) {
  RopeScaling r;
  std::string type = f.get_str("rope_type", "");
  if (type.empty()) type = f.get_str("type", "default");
  if (type == "default") return r;  // type stays "none"
  if (type == "linear") {
    r.type = "linear";
    r.factor = f.get_num("factor");
    return r;
  }
  if (type == "llama3") {
    r.type = "llama3";
    r.factor = f.get_num("factor");
    r.low_freq_factor = f.get_num("low_freq_factor");
    r.high_freq_factor = f.get_num("high_freq_factor");
    r.original_max_position_embeddings = f.get_int("original_max_position_embeddings");
    return r;
  }
  fail(f.origin, ": unsupported rope scaling type ", quote_bounded(type), " in field '", f.scope,
       "' (supported: default, linear, llama3)");
}

void validate_with_origin(const ModelConfig& c, const std::string& origin) {
  try {
    c.validate();
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }
}

}  // namespace

void ModelConfig::validate() const {
  const std::pair<const char*, int64_t> positive[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_layers},
      {"num_attention_heads", num_heads},
      {"num_key_value_heads", num_kv_heads},
      {"head_dim", head_dim},
      {"max_position_embeddings", max_position_embeddings},
  };
  for (const auto& [name, v] : positive)
    if (v <= 0) fail("field ", quote_bounded(name), " must be positive (got ", v, ")");
  if (num_heads % num_kv_heads != 0)
    fail("field 'num_attention_heads' (", num_heads, ") must be a multiple of 'num_key_value_heads' (", num_kv_heads,
         ")");
  if (head_dim % 2 != 0) fail("field 'head_dim' (", head_dim, ") must be even for rotary embeddings");
  if (!(rms_norm_eps > 0)) fail("field 'rms_norm_eps' must be positive (got ", rms_norm_eps, ")");
  if (!(rope_theta > 0)) fail("field 'rope_theta' must be positive (got ", rope_theta, ")");
  if (sliding_window < 0) fail("field 'sliding_window' must be positive or null (got ", sliding_window, ")");

  const RopeScaling& r = rope_scaling;
  if (r.type != "none" && r.type != "linear" && r.type != "llama3")
    fail("unsupported rope scaling type ", quote_bounded(r.type), " (supported: default, linear, llama3)");
  if (r.type != "none" && !(r.factor > 0)) fail("field 'rope_scaling.factor' must be positive (got ", r.factor, ")");
  if (r.type == "llama3") {
    if (!(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor))
      fail("fields 'rope_scaling.low_freq_factor' (", r.low_freq_factor, ") and 'rope_scaling.high_freq_factor' (",
           r.high_freq_factor, ") must satisfy 0 < low < high");
    if (r.original_max_position_embeddings <= 0)
      fail("field 'rope_scaling.original_max_position_embeddings' must be positive (got ",
           r.original_max_position_embeddings, ")");
  }

  if (swiftkv) {
    if (num_key_value_layers < 1 || num_key_value_layers >= num_layers)
      fail("field 'num_key_value_layers' (", num_key_value_layers,
           ") must be in [1, num_hidden_layers - 1 = ", num_layers - 1, "]");
    if (key_value_group_size < 1) fail("field 'key_value_group_size' (", key_value_group_size, ") must be at least 1");
    if ((num_layers - num_key_value_layers) % key_value_group_size != 0)
      fail("field 'key_value_group_size' (", key_value_group_size, ") must divide num_hidden_layers - ",
           "num_key_value_layers = ", num_layers - num_key_value_layers);
  }
}

ModelConfig config_from_json_text(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(origin, ": invalid JSON: ", bound_message(e.what(), 300));
  }
  if (!j.is_object()) fail(origin, ": invalid config: top level is not a JSON object");

  ModelConfig c;
  detect_architecture(j, origin, c);
  const model::ArchInfo& arch = c.arch_info();
  const Fields f{j, origin, ""};
  c.vocab_size = f.get_int("vocab_size");
  c.hidden_size = f.get_int("hidden_size");
  c.intermediate_size = f.get_int("intermediate_size");
  c.num_layers = f.get_int("num_hidden_layers");
  c.num_heads = f.get_int("num_attention_heads");
  c.num_kv_heads = f.get_int("num_key_value_heads", c.num_heads);
  if (f.find("head_dim")) {
    c.head_dim = f.get_int("head_dim");
  } else if (c.num_heads > 0) {
    if (c.hidden_size % c.num_heads != 0)
      fail(origin, ": no head_dim and hidden_size (", c.hidden_size, ") is not divisible by num_attention_heads (",
           c.num_heads, ")");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.rms_norm_eps = f.get_num("rms_norm_eps", 1e-6);  // transformers' default for llama and qwen2
  c.max_position_embeddings = f.get_int("max_position_embeddings", c.max_position_embeddings);
  c.tie_word_embeddings = f.get_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases (its config has no attention_bias field); Mistral never has.
  c.attention_bias = arch.implicit_qkv_bias || (arch.reads_attention_bias && f.get_bool("attention_bias", false));
  if (f.get_bool("mlp_bias", false)) fail(origin, ": field 'mlp_bias' = true is not supported");
  // Qwen2/Qwen3 carry a sliding_window value that only counts with use_sliding_window (and then
  // per layer, through layer_types / max_window_layers), which is not implemented.
  if (f.get_bool("use_sliding_window", false)) fail(origin, ": field 'use_sliding_window' = true is not supported");
  // transformers' MistralConfig defaults an absent sliding_window to 4096; only null means none.
  if (arch.reads_sliding_window)
    c.sliding_window = j.contains("sliding_window") ? f.get_int("sliding_window", 0) : 4096;
  c.torch_dtype = f.get_str("dtype", f.get_str("torch_dtype", c.torch_dtype));  // 5.x renamed it

  c.bos_token_id = f.get_int("bos_token_id", -1);
  if (const json* eos = f.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const auto& e : *eos) {
        if (!e.is_number_integer()) fail(origin, ": field 'eos_token_id' must be an integer or a list of integers");
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(f.get_int("eos_token_id"));
    }
  }

  if (const json* rp = f.find("rope_parameters")) {  // transformers 5.x
    if (!rp->is_object()) fail(origin, ": field 'rope_parameters' must be an object");
    const Fields rf{*rp, origin, "rope_parameters"};
    c.rope_theta = rf.get_num("rope_theta", f.get_num("rope_theta", c.rope_theta));
    c.rope_scaling = parse_rope_scaling(rf);
  } else {  // transformers 4.x
    c.rope_theta = f.get_num("rope_theta", c.rope_theta);
    if (const json* rs = f.find("rope_scaling")) {
      if (!rs->is_object()) fail(origin, ": field 'rope_scaling' must be an object or null");
      c.rope_scaling = parse_rope_scaling(Fields{*rs, origin, "rope_scaling"});
    }
  }

  if (const json* q = f.find("quantization_config")) c.fp8 = parse_compressed_tensors(*q, origin);

  if (c.swiftkv_checkpoint) {
    c.swiftkv = f.get_bool("swiftkv", true);
    c.num_key_value_layers = f.get_int("num_key_value_layers", 0);
    c.key_value_group_size = f.get_int("key_value_group_size", 1);
  }

  validate_with_origin(c, origin);
  return c;
}

ModelConfig config_from_json_file(const std::string& path) {
  return config_from_json_text(read_file(path, "model config"), path);
}

ModelConfig config_from_gguf(const GGUFFile& f) {
  const std::string& path = f.path();
  if (!f.has("general.architecture")) fail(path, ": metadata key 'general.architecture' not found");
  const std::string arch = f.get_string("general.architecture");
  const model::ArchInfo* info = model::arch_by_gguf_name(arch);
  if (!info)
    fail(path, ": unsupported GGUF architecture ", quote_bounded(arch),
         " (supported: ", model::supported_gguf_arch_list(), ")");
  // llama.cpp stores llama3 rope scaling as precomputed per-frequency divisors in this tensor
  // instead of metadata; supporting it would need a rope variant driven by that tensor.
  if (f.has_tensor("rope_freqs.weight"))
    fail(path,
         ": llama3-style rope scaling (tensor 'rope_freqs.weight') is not supported for GGUF input; "
         "use the Hugging Face model directory instead");
  auto key = [&](const char* k) { return arch + "." + k; };

  ModelConfig c;
  c.arch = info->id;
  c.num_layers = f.get_int(key("block_count"));
  c.hidden_size = f.get_int(key("embedding_length"));
  c.intermediate_size = f.get_int(key("feed_forward_length"));
  c.num_heads = f.get_int(key("attention.head_count"));
  c.num_kv_heads = f.get_int(key("attention.head_count_kv"), c.num_heads);
  c.rms_norm_eps = f.get_float(key("attention.layer_norm_rms_epsilon"));
  c.rope_theta = f.get_float(key("rope.freq_base"), 10000.0);
  c.max_position_embeddings = f.get_int(key("context_length"), c.max_position_embeddings);
  const int64_t derived_head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.head_dim = f.get_int(key("attention.key_length"), f.get_int(key("rope.dimension_count"), derived_head_dim));

  if (f.has(key("vocab_size"))) {
    c.vocab_size = f.get_int(key("vocab_size"));
  } else if (f.has("tokenizer.ggml.tokens")) {
    const auto* tokens = std::get_if<std::vector<std::string>>(&f.get("tokenizer.ggml.tokens"));
    if (!tokens) fail(path, ": metadata key 'tokenizer.ggml.tokens' is not an array of strings");
    c.vocab_size = static_cast<int64_t>(tokens->size());
  } else {
    fail(path, ": cannot determine vocab size (no '", key("vocab_size"), "' or 'tokenizer.ggml.tokens')");
  }

  const std::string scaling = f.get_string(key("rope.scaling.type"), "none");
  if (scaling == "linear") {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = f.get_float(key("rope.scaling.factor"));
  } else if (scaling != "none") {
    fail(path, ": unsupported rope scaling type ", quote_bounded(scaling), " (supported: none, linear)");
  }

  c.tie_word_embeddings = !f.has_tensor("output.weight");
  // llama.cpp has no attention_bias key; the bias tensors themselves say it.
  c.attention_bias = info->implicit_qkv_bias || f.has_tensor("blk.0.attn_q.bias");
  c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  if (f.has("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {f.get_int("tokenizer.ggml.eos_token_id")};

  // A SwiftKV GGUF (swiftkv convert --out X.gguf): the base file plus these keys and tensors.
  if (f.has(kGGUFSwiftKVLayersKey)) {
    c.swiftkv_checkpoint = true;
    c.swiftkv = true;
    c.num_key_value_layers = f.get_int(kGGUFSwiftKVLayersKey);
    c.key_value_group_size = f.get_int(kGGUFSwiftKVGroupKey, 1);
  } else if (f.has(kGGUFSwiftKVGroupKey)) {
    fail(path, ": metadata key ", quote_bounded(kGGUFSwiftKVGroupKey), " without ",
         quote_bounded(kGGUFSwiftKVLayersKey));
  }

  validate_with_origin(c, path);
  return c;
}

}  // namespace skv::io
