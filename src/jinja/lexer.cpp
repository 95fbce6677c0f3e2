// Mirrors jinja2's lexer.py closely, because chat templates depend on its exact whitespace
// handling (e.g. `{{-1}}` prints 1: the `-` is whitespace control, not a minus).
#include "jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "jinja/pystring.h"

namespace skv::jinja::detail {

namespace {

class Lexer {
 public:
  Lexer(std::string_view in, const Options& o) : o_(o) {
    // jinja2: every \r\n, \r, \n becomes \n; one trailing newline is dropped.
    src_.reserve(in.size());
    for (size_t k = 0; k < in.size(); ++k) {
      if (in[k] == '\r') {
        src_ += '\n';
        if (k + 1 < in.size() && in[k + 1] == '\n') ++k;
      } else {
        src_ += in[k];
      }
    }
    if (!o.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    size_t n = src_.size();
    while (pos_ < n) {
      size_t t = find_tag(pos_);
      if (t == std::string::npos) {
        emit_data(src_.substr(pos_), pos_);
        break;
      }
      char kind = src_[t + 1];
      size_t after = t + 2;
      char sign = 0;
      if (after < n && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      std::string text = src_.substr(pos_, t - pos_);
      size_t raw_content = kind == '%' ? match_raw_begin(after) : std::string::npos;
      strip_before(text, sign, kind != '{');
      emit_data(std::move(text), pos_);
      line_starting_ = false;
      if (kind == '#') {
        lex_comment(after, line_of(t));
      } else if (raw_content != std::string::npos) {
        lex_raw(raw_content, line_of(t));
      } else {
        lex_tag(kind, after, line_of(t));
      }
    }
    out_.push_back(Token{Token::T::Eof, line_of(n), {}});
    return std::move(out_);
  }

 private:
  const Options& o_;
  std::string src_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // did the previous match end with a newline (lstrip_blocks rule)
  std::vector<Token> out_;
  size_t line_pos_ = 0;
  int line_ = 1;

  [[noreturn]] void fail(int line, const std::string& msg) { skv::fail("jinja: line ", line, ": ", msg); }

  int line_of(size_t p) {  // positions are queried in increasing order (mostly)
    if (p < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
    }
    line_ += static_cast<int>(std::count(src_.begin() + line_pos_, src_.begin() + p, '\n'));
    line_pos_ = p;
    return line_;
  }

  size_t find_tag(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos && k + 1 < src_.size(); k = src_.find('{', k + 1))
      if (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#') return k;
    return std::string::npos;
  }

  // Decodes one code point at p (for Python's unicode \s); returns its byte length or 0.
  size_t space_at(size_t p) const {
    unsigned char c = static_cast<unsigned char>(src_[p]);
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    std::u32string u = utf8_decode(std::string_view(src_).substr(p, len));
    return u.size() == 1 && py_isspace(u[0]) ? len : 0;
  }
  size_t skip_space(size_t p) const {
    while (p < src_.size()) {
      size_t l = space_at(p);
      if (!l) break;
      p += l;
    }
    return p;
  }

  bool at(size_t p, const char* s) const { return src_.compare(p, std::strlen(s), s) == 0; }

  // `-` strips all whitespace before the tag; otherwise lstrip_blocks strips spaces/tabs between
  // the start of the line and a block or comment tag (not a variable tag), unless `+`.
  void strip_before(std::string& text, char sign, bool block_or_comment) {
    if (sign == '-') {
      text = py_strip(text, false, true);
    } else if (sign != '+' && o_.lstrip_blocks && block_or_comment) {
      size_t nl = text.rfind('\n');
      size_t l = nl == std::string::npos ? 0 : nl + 1;
      if ((l > 0 || line_starting_) && l < text.size()) {
        std::string tail = text.substr(l);
        if (py_strip(tail, true, true).empty()) text.resize(l);
      }
    }
  }

  void emit_data(std::string text, size_t at_pos) {
    if (!text.empty()) out_.push_back(Token{Token::T::Data, line_of(at_pos), std::move(text)});
  }

  // After `{%[-+]`: `\s*raw\s*(-%}\s*|%})`. Returns where the raw content starts, or npos.
  size_t match_raw_begin(size_t p) const {
    p = skip_space(p);
    if (!at(p, "raw")) return std::string::npos;
    p = skip_space(p + 3);
    if (at(p, "-%}")) return skip_space(p + 3);
    if (at(p, "%}")) return p + 2;  // note: trim_blocks does not apply to the raw opening tag
    return std::string::npos;
  }

  void lex_comment(size_t p, int line) {
    size_t e = src_.find("#}", p);
    if (e == std::string::npos) fail(line, "missing end of comment tag");
    char sign = e > p ? src_[e - 1] : 0;
    size_t end = e + 2;
    if (sign == '-')
      end = skip_space(end);
    else if (sign != '+' && o_.trim_blocks && end < src_.size() && src_[end] == '\n')
      ++end;
    pos_ = end;
    line_starting_ = src_[end - 1] == '\n';
  }

  void lex_raw(size_t p, int line) {
    // The end is `{%[-+]?\s*endraw\s*(+%}|-%}\s*|%}\n?)`; the content gets the usual stripping.
    for (size_t k = src_.find("{%", p); k != std::string::npos; k = src_.find("{%", k + 1)) {
      size_t q = k + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_space(q);
      if (!at(q, "endraw")) continue;
      q = skip_space(q + 6);
      size_t end;
      if (at(q, "+%}"))
        end = q + 3;
      else if (at(q, "-%}"))
        end = skip_space(q + 3);
      else if (at(q, "%}"))
        end = q + 2 + (o_.trim_blocks && at(q + 2, "\n") ? 1 : 0);
      else
        continue;
      line_starting_ = src_[p - 1] == '\n';
      std::string text = src_.substr(p, k - p);
      strip_before(text, sign, true);
      emit_data(std::move(text), p);
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    fail(line, "missing end of raw directive");
  }

  void lex_tag(char kind, size_t p, int line) {
    bool block = kind == '%';
    out_.push_back(Token{block ? Token::T::BlockBegin : Token::T::VarBegin, line, {}});
    std::vector<char> balance;  // end delimiters only count outside brackets, like jinja2
    size_t n = src_.size();
    while (true) {
      if (p >= n) fail(line, std::string("unterminated tag: '") + (block ? "{%" : "{{") + "' was never closed");
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (block) {
          if (at(p, "+%}"))
            end = p + 3;
          else if (at(p, "-%}"))
            end = skip_space(p + 3);
          else if (at(p, "%}"))
            end = p + 2 + (o_.trim_blocks && at(p + 2, "\n") ? 1 : 0);
        } else {
          if (at(p, "-}}"))
            end = skip_space(p + 3);
          else if (at(p, "}}"))
            end = p + 2;
        }
        if (end != std::string::npos) {
          out_.push_back(Token{block ? Token::T::BlockEnd : Token::T::VarEnd, line_of(p), {}});
          pos_ = end;
          line_starting_ = src_[end - 1] == '\n';
          return;
        }
      }
      if (size_t l = space_at(p)) {
        p += l;
        continue;
      }
      int tl = line_of(p);
      char c = src_[p];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p, tl);
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < n && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        out_.push_back(Token{Token::T::Name, tl, src_.substr(p, e - p)});
        p = e;
      } else if ((c == '\'' || c == '"') && string_end(p) != std::string::npos) {
        size_t e = string_end(p);
        out_.push_back(Token{Token::T::Str, tl, unescape(src_.substr(p + 1, e - p - 1), tl)});
        p = e + 1;
      } else {
        static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* t : two)
          if (at(p, t)) op = t;
        if (op.empty() && std::strchr("+-/*%~[](){}><=.:|,;", c) && c) op = std::string(1, c);
        if (op.empty()) fail(tl, std::string("unexpected char '") + c + "'");
        if (op == "(" || op == "[" || op == "{") {
          balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty()) fail(tl, "unexpected '" + op + "'");
          if (balance.back() != op[0]) fail(tl, "unexpected '" + op + "', expected '" + balance.back() + "'");
          balance.pop_back();
        }
        out_.push_back(Token{Token::T::Op, tl, op});
        p += op.size();
      }
    }
  }

