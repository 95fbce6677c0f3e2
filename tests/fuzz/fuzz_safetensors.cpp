// safetensors: the first byte picks what the rest of the input is:
//   0: a .safetensors file (header, offsets, dtypes, metadata), read on its own;
//   1: the model.safetensors of a model directory (a one-layer Llama of hidden size 8, the
//      config make_seeds.py builds its seeds for), so the tensor table and its shape checks run;
//   2: a model.safetensors.index.json beside the llama_sharded fixture's three shards.
#include <filesystem>
#include <memory>

#include "fuzz_common.h"
#include "io/model_files.h"
#include "io/safetensors.h"

using namespace skv;
namespace fs = std::filesystem;

namespace {

const std::string& sharded_dir() {
  static const std::string dir = [] {
    const fs::path src = fs::path(fuzz::source_dir()) / "tests/fixtures/models/llama_sharded";
    const fs::path d = fs::path(fuzz::temp_dir()) / "sharded";
    fs::create_directories(d);
    for (const char* f : {"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                          "model-00003-of-00003.safetensors"})
      fs::create_symlink(src / f, d / f);
    return d.string();
  }();
  return dir;
}

const std::string& single_dir() {
  static const std::string dir = [] {
    const std::string config = fuzz::write_file(
        "single/config.json",
        R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "tie_word_embeddings": false})");
    return fs::path(config).parent_path().string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      const std::string path = fuzz::write_file("one.safetensors", rest);
      std::unique_ptr<io::SafetensorsFile> f;
      if (!fuzz::guarded([&] { f = std::make_unique<io::SafetensorsFile>(path); })) return 0;
      volatile uint8_t sink = 0;
      for (const std::string& name : f->names()) {
        const Tensor& t = f->tensor(name);
        const size_t n = t.nbytes();
        if (n > 0) sink = sink + static_cast<const uint8_t*>(t.data)[0] + static_cast<const uint8_t*>(t.data)[n - 1];
      }
      for (const auto& [k, v] : f->metadata()) sink = sink + static_cast<uint8_t>(k.size() + v.size());
      break;
    }
    case 1:
      single_dir();
      fuzz::write_file("single/model.safetensors", rest);
      fuzz::guarded([&] { io::open_model_files(single_dir()); });
      break;
    case 2:
      sharded_dir();
      fuzz::write_file("sharded/model.safetensors.index.json", rest);
      fuzz::guarded([&] { io::open_model_files(sharded_dir()); });
      break;
  }
  return 0;
}
