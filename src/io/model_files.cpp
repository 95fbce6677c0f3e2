#include "io/model_files.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"

namespace skv {

namespace fs = std::filesystem;

namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

// llama.cpp's convert_hf_to_gguf.py tensor names -> the Hugging Face names the model code uses.
std::string hf_name(const std::string& name) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> kLayer = {
      {"attn_norm.weight", "input_layernorm.weight"},    {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},          {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},           {"ffn_down.weight", "mlp.down_proj.weight"},
  };
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
  return name;  // unknown names are kept so model code can still look them up
}

void add_tensor(ModelFiles& m, const std::string& name, Tensor t, const std::string& origin) {
  if (!m.tensors.emplace(name, std::move(t)).second) fail(origin, ": tensor '", name, "' appears twice");
}

void open_gguf(ModelFiles& m) {
  m.format = ModelFormat::GGUF;
  m.gguf = std::make_shared<GGUFFile>(m.path);
  m.config = config_from_gguf(*m.gguf);
  m.rope_interleaved = m.config.architecture == "llama";
  for (const auto& info : m.gguf->tensor_infos()) add_tensor(m, hf_name(info.name), m.gguf->tensor(info.name), m.path);
}

void open_sharded(ModelFiles& m, const std::string& index_path, const fs::path& dir) {
  nlohmann::json index;
  {
    MappedFile f(index_path);
    try {
      index = nlohmann::json::parse(f.data(), f.data() + f.size());
    } catch (const nlohmann::json::exception& e) {
      fail(index_path, ": invalid JSON: ", e.what());
    }
  }
  auto wm = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || wm == index.end() || !wm->is_object()) fail(index_path, ": no 'weight_map' object");

  std::map<std::string, std::shared_ptr<SafetensorsFile>> opened;  // each shard is mapped once
  for (const auto& [name, v] : wm->items()) {
    if (!v.is_string()) fail(index_path, ": weight_map entry for '", name, "' is not a file name");
    const std::string shard = v.get<std::string>();
    // Shards must live in the model directory; never follow a path out of it.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      fail(index_path, ": shard '", shard, "' for tensor '", name, "' is not a plain file name");
    auto& file = opened[shard];
    if (!file) {
      file = std::make_shared<SafetensorsFile>((dir / shard).string());
      m.shards.push_back(file);
    }
    if (!file->has(name)) fail(index_path, ": tensor '", name, "' is missing from its shard '", shard, "'");
    add_tensor(m, name, file->tensor(name), index_path);
  }
}

void open_hf_directory(ModelFiles& m) {
  m.format = ModelFormat::HFDirectory;
  const fs::path dir(m.path);
  const fs::path config = dir / "config.json";
  if (!fs::exists(config)) fail(m.path, ": config.json not found in the model directory");
  m.config = config_from_json_file(config.string());

  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    auto file = std::make_shared<SafetensorsFile>(single.string());
    m.shards.push_back(file);
    for (const auto& name : file->names()) add_tensor(m, name, file->tensor(name), single.string());
  } else if (fs::exists(index)) {
    open_sharded(m, index.string(), dir);
  } else {
    fail("no model.safetensors or model.safetensors.index.json in ", m.path);
  }
}

}  // namespace

void ModelFiles::release_pages(const Tensor& t) const {
  if (gguf) gguf->mapping().release(t.data, t.nbytes());
  for (const auto& shard : shards) shard->mapping().release(t.data, t.nbytes());
}

const Tensor* ModelFiles::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

const Tensor& ModelFiles::get(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) fail("tensor '", name, "' not found in ", path);
  return *t;
}

const Tensor& ModelFiles::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const Tensor& t = get(name);
  if (t.shape != shape) {
    Tensor want;
    want.shape = shape;
    fail("tensor '", name, "' in ", path, " has shape ", t.shape_str(), " but the config implies ", want.shape_str());
  }
  if (t.dtype == DType::I32) fail("tensor '", name, "' has integer dtype, expected floating point or quantised");
  return t;
}

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

ModelFiles open_model_files(const std::string& path) {
  ModelFiles m;
  m.path = path;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) fail("model path '", path, "' does not exist");
  if (ec) fail(path, ": cannot access: ", ec.message());
  if (fs::is_directory(st)) {
    open_hf_directory(m);
  } else if (fs::is_regular_file(st) && (path.ends_with(".gguf") || has_gguf_magic(path))) {
    open_gguf(m);
  } else {
    fail(path, ": not a model; pass a Hugging Face model directory (config.json + *.safetensors) or a .gguf file");
  }
  return m;
}

}  // namespace skv
