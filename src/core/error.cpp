#include "core/error.h"

namespace skv {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one.
size_t utf8_len(const std::string& s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}

// Whether s[i] starts a character (is not a UTF-8 continuation byte).
bool starts_char(std::string_view s, size_t i) { return (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80; }

}  // namespace

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Input:
      return "input";
    case ErrorKind::Resource:
      return "resource";
    case ErrorKind::Internal:
      return "internal";
  }
  return "unknown";
}

std::string quote_bounded(std::string_view s, size_t max_bytes) {
  std::string out = "'";
  if (s.size() <= max_bytes) {
    out.append(s);
  } else {
    // The end of a path names the file, so it gets the larger part.
    size_t head = max_bytes / 3, tail = s.size() - (max_bytes - head);
    while (head > 0 && !starts_char(s, head)) --head;
    while (tail < s.size() && !starts_char(s, tail)) ++tail;
    out.append(s.substr(0, head));
    out += "...";
    out.append(s.substr(tail));
  }
  out += '\'';
  if (s.size() > max_bytes) out += " (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string bound_message(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t head = max_bytes;
  while (head > 0 && !starts_char(s, head)) --head;
  return std::string(s.substr(0, head)) + "... (" + std::to_string(s.size()) + " bytes in all)";
}

std::string printable(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_len(s, i);
    if (n == 0 || b < 0x20 || b == 0x7f) {
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 15];
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

}  // namespace skv
