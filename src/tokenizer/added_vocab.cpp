#include "tokenizer/added_vocab.h"

#include <algorithm>

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace skv::tokenizer {
namespace {

uint32_t decode_cp(std::string_view ch) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(ch[i])); };
  switch (ch.size()) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

// Unicode White_Space, what Rust's `\s` (used by HF for lstrip / rstrip) matches.
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_word_char(std::string_view ch) {
  static const Regex word(R"(^\w$)");
  return !ch.empty() && !word.find_all(ch).empty();
}

std::string_view last_char(std::string_view s) {
  size_t i = s.size();
  while (i > 0 && (static_cast<uint8_t>(s[i - 1]) & 0xC0) == 0x80) --i;
  return i > 0 ? s.substr(i - 1) : s;
}

std::string_view first_char(std::string_view s) {
  size_t len = utf8::char_len(s);
  return s.substr(0, len ? len : std::min<size_t>(1, s.size()));
}

// Start of the whitespace run that ends `s`.
size_t space_run_start(std::string_view s) {
  size_t i = s.size();
  while (i > 0) {
    std::string_view c = last_char(s.substr(0, i));
    if (!is_space(decode_cp(c))) break;
    i -= c.size();
  }
  return i;
}

// Length of the whitespace run that starts `s`.
size_t space_run_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = utf8::char_len(s.substr(i));
    if (!len || !is_space(decode_cp(s.substr(i, len)))) break;
    i += len;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) {
  std::erase_if(tokens, [](const AddedToken& t) { return t.content.empty(); });
  std::stable_sort(tokens.begin(), tokens.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  tokens_ = std::move(tokens);
  for (uint32_t i = 0; i < tokens_.size(); ++i) by_first_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Segment> out;
  size_t done = 0;  // text before `done` is already covered by segments
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* hit = nullptr;
    for (uint32_t i : by_first_[static_cast<uint8_t>(text[pos])]) {
      if (text.substr(pos).starts_with(tokens_[i].content)) {
        hit = &tokens_[i];
        break;  // sorted longest first: this is the leftmost-longest match
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    pos = stop;  // like HF's match iterator, a rejected match is still consumed
    if (!parse_special && hit->special) continue;
    if (hit->single_word) {
      const bool word_before = start > 0 && is_word_char(last_char(text.substr(0, start)));
      const bool word_after = stop < text.size() && is_word_char(first_char(text.substr(stop)));
      if (word_before || word_after) continue;
    }
    if (hit->lstrip) start = std::max(space_run_start(text.substr(0, start)), done);
    if (hit->rstrip) stop += space_run_len(text.substr(stop));
    start = std::max(start, done);
    if (done < start) out.push_back({done, start, -1});
    out.push_back({start, stop, hit->id});
    done = pos = stop;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
  return out;
}

}  // namespace skv::tokenizer
