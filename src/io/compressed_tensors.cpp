#include "io/compressed_tensors.h"

#include <cstring>
#include <regex>
#include <vector>

#include "backend/ops.h"
#include "core/error.h"
#include "io/model_files.h"

namespace skv::io {

namespace {

using json = nlohmann::json;

// Every error names the field as a path from quantization_config.
struct Scope {
  const json& j;
  const std::string& origin;
  std::string path;

  const json* find(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const std::string& what) const {
    fail(origin, ": field '", path, ".", key, "' ", what);
  }
  std::string str(const char* key, const char* def = nullptr) const {
    const json* v = find(key);
    if (!v) {
      if (def) return def;
      bad(key, "is missing");
    }
    if (!v->is_string()) bad(key, "must be a string");
    return v->get<std::string>();
  }
  void need_value(const char* key, const json& want, const char* why) const {
    const json* v = find(key);
    if (v && *v != want)
      bad(key, "is " + quote_bounded(v->dump()) + "; only " + want.dump() + " is supported (" + why + ")");
  }
  void need_null(const char* key, const char* why) const {
    if (const json* v = find(key))
      bad(key, "is " + quote_bounded(v->dump()) + "; only null is supported (" + why + ")");
  }
};

void check_float8(const Scope& s, const char* what) {
  const json* bits = s.find("num_bits");
  if (!bits) s.bad("num_bits", "is missing");
  s.need_value("num_bits", 8, what);
  const std::string type = s.str("type");
  if (type != "float")
    s.bad("type", "is " + quote_bounded(type) + "; only \"float\" (FP8 E4M3) is supported (int8 schemes are not)");
}

}  // namespace

Fp8Scheme parse_compressed_tensors(const json& qc, const std::string& origin) {
  if (!qc.is_object()) fail(origin, ": field 'quantization_config' must be an object");
  const Scope top{qc, origin, "quantization_config"};
  const std::string method = top.str("quant_method");
  if (method != "compressed-tensors")
    top.bad("quant_method",
            "is " + quote_bounded(method) + "; only \"compressed-tensors\" FP8 checkpoints are supported");
  const std::string format = top.str("format");
  if (format != "float-quantized")
    top.bad("format", "is " + quote_bounded(format) + "; only \"float-quantized\" (FP8 weights) is supported");
  if (const json* st = top.find("quantization_status"); st && *st != "compressed")
    top.bad("quantization_status", "is " + quote_bounded(st->dump()) + "; only \"compressed\" is supported");
  top.need_null("kv_cache_scheme", "the KV cache is quantised by --kv-cache-dtype instead");
  top.need_null("sparsity_config", "sparse weights");

  const json* groups = top.find("config_groups");
  if (!groups || !groups->is_object() || groups->size() != 1)
    top.bad("config_groups", "must hold exactly one group (one FP8 scheme for every Linear)");
  const std::string gname = groups->begin().key();
  const Scope g{groups->begin().value(), origin, "quantization_config.config_groups." + gname};
  if (!g.j.is_object()) fail(origin, ": field '", g.path, "' must be an object");
  const json* targets = g.find("targets");
  if (!targets || *targets != json::array({"Linear"})) g.bad("targets", "must be [\"Linear\"]");
  g.need_null("output_activations", "output quantisation");

  Fp8Scheme s;
  s.enabled = true;
  const json* w = g.find("weights");
  if (!w || !w->is_object()) g.bad("weights", "must be an object");
  const Scope ws{*w, origin, g.path + ".weights"};
  check_float8(ws, "FP8 E4M3 weights");
  s.strategy = ws.str("strategy");
  if (s.strategy != "channel" && s.strategy != "tensor")
    ws.bad("strategy",
           "is " + quote_bounded(s.strategy) + "; only \"channel\" and \"tensor\" are supported (not group / block)");
  ws.need_value("symmetric", true, "no zero points");
  ws.need_value("dynamic", false, "weights have stored scales");
  ws.need_null("group_size", "group strategies");
  ws.need_null("block_structure", "block strategies");

  if (const json* a = g.find("input_activations")) {
    if (!a->is_object()) g.bad("input_activations", "must be an object or null");
    const Scope as{*a, origin, g.path + ".input_activations"};
    check_float8(as, "FP8 E4M3 activations");
    as.need_value("dynamic", true, "static input scales (NAME.input_scale) are not supported");
    const std::string strategy = as.str("strategy", "token");
    if (strategy != "token")
      as.bad("strategy", "is " + quote_bounded(strategy) + "; only \"token\" (dynamic per token) is supported");
    as.need_value("symmetric", true, "no zero points");
  } else {
    s.dynamic_activations = false;
  }

  if (const json* ig = top.find("ignore")) {
    if (!ig->is_array()) top.bad("ignore", "must be a list of module names");
    for (const json& e : *ig) {
      if (!e.is_string()) top.bad("ignore", "must be a list of module names");
      std::string name = e.get<std::string>();
      if (name.starts_with("re:")) {
        try {
          std::regex(name.substr(3));
        } catch (const std::regex_error&) {
          top.bad("ignore", "holds an invalid regular expression " + quote_bounded(name));
        }
      }
      s.ignore.push_back(std::move(name));
    }
  }
  return s;
}

nlohmann::ordered_json compressed_tensors_json(const Fp8Scheme& s) {
  using oj = nlohmann::ordered_json;
  const oj weights = {{"num_bits", 8},          {"type", "float"},
                      {"symmetric", true},      {"group_size", nullptr},
                      {"strategy", s.strategy}, {"block_structure", nullptr},
                      {"dynamic", false},       {"actorder", nullptr},
                      {"observer", "minmax"},   {"observer_kwargs", oj::object()}};
  oj acts = nullptr;
  if (s.dynamic_activations)
    acts = {{"num_bits", 8},       {"type", "float"},
            {"symmetric", true},   {"group_size", nullptr},
            {"strategy", "token"}, {"block_structure", nullptr},
            {"dynamic", true},     {"actorder", nullptr},
            {"observer", nullptr}, {"observer_kwargs", oj::object()}};
  oj group = {
      {"targets", {"Linear"}}, {"weights", weights}, {"input_activations", acts}, {"output_activations", nullptr}};
  return {{"config_groups", {{"group_0", group}}},
          {"format", "float-quantized"},
          {"ignore", s.ignore},
          {"kv_cache_scheme", nullptr},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"}};
}

bool fp8_ignored(const Fp8Scheme& s, const std::string& module) {
  for (const std::string& e : s.ignore) {
    if (e == module) return true;
    if (e.starts_with("re:") && std::regex_match(module, std::regex(e.substr(3)))) return true;
  }
  return false;
}

void fold_fp8_weights(ModelFiles& m) {
  const Fp8Scheme& s = m.config.fp8;
  std::vector<std::string> fp8_names;
  for (const auto& [name, t] : m.tensors) {
    if (t.dtype == DType::F8_E4M3) {
      if (!name.ends_with(".weight"))
        fail(m.path, ": tensor '", name, "' is F8_E4M3 but is not a Linear weight (NAME.weight)");
      if (!s.enabled)
        fail(m.path, ": tensor '", name,
             "' is F8_E4M3 but config.json has no compressed-tensors quantization_config to say how it is scaled");
      fp8_names.push_back(name);
    }
    if (name.ends_with(".input_scale"))
      fail(m.path, ": tensor '", name, "' is a static input scale, which is not supported (dynamic per-token FP8 ",
           "activations only)");
    if (name.ends_with(".weight_zero_point"))
      fail(m.path, ": tensor '", name, "' is a zero point, which is not supported (symmetric FP8 only)");
  }
  for (const auto& [name, t] : m.tensors) {
    if (!name.ends_with(".weight_scale")) continue;
    const std::string weight = name.substr(0, name.size() - 6);  // NAME.weight
    auto it = m.tensors.find(weight);
    if (it == m.tensors.end() || it->second.dtype != DType::F8_E4M3)
      fail(m.path, ": tensor '", name, "' scales '", weight, "', which is ",
           it == m.tensors.end() ? "missing" : std::string("stored as ") + dtype_name(it->second.dtype));
  }

  for (const std::string& name : fp8_names) {
    const Tensor w = m.tensors.at(name);
    const std::string module = name.substr(0, name.size() - 7);
    if (fp8_ignored(s, module))
      fail(m.path, ": tensor '", name, "' is F8_E4M3 but module '", module, "' is in quantization_config.ignore");
    if (w.shape.size() != 2)
      fail(m.path, ": FP8 weight '", name, "' has shape ", w.shape_str(), "; expected [out, in]");
    const std::string scale_name = module + ".weight_scale";
    auto sit = m.tensors.find(scale_name);
    if (sit == m.tensors.end()) fail(m.path, ": FP8 weight '", name, "' has no '", scale_name, "'");
    const Tensor& sc = sit->second;
    if (sc.dtype != DType::F32 && sc.dtype != DType::BF16 && sc.dtype != DType::F16)
      fail(m.path, ": tensor '", scale_name, "' has dtype ", dtype_name(sc.dtype), "; expected F32, BF16 or F16");
    const int64_t out = w.dim(0), in = w.dim(1);
    const bool channel = s.strategy == "channel";
    const bool shape_ok = channel ? sc.numel() == out && (sc.shape == Shape{out, 1} || sc.shape == Shape{out})
                                  : sc.numel() == 1 && sc.shape.size() <= 1;
    if (!shape_ok)
      fail(m.path, ": tensor '", scale_name, "' has shape ", sc.shape_str(),
           " but quantization_config's weights.strategy \"", s.strategy, "\" needs ",
           channel ? "[" + std::to_string(out) + ", 1]" : std::string("one value"));
    const Tensor scales = sc.dtype == DType::F32 ? sc : backend::to_dtype(sc, DType::F32);
    Tensor folded = Tensor::empty(DType::FP8, {out, in});
    const size_t stride = folded.row_bytes();
    for (int64_t r = 0; r < out; ++r) {
      const float v = scales.as<float>()[channel ? r : 0];
      uint8_t* dst = static_cast<uint8_t*>(folded.data) + r * stride;
      std::memcpy(dst, &v, sizeof v);
      std::memcpy(dst + sizeof v, static_cast<const uint8_t*>(w.data) + r * in, static_cast<size_t>(in));
    }
    m.release_pages(w);
    m.tensors[name] = std::move(folded);
    m.tensors.erase(scale_name);
  }
}

Fp8Pair split_fp8_weight(const Tensor& t) {
  if (t.dtype != DType::FP8 || t.shape.size() != 2)
    fail_internal("split_fp8_weight: expected a 2-D FP8 tensor, got ", dtype_name(t.dtype), " ", t.shape_str());
  const int64_t out = t.dim(0), in = t.dim(1);
  Fp8Pair p{Tensor::empty(DType::F8_E4M3, {out, in}), Tensor::empty(DType::F32, {out, 1})};
  for (int64_t r = 0; r < out; ++r) {
    const uint8_t* row = t.row_ptr(r);
    std::memcpy(p.weight_scale.as<float>() + r, row, sizeof(float));
    std::memcpy(static_cast<uint8_t*>(p.weight.data) + r * in, row + sizeof(float), static_cast<size_t>(in));
  }
  return p;
}

bool is_fp8_linear_weight(const std::string& name, const Tensor& t) {
  return t.shape.size() == 2 && name.starts_with("model.layers.") &&
         (name.ends_with("_proj.weight") || name.ends_with("_proj_swiftkv.weight"));
}

}  // namespace skv::io
