#pragma once
// Added tokens (special ones like <|im_start|> and user-defined ones) are cut out of the text
// before pre-tokenization, as HF's AddedVocabulary does: leftmost-longest non-overlapping
// matches, honouring the lstrip / rstrip / single_word flags.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace skv::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // skipped by decode(skip_special); not matched when !parse_special
  bool lstrip = false;       // also swallow whitespace on the left
  bool rstrip = false;       // ... and on the right
  bool single_word = false;  // only match when not inside a word
  bool normalized = false;   // matched in the normalized text rather than the raw text
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  struct Segment {
    size_t begin, end;
    int32_t id;  // -1: ordinary text
  };
  // Covers `text` with ordinary-text and added-token segments, in order; empty input -> none.
  std::vector<Segment> split(std::string_view text, bool parse_special) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;                   // longest first
  std::array<std::vector<uint32_t>, 256> by_first_;  // indexes into tokens_ by first byte
};

}  // namespace skv::tokenizer
