#pragma once
// Byte-level BPE tokenizer (GPT-2 / Llama-3 / SmolLM2 style) loaded from a Hugging Face
// tokenizer.json or from GGUF `tokenizer.ggml.*` metadata.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skv::io {
class GGUFFile;
}
namespace skv::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // path: a tokenizer.json, a model directory holding one, or a .gguf file.
  static std::unique_ptr<Tokenizer> from_path(const std::string& path);
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& json_path);
  static std::unique_ptr<Tokenizer> from_gguf(const io::GGUFFile& gguf);

  // add_special: prepend BOS when the tokenizer's config says so (HF post-processor /
  // GGUF add_bos_token). parse_special: recognise added/special tokens written in the text.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                                      bool parse_special = true) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  // The raw bytes a token stands for (after byte-level decoding); may be a partial UTF-8 char.
  virtual std::string token_bytes(int32_t id) const = 0;
  virtual std::string token_text(int32_t id) const = 0;  // vocabulary string as stored
  virtual std::optional<int32_t> token_id(std::string_view token_text) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;

  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  // tokenizer_config.json unk_token / pad_token, GGUF unknown_token_id / padding_token_id.
  virtual std::optional<int32_t> unk_id() const { return std::nullopt; }
  virtual std::optional<int32_t> pad_id() const { return std::nullopt; }
  // Whether encode(text, add_special=true) starts with BOS, so a caller whose chat template
  // already writes the BOS text can encode with add_special=false and avoid a double BOS.
  virtual bool adds_bos() const { return false; }
  // The model's Jinja chat template (tokenizer_config.json `chat_template` or GGUF
  // `tokenizer.chat_template`), empty if none.
  virtual std::string chat_template() const = 0;
};

// Streaming detokeniser: feed ids one at a time, get back only complete UTF-8 characters,
// so a character split across tokens is printed once it is whole.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is left (invalid trailing bytes become U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace skv::tokenizer