  size_t string_end(size_t p) const {
    char q = src_[p];
    for (size_t k = p + 1; k < src_.size(); ++k) {
      if (src_[k] == '\\')
        ++k;
      else if (src_[k] == q)
        return k;
    }
    return std::string::npos;
  }

  // Python "unicode-escape" decoding, which is what jinja2 applies to string literals.
  std::string unescape(const std::string& s, int line) {
    std::string out;
    auto hex = [&](size_t at, size_t count) -> char32_t {
      if (at + count > s.size()) fail(line, "truncated escape in string literal");
      char32_t v = 0;
      for (size_t k = 0; k < count; ++k) {
        char c = s[at + k];
        if (!std::isxdigit(static_cast<unsigned char>(c))) fail(line, "truncated escape in string literal");
        v = v * 16 + (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
      }
      return v;
    };
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k] != '\\' || k + 1 >= s.size()) {
        out += s[k];
        continue;
      }
      char e = s[++k];
      switch (e) {
        case '\n':
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          utf8_append(out, hex(k + 1, 2));
          k += 2;
          break;
        case 'u':
          utf8_append(out, hex(k + 1, 4));
          k += 4;
          break;
        case 'U': {
          char32_t c = hex(k + 1, 8);
          if (c > 0x10FFFF) fail(line, "illegal Unicode character in string literal");
          utf8_append(out, c);
          k += 8;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = e - '0';
            for (int d = 0; d < 2 && k + 1 < s.size() && s[k + 1] >= '0' && s[k + 1] <= '7'; ++d)
              v = v * 8 + (s[++k] - '0');
            utf8_append(out, v);
          } else {
            out += '\\';  // unknown escapes stay as written
            out += e;
          }
      }
    }
    return out;
  }

  // float: D(\.D)?(e[+-]?D)? with at least one of the optional parts (D = digits, `_` allowed
  // between them); not directly after a '.'. Otherwise an integer (0b / 0o / 0x / decimal).
  size_t lex_number(size_t p, int line) {
    auto digits = [&](size_t q, bool (*ok)(char)) -> size_t {  // (\d+_)*\d+ ; returns end or q
      size_t e = q;
      while (e < src_.size() && ok(src_[e])) {
        ++e;
        if (e + 1 < src_.size() && src_[e] == '_' && ok(src_[e + 1])) ++e;
      }
      return e;
    };
    auto dec = [](char c) { return c >= '0' && c <= '9'; };
    auto clean = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    bool after_dot = p > 0 && src_[p - 1] == '.';
    size_t e = digits(p, dec);
    if (!after_dot) {
      size_t f = e;
      bool is_float = false;
      if (f + 1 < src_.size() && src_[f] == '.' && dec(src_[f + 1])) {
        f = digits(f + 1, dec);
        is_float = true;
      }
      if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t g = f + 1;
        if (g < src_.size() && (src_[g] == '+' || src_[g] == '-')) ++g;
        if (g < src_.size() && dec(src_[g])) {
          f = digits(g, dec);
          is_float = true;
        }
      }
      if (is_float) {
        Token t{Token::T::Float, line, {}};
        t.f = std::stod(clean(src_.substr(p, f - p)));
        out_.push_back(std::move(t));
        return f;
      }
    }
    Token t{Token::T::Int, line, {}};
    char c1 = p + 1 < src_.size() ? static_cast<char>(std::tolower(src_[p + 1])) : 0;
    if (src_[p] == '0' && (c1 == 'b' || c1 == 'o' || c1 == 'x')) {
      int base = c1 == 'b' ? 2 : c1 == 'o' ? 8 : 16;
      auto digit = [&](size_t at) {
        char c = at < src_.size() ? static_cast<char>(std::tolower(src_[at])) : 0;
        return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 99;
      };
      const size_t start = p + 2;
      size_t q = start;
      int64_t v = 0;
      while (true) {  // (_?digit)+
        size_t r = q < src_.size() && src_[q] == '_' ? q + 1 : q;
        int d = digit(r);
        if (d >= base) break;
        v = v * base + d;
        q = r + 1;
      }
      if (q == start) fail(line, "invalid integer literal");
      t.i = v;
      out_.push_back(std::move(t));
      return q;
    }
    if (src_[p] == '0') e = p + 1;  // `0(_?0)*`: a leading zero ends the literal
    while (src_[p] == '0' && e < src_.size() &&
           (src_[e] == '0' || (src_[e] == '_' && e + 1 < src_.size() && src_[e + 1] == '0')))
      ++e;
    std::string d = clean(src_.substr(p, e - p));
    errno = 0;
    t.i = std::strtoll(d.c_str(), nullptr, 10);
    if (errno == ERANGE) fail(line, "integer literal too large");
    out_.push_back(std::move(t));
    return e;
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const Options& opts) { return Lexer(source, opts).run(); }

}  // namespace skv::jinja::detail
