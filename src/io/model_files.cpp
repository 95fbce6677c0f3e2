#include "io/model_files.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/compressed_tensors.h"
#include "io/gguf.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/arch.h"

namespace skv::io {

namespace fs = std::filesystem;

namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

void add_tensor(ModelFiles& m, const std::string& name, Tensor t, const std::string& origin) {
  if (!m.tensors.emplace(name, std::move(t)).second) fail(origin, ": tensor ", quote_bounded(name), " appears twice");
}

void open_gguf(ModelFiles& m) {
  m.format = ModelFormat::GGUF;
  m.gguf = std::make_shared<GGUFFile>(m.path);
  m.config = config_from_gguf(*m.gguf);
  m.rope_interleaved = m.config.arch_info().gguf_permuted_qk;
  for (const auto& info : m.gguf->tensor_infos())
    add_tensor(m, model::hf_tensor_name_from_gguf(info.name), m.gguf->tensor(info.name), m.path);
}

void open_sharded(ModelFiles& m, const std::string& index_path, const fs::path& dir) {
  nlohmann::json index;
  {
    MappedFile f(index_path);
    try {
      index = nlohmann::json::parse(f.data(), f.data() + f.size());
    } catch (const nlohmann::json::exception& e) {
      fail(index_path, ": invalid JSON: ", bound_message(e.what(), 300));
    }
  }
  auto wm = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || wm == index.end() || !wm->is_object()) fail(index_path, ": no 'weight_map' object");

  std::map<std::string, std::shared_ptr<SafetensorsFile>> opened;  // each shard is mapped once
  for (const auto& [name, v] : wm->items()) {
    if (!v.is_string()) fail(index_path, ": weight_map entry for ", quote_bounded(name), " is not a file name");
    const std::string shard = v.get<std::string>();
    // Shards must live in the model directory; never follow a path out of it.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      fail(index_path, ": shard ", quote_bounded(shard), " for tensor ", quote_bounded(name),
           " is not a plain file name");
    auto& file = opened[shard];
    if (!file) {
      file = std::make_shared<SafetensorsFile>((dir / shard).string());
      m.shards.push_back(file);
    }
    if (!file->has(name))
      fail(index_path, ": tensor ", quote_bounded(name), " is missing from its shard ", quote_bounded(shard));
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
  fold_fp8_weights(m);
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
  if (!t) fail("tensor ", quote_bounded(name), " not found in ", path);
  return *t;
}

const Tensor& ModelFiles::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const Tensor& t = get(name);
  if (t.shape != shape) {
    Tensor want;
    want.shape = shape;
    fail("tensor ", quote_bounded(name), " in ", path, " has shape ", t.shape_str(), " but the config implies ",
         want.shape_str());
  }
  if (t.dtype == DType::I32)
    fail("tensor ", quote_bounded(name), " has integer dtype, expected floating point or quantised");
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
  if (st.type() == fs::file_type::not_found) fail("model path ", quote_bounded(path), " does not exist");
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

}  // namespace skv::io
