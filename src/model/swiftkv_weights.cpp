#include "model/swiftkv_weights.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "backend/ops.h"
#include "core/error.h"
#include "io/fingerprint.h"
#include "io/hf_export.h"
#include "io/safetensors.h"
#include "model/swiftkv.h"
#include "model/weights.h"

namespace skv::model {
namespace {

constexpr const char* kFormat = "swiftkv-weights";
constexpr const char* kVersion = "1";

// Largest |a - b| over the largest |b|, both as F32.
double relative_difference(const Tensor& a, const Tensor& b) {
  const Tensor fa = backend::to_dtype(a, DType::F32), fb = backend::to_dtype(b, DType::F32);
  const float *pa = fa.as<float>(), *pb = fb.as<float>();
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < fa.numel(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(pa[i] - pb[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(pb[i])));
  }
  return ref > 0 ? diff / ref : diff;
}

// The base tensor in Hugging Face row order, F32.
Tensor hf_order(const io::ModelFiles& files, const std::string& name, const Tensor& t) {
  Tensor f = backend::to_dtype(t, DType::F32);
  if (files.rope_interleaved)
    if (const int64_t heads = io::rope_permuted_heads(name, files.config)) return io::unpermute_rope_rows(f, heads);
  return f;
}

std::string field(const std::map<std::string, std::string>& meta, const std::string& path, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end()) fail(path, ": SwiftKV weights metadata has no ", quote_bounded(key));
  return it->second;
}

int64_t integer_field(const std::map<std::string, std::string>& meta, const std::string& path, const char* key) {
  const std::string v = field(meta, path, key);
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  fail(path, ": SwiftKV weights metadata ", quote_bounded(key), " is not an integer: ", quote_bounded(v, 40));
}

std::string dims(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

uint64_t write_swiftkv_weights(const io::ModelFiles& checkpoint, const io::ModelFiles& base, const std::string& out,
                               const std::string& description) {
  const io::ModelConfig& c = checkpoint.config;
  if (!c.swiftkv_checkpoint) fail(checkpoint.path, " is not a SwiftKV model; its SwiftKV tensors cannot be extracted");
  if (base.config.swiftkv_checkpoint)
    fail("--base ", base.path, " is a SwiftKV model; give the model it was made from");
  if (base.config.model_type() + "_swiftkv" != c.model_type())
    fail(checkpoint.path, " is a ", c.model_type(), " model, --base ", base.path, " a ", base.config.model_type());
  const auto specs = swiftkv_tensor_specs(c, c.num_key_value_layers, c.key_value_group_size);
  std::set<std::string> trained;
  for (const SwiftKVTensorSpec& s : specs) trained.insert(s.name);
  // The checkpoint's frozen tensors must be the base's: the SwiftKV tensors were trained against them.
  for (const auto& [name, t] : checkpoint.tensors) {
    if (trained.count(name)) continue;
    const Tensor* b = base.find(name);
    if (b == nullptr) fail(checkpoint.path, " has ", name, ", which --base ", base.path, " lacks: another model");
    if (!(b->shape == t.shape))
      fail(name, " is ", t.shape_str(), " in ", checkpoint.path, " and ", b->shape_str(), " in --base ", base.path);
    const double d = relative_difference(t, hf_order(base, name, *b));
    if (d > 1e-2)
      fail(name, " differs between ", checkpoint.path, " and --base ", base.path, " (largest difference ", d,
           " of its largest value): the checkpoint was not made from this base");
  }
  std::map<std::string, Tensor> tensors;
  uint64_t bytes = 0;
  for (const SwiftKVTensorSpec& s : specs) {
    tensors[s.name] = backend::to_dtype(checkpoint.get(s.name, s.shape), DType::BF16);
    bytes += tensors[s.name].nbytes();
  }
  const std::map<std::string, std::string> meta = {{"format", kFormat},
                                                   {"format_version", kVersion},
                                                   {"architecture", base.config.model_type()},
                                                   {"num_key_value_layers", std::to_string(c.num_key_value_layers)},
                                                   {"key_value_group_size", std::to_string(c.key_value_group_size)},
                                                   {"base_fingerprint", io::hex64(io::tensors_fingerprint(base))},
                                                   {"base_name", std::filesystem::path(base.path).filename().string()},
                                                   {"description", description}};
  io::write_safetensors(out, tensors, meta);
  return bytes;
}

namespace {

SwiftKVWeightsInfo info_of(const io::SafetensorsFile& f) {
  const std::string& path = f.path();
  const auto& meta = f.metadata();
  if (meta.count("format") == 0 || meta.at("format") != kFormat)
    fail(path, " is not a SwiftKV weights file (its safetensors metadata has no format = ", kFormat, ")");
  if (field(meta, path, "format_version") != kVersion)
    fail(path, ": SwiftKV weights format version ", quote_bounded(field(meta, path, "format_version"), 20),
         " is not supported (this build reads version ", kVersion, ")");
  SwiftKVWeightsInfo info;
  info.num_key_value_layers = integer_field(meta, path, "num_key_value_layers");
  info.key_value_group_size = integer_field(meta, path, "key_value_group_size");
  info.architecture = field(meta, path, "architecture");
  info.base_fingerprint = field(meta, path, "base_fingerprint");
  info.base_name = field(meta, path, "base_name");
  info.description = meta.count("description") ? meta.at("description") : "";
  return info;
}

}  // namespace

SwiftKVWeightsInfo read_swiftkv_weights_info(const std::string& path) { return info_of(io::SafetensorsFile(path)); }

SwiftKVWeightsInfo apply_swiftkv_weights(io::ModelFiles& files, const std::string& path, bool any_base) {
  const io::SafetensorsFile f(path);
  const SwiftKVWeightsInfo info = info_of(f);
  const io::ModelConfig& c = files.config;
  if (c.swiftkv_checkpoint) fail(files.path, " is already a SwiftKV model; give its base model");
  if (info.architecture != c.model_type())
    fail(path, " holds SwiftKV tensors for a ", quote_bounded(info.architecture, 40), " model; ", files.path, " is a ",
         c.model_type(), " model");
  const std::string fp = io::hex64(io::tensors_fingerprint(files));
  if (fp != info.base_fingerprint && !any_base)
    fail(path, " was trained on ", quote_bounded(info.base_name, 80), " (fingerprint ",
         quote_bounded(info.base_fingerprint, 20), "); ", files.path, " has fingerprint ", fp,
         ". Pass --any-base to use the tensors on this base anyway (their quality on it is not measured)");
  check_swiftkv_settings(c.num_layers, info.num_key_value_layers, info.key_value_group_size);
  const auto specs = swiftkv_tensor_specs(c, info.num_key_value_layers, info.key_value_group_size);
  std::set<std::string> expected;
  for (const SwiftKVTensorSpec& s : specs) expected.insert(s.name);
  for (const std::string& name : f.names())
    if (!expected.count(name))
      fail(path, " holds ", quote_bounded(name, 120),
           ", which is not a SwiftKV tensor of this model (M = ", info.num_key_value_layers,
           ", G = ", info.key_value_group_size, ")");
  std::map<std::string, Tensor> loaded;
  for (const SwiftKVTensorSpec& s : specs) {
    if (!f.has(s.name)) fail(path, " lacks ", s.name);
    const Tensor& t = f.tensor(s.name);
    if (!(t.shape == s.shape)) fail(path, ": ", s.name, " is ", t.shape_str(), ", this model needs ", dims(s.shape));
    Tensor v = backend::to_dtype(t, DType::F32);
    if (files.rope_interleaved)
      if (const int64_t heads = io::rope_permuted_heads(s.name, c)) v = io::permute_rope_rows(v, heads);
    loaded[s.name] = std::move(v);
  }
  add_swiftkv_tensors(files, info.num_key_value_layers, info.key_value_group_size);
  for (auto& [name, t] : loaded) files.tensors[name] = std::move(t);
  return info;
}

}  // namespace skv::model
