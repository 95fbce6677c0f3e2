#pragma once
// PCRE2 wrapper for pre-tokenizer patterns (HF tokenizers uses Oniguruma; PCRE2 in UTF + UCP
// mode agrees on everything these patterns use: \p{L}, \p{N}, \s, (?i:...), lookahead).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace skv::tokenizer {

class Regex {
 public:
  // Throws skv::Error quoting the pattern and PCRE2's message.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches, left to right, as [begin, end) byte offsets. Invalid UTF-8
  // in `s` never matches (PCRE2_MATCH_INVALID_UTF), so it ends up in the gaps between matches.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so pcre2.h stays out of headers
};

}  // namespace skv::tokenizer
