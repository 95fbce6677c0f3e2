#include "model/swiftkv.h"

#include <cmath>
#include <vector>

#include "backend/ops.h"
#include "core/error.h"

namespace skv {

namespace {

// Mean of same-shape tensors, in F32 (the members may be quantised).
Tensor mean_of(const std::vector<const Tensor*>& members) {
  Tensor out = Tensor::zeros(DType::F32, members.front()->shape);
  float* o = out.as<float>();
  for (const Tensor* m : members) {
    Tensor f = ops::to_dtype(*m, DType::F32);
    const float* v = f.as<float>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] += v[i];
  }
  const float inv = 1.0f / static_cast<float>(members.size());
  for (int64_t i = 0; i < out.numel(); ++i) o[i] *= inv;
  return out;
}

}  // namespace

std::string swiftkv_norm_name() { return "model.norm_swiftkv.weight"; }

std::string swiftkv_tensor_name(int64_t layer, const char* proj, const char* kind) {
  return layer_tensor_name(layer, std::string("self_attn.") + proj + "_proj_swiftkv." + kind);
}

int64_t num_key_value_layers_for_fraction(int64_t num_layers, double fraction) {
  if (!(fraction > 0.0 && fraction < 1.0))
    fail("SwiftKV fraction must be strictly between 0 and 1 (the share of layers whose prefill is skipped), got ",
         fraction);
  const int64_t skipped = std::llround(fraction * static_cast<double>(num_layers));
  const int64_t m = num_layers - skipped;
  if (m < 1 || m >= num_layers)
    fail("SwiftKV fraction ", fraction, " of ", num_layers, " layers gives num_key_value_layers = ", m,
         ", outside [1, ", num_layers - 1, "]");
  return m;
}

void check_swiftkv_settings(int64_t num_layers, int64_t m, int64_t g) {
  if (num_layers < 2) fail("a model needs at least 2 layers for SwiftKV, this one has ", num_layers);
  if (m < 1 || m >= num_layers)
    fail("num_key_value_layers must be in [1, ", num_layers - 1, "] for a model with ", num_layers, " layers, got ", m);
  if (g < 1) fail("key_value_group_size must be at least 1, got ", g);
  if ((num_layers - m) % g != 0)
    fail("key_value_group_size ", g, " must divide the ", num_layers - m, " layers after num_key_value_layers = ", m,
         " (num_hidden_layers = ", num_layers, ")");
}

void add_swiftkv_tensors(ModelFiles& files, int64_t m, int64_t g) {
  ModelConfig& c = files.config;
  if (c.architecture == "llama_swiftkv" || files.find(swiftkv_norm_name()))
    fail(files.path, " is already a SwiftKV model; convert its base model instead");
  check_swiftkv_settings(c.num_layers, m, g);
  std::vector<std::pair<std::string, Tensor>> added;
  added.emplace_back(swiftkv_norm_name(), files.get(layer_tensor_name(m, "input_layernorm.weight")));
  std::vector<const char*> kinds = {"weight"};
  if (c.attention_bias) kinds.push_back("bias");
  for (int64_t i = m; i < c.num_layers; ++i) {
    for (const char* kind : kinds) {
      const std::string k = kind;
      added.emplace_back(swiftkv_tensor_name(i, "q", kind), files.get(layer_tensor_name(i, "self_attn.q_proj." + k)));
      if ((i - m) % g != 0) continue;
      for (const char* proj : {"k", "v"}) {
        const std::string base = std::string("self_attn.") + proj + "_proj." + k;
        if (g == 1) {
          added.emplace_back(swiftkv_tensor_name(i, proj, kind), files.get(layer_tensor_name(i, base)));
          continue;
        }
        std::vector<const Tensor*> members;
        for (int64_t j = i; j < i + g; ++j) members.push_back(&files.get(layer_tensor_name(j, base)));
        added.emplace_back(swiftkv_tensor_name(i, proj, kind), mean_of(members));
      }
    }
  }
  // Qwen2 has q/k/v biases only, but a Llama-family attention_bias model also biases o_proj:
  // a zero bias keeps the converted model exact for every Llama-style loader.
  if (c.architecture == "qwen2") {
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string name = layer_tensor_name(i, "self_attn.o_proj.bias");
      if (!files.find(name)) added.emplace_back(name, Tensor::zeros(DType::F32, {c.hidden_size}));
    }
    c.attention_bias = true;
  }
  for (auto& [name, t] : added) files.tensors[name] = std::move(t);
  c.architecture = "llama_swiftkv";
  c.swiftkv = true;
  c.num_key_value_layers = m;
  c.key_value_group_size = g;
}

}  // namespace skv
