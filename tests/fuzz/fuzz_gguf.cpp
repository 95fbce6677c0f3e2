// GGUF reader: the input is a .gguf file. Everything that reads GGUF metadata runs on it: the
// reader (keys, typed getters, tensor infos, tensor views), the model config, the tokenizer
// (tokenizer.ggml.*, then an encode / decode) and the model's tensor table (open_model_files).
#include <memory>

#include "fuzz_common.h"
#include "io/config.h"
#include "io/gguf.h"
#include "io/model_files.h"
#include "tokenizer/tokenizer.h"

using namespace skv;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("model.gguf", {reinterpret_cast<const char*>(data), size});
  std::unique_ptr<io::GGUFFile> f;
  if (!fuzz::guarded([&] { f = std::make_unique<io::GGUFFile>(path); })) return 0;

  for (const std::string& key : f->keys()) {
    fuzz::guarded([&] { f->get_int(key); });
    fuzz::guarded([&] { f->get_float(key); });
    fuzz::guarded([&] { f->get_string(key); });
    fuzz::guarded([&] { f->get_string_array(key); });
    fuzz::guarded([&] { f->get_int_array(key); });
    fuzz::guarded([&] { f->get_float_array(key); });
  }
  volatile uint8_t sink = 0;
  for (const auto& info : f->tensor_infos()) {
    fuzz::guarded([&] {
      const Tensor t = f->tensor(info.name);
      const size_t n = t.nbytes();
      if (n != info.nbytes)
        fuzz::finding("tensor " + info.name + ": view of " + std::to_string(n) + " bytes, info says " +
                      std::to_string(info.nbytes));
      // The first and last byte are inside the mapping (a bad range would fault here).
      if (n > 0) sink = sink + static_cast<const uint8_t*>(t.data)[0] + static_cast<const uint8_t*>(t.data)[n - 1];
    });
  }
  fuzz::guarded([&] { io::config_from_gguf(*f).validate(); });
  fuzz::guarded([&] {
    auto tok = tokenizer::Tokenizer::from_gguf(*f);
    const auto ids = tok->encode("Hello world! <|im_end|> 123", true, true);
    tok->decode(ids);
    for (int32_t id = 0; id < std::min<int64_t>(tok->vocab_size(), 64); ++id) tok->token_bytes(id);
  });
  fuzz::guarded([&] { io::open_model_files(path); });
  return 0;
}
