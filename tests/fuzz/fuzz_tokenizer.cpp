// tokenizer.json load and the encode / decode round trip. An input starting with '{' is a
// tokenizer.json: it is loaded, and when it loads it encodes and decodes a few texts (and its own
// first bytes). Any other input is text for the two fixture tokenizers (GPT-2 style and Llama-3
// style: byte-level BPE, no normalizer), where valid UTF-8 must come back byte for byte from
// decode(encode(text)) and from the streaming decoder fed one id at a time.
#include <memory>

#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using namespace skv;

namespace {

void exercise(const tokenizer::Tokenizer& tok, std::string_view text, bool check_round_trip) {
  const std::vector<int32_t> plain = tok.encode(text, false, false);
  for (int32_t id : plain)
    if (id < 0 || id >= tok.vocab_size())
      fuzz::finding("encode gave id " + std::to_string(id) + " outside the vocabulary");
  const std::string back = tok.decode(plain, false);
  tokenizer::StreamDecoder stream(tok, false);
  std::string streamed;
  for (int32_t id : plain) streamed += stream.push(id);
  streamed += stream.flush();
  if (check_round_trip && tokenizer::utf8::is_valid(text)) {
    if (back != text) fuzz::finding("decode(encode(text)) != text for '" + std::string(text) + "' -> '" + back + "'");
    if (streamed != text)
      fuzz::finding("streamed decode != text for '" + std::string(text) + "' -> '" + streamed + "'");
  }
  // With special tokens recognised and BOS added, and decoded skipping them: no crash, ids in range.
  const std::vector<int32_t> special = tok.encode(text, true, true);
  for (int32_t id : special)
    if (id < 0 || id >= tok.vocab_size())
      fuzz::finding("encode gave id " + std::to_string(id) + " outside the vocabulary");
  tok.decode(special, true);
}

const std::vector<std::unique_ptr<tokenizer::Tokenizer>>& fixtures() {
  static const auto toks = [] {
    std::vector<std::unique_ptr<tokenizer::Tokenizer>> v;
    for (const char* f : {"gpt2_style.json", "llama3_style.json"})
      v.push_back(tokenizer::Tokenizer::from_tokenizer_json(fuzz::source_dir() + "/tests/fixtures/tokenizer/" + f));
    return v;
  }();
  return toks;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '{') {
    const std::string path = fuzz::write_file("tokenizer.json", input);
    std::unique_ptr<tokenizer::Tokenizer> tok;
    if (!fuzz::guarded([&] { tok = tokenizer::Tokenizer::from_tokenizer_json(path); })) return 0;
    for (std::string_view text : {std::string_view("Hello world! 123 <|endoftext|> héllo"), input.substr(0, 256)})
      fuzz::guarded([&] { exercise(*tok, text, false); });
    fuzz::guarded([&] {
      for (int32_t id = 0; id < std::min<int64_t>(tok->vocab_size(), 300); ++id) tok->token_bytes(id);
    });
    return 0;
  }
  for (const auto& tok : fixtures()) fuzz::guarded([&] { exercise(*tok, input, true); });
  return 0;
}
