#pragma once
// GPT-2's reversible byte <-> printable-unicode mapping (`bytes_to_unicode`): byte-level BPE
// vocabularies spell every byte as a visible character, e.g. space -> U+0120 'Ġ'.
#include <string>
#include <string_view>

namespace skv::tokenizer::byte_level {

// Maps every byte of `bytes` to its character's UTF-8 and appends it to `out`.
void encode(std::string_view bytes, std::string& out);
inline std::string encode(std::string_view bytes) {
  std::string out;
  encode(bytes, out);
  return out;
}

// Inverse of encode. Returns false (out unspecified) if `mapped` holds a character outside
// the table; HF's ByteLevel decoder then keeps the token's raw UTF-8 instead.
bool decode(std::string_view mapped, std::string& out);

}  // namespace skv::tokenizer::byte_level
