#pragma once
// UTF-8 helpers for the tokenizer: byte-level BPE tokens may end in the middle of a
// character, so decoders must tell complete, incomplete-but-valid and invalid sequences apart.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace skv::tokenizer::utf8 {

enum class Status { Complete, Incomplete, Invalid };

// Classifies the sequence starting at s[0] (s non-empty). `len` receives the character's length
// (Complete), the bytes present (Incomplete), or the length of the maximal invalid subpart to
// replace by one U+FFFD (Invalid), as in the Unicode "substitution of maximal subparts" rule.
Status classify(std::string_view s, size_t& len);

// Length of the valid UTF-8 character at s[0], or 0 if it is invalid or truncated.
inline size_t char_len(std::string_view s) {
  size_t len = 0;
  return classify(s, len) == Status::Complete ? len : 0;
}

bool is_valid(std::string_view s);
void append_codepoint(std::string& out, uint32_t cp);
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace skv::tokenizer::utf8
