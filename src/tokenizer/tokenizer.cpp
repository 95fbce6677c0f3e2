// Tokenizer::from_path (format detection) and StreamDecoder.
#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/utf8.h"

namespace skv::tokenizer {

namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> Tokenizer::from_path(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("tokenizer path ", quote_bounded(path), " does not exist");
  if (fs::is_directory(path, ec)) {
    const fs::path json = fs::path(path) / "tokenizer.json";
    if (!fs::exists(json, ec)) fail("model directory ", quote_bounded(path), " has no tokenizer.json");
    return from_tokenizer_json(json.string());
  }
  // Sniff the magic rather than trusting the extension.
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open ", path);
  f.read(magic, 4);
  if (f.gcount() == 4 && std::string_view(magic, 4) == "GGUF") {
    io::GGUFFile gguf(path);
    return from_gguf(gguf);
  }
  return from_tokenizer_json(path);
}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return "";
  pending_ += tok_.token_bytes(id);
  // Emit complete characters; hold a trailing partial one; invalid bytes that can never
  // become a character are replaced right away (one U+FFFD per maximal invalid subpart).
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t len = 0;
    const auto st = utf8::classify(std::string_view(pending_).substr(i), len);
    if (st == utf8::Status::Incomplete) break;
    if (st == utf8::Status::Complete)
      out.append(pending_, i, len);
    else
      out += utf8::kReplacement;
    i += len;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = pending_.empty() ? "" : std::string(utf8::kReplacement);
  pending_.clear();
  return out;
}

}  // namespace skv::tokenizer
