#include "jinja/pystring.h"

#include <algorithm>

#include "jinja/value.h"

namespace skv::jinja::detail {

// ---------------------------------------------------------------- UTF-8

std::u32string utf8_decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + n >= s.size()) {  // invalid lead byte or truncated sequence
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t cp = n == 0 ? c : n == 1 ? (c & 0x1F) : n == 2 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (int k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += n + 1;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

// ---------------------------------------------------------------- character classes

// Python str.isspace() (also what `\s` matches in jinja's lexer regexes).
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Simple case mapping: ASCII, Latin-1, Greek, Cyrillic (Python's full Unicode tables are not
// worth carrying for chat templates, which case-map role names).
char32_t to_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
char32_t to_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
bool is_upper(char32_t c) { return to_lower(c) != c; }
bool is_lower(char32_t c) { return to_upper(c) != c || c == 0xDF; }
bool is_cased(char32_t c) { return is_upper(c) || is_lower(c); }
bool is_alpha(char32_t c) { return is_cased(c) || (c >= 0x80 && !py_isspace(c) && c != 0xD7 && c != 0xF7 && c > 0xBF); }
bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

namespace {
std::string map_case(const std::string& s, char32_t (*f)(char32_t)) {
  std::u32string u = utf8_decode(s);
  for (auto& c : u) c = f(c);
  return utf8_encode(u);
}
}  // namespace

// ---------------------------------------------------------------- str methods

std::string py_strip(std::string_view s, bool left, bool right, const std::optional<std::string>& chars) {
  // ASCII fast path for the common case (whitespace, no chars argument).
  auto ascii_ws = [](unsigned char c) { return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20); };
  if (!chars) {
    bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (ascii) {
      size_t b = 0, e = s.size();
      if (left)
        while (b < e && ascii_ws(s[b])) ++b;
      if (right)
        while (e > b && ascii_ws(s[e - 1])) --e;
      return std::string(s.substr(b, e - b));
    }
  }
  std::u32string u = utf8_decode(s), set;
  if (chars) set = utf8_decode(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_it(u[b])) ++b;
  if (right)
    while (e > b && strip_it(u[e - 1])) --e;
  return utf8_encode(std::u32string_view(u).substr(b, e - b));
}

std::string py_upper(const std::string& s) {
  if (s.find("\xC3\x9F") == std::string::npos) return map_case(s, to_upper);
  std::string out;  // 'ß'.upper() == 'SS'
  for (char32_t c : utf8_decode(s)) {
    if (c == 0xDF)
      out += "SS";
    else
      utf8_append(out, to_upper(c));
  }
  return out;
}
std::string py_lower(const std::string& s) { return map_case(s, to_lower); }

std::string py_capitalize(const std::string& s) {
  std::u32string u = utf8_decode(s);
  for (size_t k = 0; k < u.size(); ++k) u[k] = k ? to_lower(u[k]) : to_upper(u[k]);
  return utf8_encode(u);
}

std::string py_title(const std::string& s) {  // str.title(): case runs of cased letters
  std::u32string u = utf8_decode(s);
  bool prev_cased = false;
  for (auto& c : u) {
    bool cased = is_cased(c);
    if (cased) c = prev_cased ? to_lower(c) : to_upper(c);
    prev_cased = cased;
  }
  return utf8_encode(u);
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  if (old.empty()) {  // Python inserts `repl` between every code point (and at both ends)
    std::u32string u = utf8_decode(s);
    std::string out;
    int64_t done = 0;
    for (size_t k = 0; k <= u.size(); ++k) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (k < u.size()) utf8_append(out, u[k]);
    }
    return out;
  }
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += repl;
    pos = f + old.size();
    ++done;
  }
  out.append(s, pos);
  return out;
}

std::vector<std::string> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) raise("empty separator");
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        size_t f = s.find(*sep, pos);
        if (f == std::string::npos) break;
        out.push_back(s.substr(pos, f - pos));
        pos = f + sep->size();
      }
      out.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t f = s.rfind(*sep, end - sep->size());
        if (f == std::string::npos) break;
        out.push_back(s.substr(f + sep->size(), end - f - sep->size()));
        end = f;
      }
      out.push_back(s.substr(0, end));
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  // Whitespace split: runs of whitespace separate, ends are ignored; the unsplit remainder keeps
  // its inner/trailing whitespace.
  std::u32string u = utf8_decode(s);
  if (!from_right) {
    size_t k = 0, n = u.size();
    while (true) {
      while (k < n && py_isspace(u[k])) ++k;
      if (k == n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = n;
        while (e > k && py_isspace(u[e - 1])) --e;
        out.push_back(utf8_encode(u.substr(k, e - k)));
        break;
      }
      size_t b = k;
      while (k < n && !py_isspace(u[k])) ++k;
      out.push_back(utf8_encode(u.substr(b, k - b)));
    }
  } else {
    size_t k = u.size();
    while (true) {
      while (k > 0 && py_isspace(u[k - 1])) --k;
      if (k == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t b = 0;
        while (b < k && py_isspace(u[b])) ++b;
        out.push_back(utf8_encode(u.substr(b, k - b)));
        break;
      }
      size_t e = k;
      while (k > 0 && !py_isspace(u[k - 1])) --k;
      out.push_back(utf8_encode(u.substr(k, e - k)));
    }
    std::reverse(out.begin(), out.end());
  }
  return out;
}

namespace {
bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}
}  // namespace

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
  std::u32string u = utf8_decode(s);
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t k = 0; k < u.size(); ++k) {
    if (!is_line_break(u[k])) continue;
    size_t e = k + 1;
    if (u[k] == '\r' && k + 1 < u.size() && u[k + 1] == '\n') e = k + 2;
    out.push_back(utf8_encode(u.substr(b, (keepends ? e : k) - b)));
    b = e;
    k = e - 1;
  }
  if (b < u.size()) out.push_back(utf8_encode(u.substr(b)));
  return out;
}

std::string py_pad(const std::string& s, int64_t width, char align, const std::string& fill) {
  int64_t len = static_cast<int64_t>(utf8_decode(s).size());
  if (width <= len) return s;
  int64_t pad = width - len, left = 0;
  if (align == '>')
    left = pad;
  else if (align == '^')
    left = pad / 2 + (pad & width & 1);  // CPython's str.center rounding
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += s;
  for (int64_t k = 0; k < pad - left; ++k) out += fill;
  return out;
}

}  // namespace skv::jinja::detail
