#include "tokenizer/utf8.h"

namespace skv::tokenizer::utf8 {

Status classify(std::string_view s, size_t& len) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t c = b(0);
  if (c < 0x80) return len = 1, Status::Complete;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (c >= 0xC2 && c <= 0xDF)
    need = 2;
  else if (c == 0xE0)
    need = 3, lo = 0xA0;
  else if (c == 0xED)
    need = 3, hi = 0x9F;  // no surrogates
  else if (c >= 0xE1 && c <= 0xEF)
    need = 3;
  else if (c == 0xF0)
    need = 4, lo = 0x90;
  else if (c == 0xF4)
    need = 4, hi = 0x8F;  // nothing above U+10FFFF
  else if (c >= 0xF1 && c <= 0xF3)
    need = 4;
  else
    return len = 1, Status::Invalid;
  for (size_t i = 1; i < need; ++i) {
    if (i >= s.size()) return len = i, Status::Incomplete;
    const uint8_t x = b(i);
    const bool ok = i == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) return len = i, Status::Invalid;
  }
  return len = need, Status::Complete;
}

bool is_valid(std::string_view s) {
  for (size_t i = 0, len = 0; i < s.size(); i += len)
    if (classify(s.substr(i), len) != Status::Complete) return false;
  return true;
}

void append_codepoint(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace skv::tokenizer::utf8
