// Tokenizer::from_gguf: llama.cpp's `tokenizer.ggml.*` metadata for byte-level BPE
// ("gpt2" model). The pre-tokenizer is not stored, only its name (`tokenizer.ggml.pre`);
// gguf_pre_tokenizer.h maps it to the HF pre-tokenizer that llama.cpp's regex list implements.
#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/gguf_pre_tokenizer.h"

namespace skv::tokenizer {
namespace {

// llama_token_type values stored in tokenizer.ggml.token_type.
enum : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const io::GGUFFile& gguf) {
  try {
    const std::string model = gguf.get_string("tokenizer.ggml.model");
    if (model != "gpt2")
      fail("tokenizer.ggml.model ", quote_bounded(model),
           " is not supported (swiftkv supports 'gpt2' byte-level BPE only)");
    const auto tokens = gguf.get_string_array("tokenizer.ggml.tokens");
    std::vector<int64_t> types(tokens.size(), kNormal);
    if (gguf.has("tokenizer.ggml.token_type")) {
      types = gguf.get_int_array("tokenizer.ggml.token_type");
      if (types.size() != tokens.size())
        fail("tokenizer.ggml.token_type has ", types.size(), " entries but there are ", tokens.size(), " tokens");
    }

    BpeTokenizer::Parts p;
    for (size_t id = 0; id < tokens.size(); ++id) {
      const auto i = static_cast<int32_t>(id);
      p.vocab.emplace(tokens[id], i);  // first occurrence wins for (rare) duplicate strings
      if (types[id] == kControl || types[id] == kUserDefined) {
        // Control tokens behave like HF special tokens (matched only with parse_special);
        // user-defined ones are always matched. Both decode to their text verbatim.
        AddedToken t;
        t.content = tokens[id];
        t.id = i;
        t.special = types[id] == kControl;
        p.added.push_back(std::move(t));
        p.raw_text_ids.insert(i);
      }
    }
    for (const auto& m : gguf.get_string_array("tokenizer.ggml.merges")) {
      const size_t sp = m.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
        fail("malformed merge \"", m, "\" in tokenizer.ggml.merges");
      p.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }

    const GgufPreTokenizer pre = gguf_pre_tokenizer(gguf.get_string("tokenizer.ggml.pre", "default"));
    p.pre = pre_tokenizer_from_json(pre.pre_tokenizer);
    p.model_opts.ignore_merges = pre.ignore_merges;

    const auto opt_id = [&](const char* key) -> std::optional<int32_t> {
      const int64_t v = gguf.get_int(key, -1);
      if (v < 0 || v >= static_cast<int64_t>(tokens.size())) return std::nullopt;
      return static_cast<int32_t>(v);
    };
    p.bos = opt_id("tokenizer.ggml.bos_token_id");
    p.eos = opt_id("tokenizer.ggml.eos_token_id");
    p.unk = opt_id("tokenizer.ggml.unknown_token_id");
    p.pad = opt_id("tokenizer.ggml.padding_token_id");
    if (gguf.get_int("tokenizer.ggml.add_bos_token", pre.add_bos) != 0) {
      if (!p.bos) fail("tokenizer.ggml.add_bos_token is set but there is no valid bos_token_id");
      p.prefix.push_back(*p.bos);
    }
    if (gguf.get_int("tokenizer.ggml.add_eos_token", 0) != 0) {
      if (!p.eos) fail("tokenizer.ggml.add_eos_token is set but there is no valid eos_token_id");
      p.suffix.push_back(*p.eos);
    }
    p.chat_template = gguf.get_string("tokenizer.chat_template", "");
    return std::make_unique<BpeTokenizer>(std::move(p));
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(gguf.path(), 0) == 0) throw;  // GGUFFile errors already name the file
    fail_like(e, gguf.path(), ": ", msg);
  }
}

}  // namespace skv::tokenizer
