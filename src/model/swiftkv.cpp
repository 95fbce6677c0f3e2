#include "model/swiftkv.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/ops.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/arch.h"
#include "model/weights.h"

namespace skv::model {

namespace {

// Mean of same-shape tensors, in F32 (the members may be quantised).
Tensor mean_of(const std::vector<const Tensor*>& members) {
  Tensor out = Tensor::zeros(DType::F32, members.front()->shape);
  float* o = out.as<float>();
  for (const Tensor* m : members) {
    Tensor f = backend::to_dtype(*m, DType::F32);
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
  return io::layer_tensor_name(layer, std::string("self_attn.") + proj + "_proj_swiftkv." + kind);
}

std::string swiftkv_qk_norm_name(int64_t layer, const char* which) {
  return io::layer_tensor_name(layer, std::string("self_attn.") + which + "_norm_swiftkv.weight");
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

void add_swiftkv_tensors(io::ModelFiles& files, int64_t m, int64_t g) {
  io::ModelConfig& c = files.config;
  if (c.swiftkv_checkpoint || files.find(swiftkv_norm_name()))
    fail(files.path, " is already a SwiftKV model; convert its base model instead");
  check_swiftkv_settings(c.num_layers, m, g);
  std::vector<std::pair<std::string, Tensor>> added;
  for (const SwiftKVTensorSpec& s : swiftkv_tensor_specs(c, m, g)) {
    if (!s.group_mean || g == 1) {
      added.emplace_back(s.name, files.get(io::layer_tensor_name(s.layer, s.init_from), s.shape));
      continue;
    }
    std::vector<const Tensor*> members;
    for (int64_t j = s.layer; j < s.layer + g; ++j)
      members.push_back(&files.get(io::layer_tensor_name(j, s.init_from), s.shape));
    added.emplace_back(s.name, mean_of(members));
  }
  for (auto& [name, t] : added) files.tensors[name] = std::move(t);
  c.swiftkv_checkpoint = true;
  c.swiftkv = true;
  c.num_key_value_layers = m;
  c.key_value_group_size = g;
}

uint64_t write_swiftkv_gguf(const io::ModelFiles& files, const std::string& out, DType projection_dtype) {
  if (files.format != io::ModelFormat::GGUF || !files.gguf) fail("a SwiftKV GGUF is made from a GGUF base model");
  const io::ModelConfig& c = files.config;
  if (!c.swiftkv_checkpoint) fail("write_swiftkv_gguf: the model has no SwiftKV tensors yet");
  const io::GGUFFile& base = *files.gguf;
  for (const char* key : {io::kGGUFSwiftKVLayersKey, io::kGGUFSwiftKVGroupKey})
    if (base.has(key)) fail(base.path(), " is already a SwiftKV model; convert its base model instead");

  io::GGUFWriter w;
  for (const auto& kv : base.raw_kvs()) w.copy_kv(base, kv.key);
  w.set_u32(io::kGGUFSwiftKVLayersKey, static_cast<uint32_t>(c.num_key_value_layers));
  w.set_u32(io::kGGUFSwiftKVGroupKey, static_cast<uint32_t>(c.key_value_group_size));

  uint64_t bytes = 0;
  for (const auto& info : base.tensor_infos()) {
    w.add_tensor(info.name, info.ne, info.ggml_type, base.mapping().data() + base.data_offset() + info.offset);
    bytes += info.nbytes;
  }
  std::vector<Tensor> owned;  // the converted SwiftKV tensors, alive until write() returns
  const auto specs = swiftkv_tensor_specs(c, c.num_key_value_layers, c.key_value_group_size);
  owned.reserve(specs.size());
  for (const SwiftKVTensorSpec& s : specs) {
    const Tensor& t = files.get(s.name, s.shape);
    const DType to = t.shape.size() == 2 ? projection_dtype : DType::F32;
    if (to == DType::Q8_0 && t.shape.back() % 32 != 0)
      fail("Q8_0 stores rows of a multiple of 32 values; ", s.name, " has rows of ", t.shape.back(),
           " (use --swiftkv-dtype f16)");
    owned.push_back(backend::to_dtype(t, to));
    const Tensor& o = owned.back();
    std::vector<int64_t> ne(o.shape.begin(), o.shape.end());
    std::reverse(ne.begin(), ne.end());
    w.add_tensor(gguf_tensor_name_from_hf(s.name), ne, io::ggml_type_of(to), o.data);
    bytes += o.nbytes();
  }
  w.write(out, base.alignment());
  return bytes;
}

}  // namespace skv::model
