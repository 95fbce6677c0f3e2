#include "eval/pystr.h"

namespace skv::eval {
namespace {

// Decodes the code point starting at s[i]; an invalid byte stands for itself (never a space).
uint32_t decode_at(std::string_view s, size_t i, size_t* len) {
  const unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *len = 1;
    return c < 0x80 ? c : 0xFFFFFFFF;
  }
  uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
  for (size_t k = 1; k < n; ++k) {
    const unsigned char cc = s[i + k];
    if ((cc & 0xC0) != 0x80) {
      *len = 1;
      return 0xFFFFFFFF;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *len = n;
  return cp;
}

// Start of the code point that ends at s[end - 1].
size_t prev_start(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && end - i < 4 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

bool py_isspace(uint32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:  // \t \n \v \f \r
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:  // file / group / record / unit separators
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

size_t trailing_space_bytes(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    const size_t start = prev_start(s, end);
    size_t len = 0;
    const uint32_t cp = decode_at(s, start, &len);
    if (start + len != end || !py_isspace(cp)) break;
    end = start;
  }
  return s.size() - end;
}

size_t leading_space_bytes(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (!py_isspace(decode_at(s, i, &len))) break;
    i += len;
  }
  return i;
}

std::string py_strip(std::string_view s) {
  const size_t lead = leading_space_bytes(s);
  s.remove_prefix(lead);
  s.remove_suffix(trailing_space_bytes(s));
  return std::string(s);
}

int64_t split_whitespace_count(std::string_view s) {
  int64_t runs = 0;
  bool in_run = false;
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    const bool space = py_isspace(decode_at(s, i, &len));
    if (space && !in_run) ++runs;
    in_run = space;
    i += len;
  }
  return runs + 1;
}

}  // namespace skv::eval
