// Builtin filters, tests, globals, Python str/dict/list methods, attribute access and binary
// operators, each following the jinja2 3.1 / CPython behaviour a chat template can observe.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>

#include "jinja/internal.h"

namespace skv::jinja::detail {

namespace {

using K = Value::Kind;

// ---------------------------------------------------------------- small helpers

bool is_int(const Value& v) { return v.kind == K::Int || v.kind == K::Bool; }
int64_t as_int(const Value& v) { return v.kind == K::Bool ? v.b : v.i; }
double as_double(const Value& v) { return v.kind == K::Float ? v.f : static_cast<double>(as_int(v)); }

int64_t need_int(const Value& v, const char* what) {
  if (!is_int(v)) raise(what, " must be an integer, not '", type_name(v), "'");
  return as_int(v);
}

const Value& arg_or(const std::optional<Value>& v, const Value& def) { return v ? *v : def; }

std::string opt_str(const std::optional<Value>& v, const std::string& def) { return v ? to_str(*v) : def; }

Value str_list(std::vector<std::string> parts) {
  ValueList items;
  for (auto& p : parts) items.push_back(Value::str(std::move(p)));
  return Value::list_of(std::move(items));
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

std::string map_case(const std::string& s, char32_t (*f)(char32_t)) {
  std::u32string u = utf8_decode(s);
  for (auto& c : u) c = f(c);
  return utf8_encode(u);
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

std::string jinja_title(const std::string& s) {  // the `title` filter: words start after [-\s({[<]
  std::u32string u = utf8_decode(s);
  bool start = true;
  for (auto& c : u) {
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
    if (sep) {
      start = true;
      continue;
    }
    c = start ? to_upper(c) : to_lower(c);
    start = false;
  }
  return utf8_encode(u);
}

// Code point index of a byte offset.
int64_t cp_index(const std::string& s, size_t byte_off) {
  int64_t n = 0;
  for (size_t k = 0; k < byte_off && k < s.size(); ++k)
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80) ++n;
  return n;
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

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

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

// ---------------------------------------------------------------- string formatting

// printf-style `%` formatting for `"..." % args` and the `format` filter.
std::string percent_format(const std::string& fmt, const Value& args) {
  ValueList pos;
  const ValueDict* mapping = nullptr;
  if (args.kind == K::Tuple)
    pos = *args.list;
  else if (args.kind == K::Dict)
    mapping = args.dict.get();
  else
    pos.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) raise("incomplete format");
    const Value* v = nullptr;
    if (fmt[k] == '(') {
      size_t e = fmt.find(')', k);
      if (e == std::string::npos || !mapping) raise("format requires a mapping");
      v = mapping->find(std::string_view(fmt).substr(k + 1, e - k - 1));
      if (!v) raise("KeyError: '", fmt.substr(k + 1, e - k - 1), "'");
      k = e + 1;
    }
    std::string flags, width, prec;  // prec: digits after '.', "" if absent
    bool has_prec = false;
    while (k < fmt.size() && std::string("-+ #0").find(fmt[k]) != std::string::npos) flags += fmt[k++];
    while (k < fmt.size() && is_digit(fmt[k])) width += fmt[k++];
    if (k < fmt.size() && fmt[k] == '.') {
      ++k;
      has_prec = true;
      while (k < fmt.size() && is_digit(fmt[k])) prec += fmt[k++];
      if (prec.empty()) prec = "0";
    }
    if (k >= fmt.size()) raise("incomplete format");
    char type = fmt[k];
    if (type == '%') {
      out += '%';
      continue;
    }
    if (!v) {
      if (next >= pos.size()) raise("not enough arguments for format string");
      v = &pos[next++];
    }
    char buf[512];
    const std::string spec = "%" + flags + width + (has_prec ? "." + prec : "");
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = type == 's' ? to_str(*v) : repr(*v);
        if (has_prec) s = utf8_encode(utf8_decode(s).substr(0, std::stoul(prec)));
        out += py_pad(s, width.empty() ? 0 : std::stoll(width), flags.find('-') != std::string::npos ? '<' : '>', " ");
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
        if (!v->is_number()) raise("%", std::string(1, type), " format: a number is required, not ", type_name(*v));
        std::snprintf(buf, sizeof buf, (spec + "ll" + (type == 'i' || type == 'u' ? 'd' : type)).c_str(),
                      static_cast<long long>(v->kind == K::Float ? std::trunc(v->f) : as_int(*v)));
        out += buf;
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
        if (!v->is_number()) raise("must be real number, not ", type_name(*v));
        std::snprintf(buf, sizeof buf, (spec + type).c_str(), as_double(*v));
        out += buf;
        break;
      case 'c': {
        std::string s;
        if (v->kind == K::Str)
          s = v->s;
        else
          utf8_append(s, static_cast<char32_t>(as_int(*v)));
        out += s;
        break;
      }
      default:
        raise("unsupported format character '", std::string(1, type), "'");
    }
  }
  if (!mapping && next < pos.size() && args.kind == K::Tuple)
    raise("not all arguments converted during string formatting");
  return out;
}

// str.format with `{}`, `{0}`, `{name}`, `!r`/`!s` and a [fill]align width .precision type spec.
std::string brace_format(const std::string& fmt, const Args& args) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '}') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '}')
        ++k;
      else
        raise("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out += '{';
      ++k;
      continue;
    }
    size_t e = fmt.find('}', k);
    if (e == std::string::npos) raise("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, e - k - 1), spec, conv;
    if (size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (size_t bang = field.find('!'); bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field.resize(bang);
    }
    Value v;
    if (field.empty()) {
      if (auto_idx >= args.pos.size()) raise("Replacement index ", std::to_string(auto_idx), " out of range");
      v = args.pos[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char ch) { return is_digit(ch); })) {
      size_t idx = std::stoul(field);
      if (idx >= args.pos.size()) raise("Replacement index ", field, " out of range");
      v = args.pos[idx];
    } else {
      auto it = std::find_if(args.kw.begin(), args.kw.end(), [&](const auto& kv) { return kv.first == field; });
      if (it == args.kw.end()) raise("KeyError: '", field, "'");
      v = it->second;
    }
    std::string s;
    if (conv == "r") {
      s = repr(v);
    } else if (!spec.empty() && v.is_number() && spec.find_first_of("dfeEgGxX%") != std::string::npos) {
      char type = spec.back();
      std::string body = spec.substr(0, spec.size() - 1);
      char buf[512];
      std::string pf = "%" + body;
      if (type == 'd')
        std::snprintf(buf, sizeof buf, (pf + "lld").c_str(), static_cast<long long>(as_int(v)));
      else
        std::snprintf(buf, sizeof buf, (pf + type).c_str(), as_double(v));
      s = buf;
    } else {
      s = to_str(v);
      if (!spec.empty()) {
        std::string fill = " ";
        char align = v.is_number() ? '>' : '<';
        size_t p = 0;
        if (spec.size() >= 2 && std::string("<>^").find(spec[1]) != std::string::npos) {
          fill = spec.substr(0, 1);
          align = spec[1];
          p = 2;
        } else if (std::string("<>^").find(spec[0]) != std::string::npos) {
          align = spec[0];
          p = 1;
        }
        std::string w;
        while (p < spec.size() && is_digit(spec[p])) w += spec[p++];
        if (p < spec.size() && spec[p] == '.') {
          std::string pr;
          ++p;
          while (p < spec.size() && is_digit(spec[p])) pr += spec[p++];
          s = utf8_encode(utf8_decode(s).substr(0, pr.empty() ? 0 : std::stoul(pr)));
        }
        if (p < spec.size() && spec[p] == 's') ++p;
        if (p != spec.size()) raise("unsupported format spec '", spec, "'");
        s = py_pad(s, w.empty() ? 0 : std::stoll(w), align, fill);
      }
    }
    out += s;
    k = e;
  }
  return out;
}

// ---------------------------------------------------------------- attribute paths

// jinja's make_attrgetter: "a.b.0" walks getitem (which falls back to getattr).
Value attr_path(const Value& item, const Value& attribute) {
  if (attribute.kind != K::Str) return get_item(item, attribute);
  Value v = item;
  size_t pos = 0;
  const std::string& a = attribute.s;
  while (true) {
    size_t dot = a.find('.', pos);
    std::string part = a.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return is_digit(c); });
    v = get_item(v, digits ? Value::integer(std::stoll(part)) : Value::str(part));
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return v;
}

Value ignore_case(const Value& v) { return v.kind == K::Str ? Value::str(py_lower(v.s)) : v; }

// ---------------------------------------------------------------- methods

const std::vector<std::string> kStrMethods = {
    "capitalize",   "casefold",   "center",    "count",       "encode",    "endswith",     "expandtabs",   "find",
    "format",       "format_map", "index",     "isalnum",     "isalpha",   "isascii",      "isdecimal",    "isdigit",
    "isidentifier", "islower",    "isnumeric", "isprintable", "isspace",   "istitle",      "isupper",      "join",
    "ljust",        "lower",      "lstrip",    "maketrans",   "partition", "removeprefix", "removesuffix", "replace",
    "rfind",        "rindex",     "rjust",     "rpartition",  "rsplit",    "rstrip",       "split",        "splitlines",
    "startswith",   "strip",      "swapcase",  "title",       "translate", "upper",        "zfill"};
const std::vector<std::string> kDictMethods = {"copy", "fromkeys", "get", "items", "keys", "values"};
const std::vector<std::string> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};
const std::vector<std::string> kListMethods = {"copy", "count", "index"};
const std::vector<std::string> kListUnsafe = {"append", "clear",  "extend",  "insert",
                                              "pop",    "remove", "reverse", "sort"};

bool in(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

Value call_method(Interp& in, const Value& obj, const std::string& name, const Args& args);

Value bound_method(const Value& obj, const std::string& name) {
  return Value::func(name, [obj, name](Interp& in, Args& args) { return call_method(in, obj, name, args); });
}

bool prefix_match(const std::string& s, const Value& prefix, bool ends, const char* fname) {
  auto one = [&](const Value& p) {
    if (p.kind != K::Str) raise(fname, " first arg must be str or a tuple of str, not ", type_name(p));
    if (p.s.size() > s.size()) return false;
    return ends ? s.compare(s.size() - p.s.size(), p.s.size(), p.s) == 0 : s.compare(0, p.s.size(), p.s) == 0;
  };
  if (prefix.kind == K::Tuple) {
    for (const auto& p : *prefix.list)
      if (one(p)) return true;
    return false;
  }
  return one(prefix);
}

Value str_method(Interp& in, const std::string& s, const std::string& name, const Args& args) {
  auto chars_arg = [&](const char* fname) -> std::optional<std::string> {
    auto a = args.bind(fname, {"chars"});
    if (!a[0] || a[0]->kind == K::None) return std::nullopt;
    if (a[0]->kind != K::Str) raise(fname, " arg must be None or str");
    return a[0]->s;
  };
  if (name == "strip") return Value::str(py_strip(s, true, true, chars_arg("strip")));
  if (name == "lstrip") return Value::str(py_strip(s, true, false, chars_arg("lstrip")));
  if (name == "rstrip") return Value::str(py_strip(s, false, true, chars_arg("rstrip")));
  if (name == "split" || name == "rsplit") {
    auto a = args.bind(name.c_str(), {"sep", "maxsplit"});
    std::optional<std::string> sep;
    if (a[0] && a[0]->kind != K::None) {
      if (a[0]->kind != K::Str) raise("must be str or None, not ", type_name(*a[0]));
      sep = a[0]->s;
    }
    int64_t maxsplit = a[1] ? need_int(*a[1], "maxsplit") : -1;
    return str_list(py_split(s, sep, maxsplit, name == "rsplit"));
  }
  if (name == "splitlines") {
    auto a = args.bind("splitlines", {"keepends"});
    return str_list(py_splitlines(s, a[0] && truthy(*a[0])));
  }
  if (name == "startswith" || name == "endswith") {
    auto a = args.bind(name.c_str(), {"prefix", "start", "end"});
    if (!a[0]) raise(name, "() takes at least 1 argument (0 given)");
    if (a[1] || a[2]) {
      Value sub = slice(Value::str(s), arg_or(a[1], Value::none()), arg_or(a[2], Value::none()), Value::none());
      return Value::boolean(prefix_match(sub.s, *a[0], name == "endswith", name.c_str()));
    }
    return Value::boolean(prefix_match(s, *a[0], name == "endswith", name.c_str()));
  }
  if (name == "upper") return Value::str(py_upper(s));
  if (name == "lower" || name == "casefold") return Value::str(py_lower(s));
  if (name == "title") return Value::str(py_title(s));
  if (name == "capitalize") return Value::str(py_capitalize(s));
  if (name == "swapcase") {
    std::u32string u = utf8_decode(s);
    for (auto& c : u) c = is_upper(c) ? to_lower(c) : to_upper(c);
    return Value::str(utf8_encode(u));
  }
  if (name == "replace") {
    auto a = args.bind("replace", {"old", "new", "count"});
    if (!a[0] || !a[1]) raise("replace() takes at least 2 arguments");
    if (a[0]->kind != K::Str || a[1]->kind != K::Str) raise("replace() arguments must be str");
    return Value::str(py_replace(s, a[0]->s, a[1]->s, a[2] ? need_int(*a[2], "count") : -1));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    auto a = args.bind(name.c_str(), {"sub", "start", "end"});
    if (!a[0] || a[0]->kind != K::Str) raise(name, "() argument must be str");
    std::string hay = s;
    int64_t offset = 0;
    if (a[1] || a[2]) {
      Value start = arg_or(a[1], Value::none());
      hay = slice(Value::str(s), start, arg_or(a[2], Value::none()), Value::none()).s;
      offset = static_cast<int64_t>(utf8_decode(s).size() -
                                    utf8_decode(slice(Value::str(s), start, Value::none(), Value::none()).s).size());
    }
    const std::string& sub = a[0]->s;
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_decode(hay).size()) + 1);
      int64_t n = 0;
      for (size_t p = hay.find(sub); p != std::string::npos; p = hay.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    size_t p = name[0] == 'r' ? hay.rfind(sub) : hay.find(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") raise("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(offset + cp_index(hay, p));
  }
  if (name == "join") {
    auto a = args.bind("join", {"iterable"});
    if (!a[0]) raise("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(*a[0])) {
      if (x.kind != K::Str) raise("sequence item: expected str instance, ", type_name(x), " found");
      if (!first) out += s;
      first = false;
      out += x.s;
    }
    return Value::str(std::move(out));
  }
  if (name == "format") return Value::str(brace_format(s, args));
  if (name == "center" || name == "ljust" || name == "rjust") {
    auto a = args.bind(name.c_str(), {"width", "fillchar"});
    if (!a[0]) raise(name, "() takes at least 1 argument");
    std::string fill = a[1] ? to_str(*a[1]) : " ";
    return Value::str(py_pad(s, need_int(*a[0], "width"), name == "center" ? '^' : name == "ljust" ? '<' : '>', fill));
  }
  if (name == "zfill") {
    auto a = args.bind("zfill", {"width"});
    int64_t w = a[0] ? need_int(*a[0], "width") : 0;
    std::string body = s, sign;
    if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
      sign = body.substr(0, 1);
      body.erase(0, 1);
    }
    int64_t len = static_cast<int64_t>(utf8_decode(s).size());
    return Value::str(len >= w ? s : sign + std::string(w - len, '0') + body);
  }
  if (name == "partition" || name == "rpartition") {
    auto a = args.bind(name.c_str(), {"sep"});
    if (!a[0] || a[0]->kind != K::Str || a[0]->s.empty()) raise(name, "() needs a non-empty str separator");
    size_t p = name == "partition" ? s.find(a[0]->s) : s.rfind(a[0]->s);
    ValueList parts;
    if (p == std::string::npos) {
      parts = name == "partition" ? ValueList{Value::str(s), Value::str(""), Value::str("")}
                                  : ValueList{Value::str(""), Value::str(""), Value::str(s)};
    } else {
      parts = {Value::str(s.substr(0, p)), *a[0], Value::str(s.substr(p + a[0]->s.size()))};
    }
    return Value::list_of(std::move(parts), true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    auto a = args.bind(name.c_str(), {"affix"});
    if (!a[0] || a[0]->kind != K::Str) raise(name, "() argument must be str");
    const std::string& x = a[0]->s;
    if (name == "removeprefix") return Value::str(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    bool ends = x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return Value::str(ends && !x.empty() ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name.rfind("is", 0) == 0) {
    args.bind(name.c_str(), {});
    std::u32string u = utf8_decode(s);
    auto all = [&](auto pred) { return !u.empty() && std::all_of(u.begin(), u.end(), pred); };
    if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return Value::boolean(all(is_digit));
    if (name == "isalpha") return Value::boolean(all(is_alpha));
    if (name == "isalnum") return Value::boolean(all([](char32_t c) { return is_alpha(c) || is_digit(c); }));
    if (name == "isspace") return Value::boolean(all(py_isspace));
    if (name == "isascii") return Value::boolean(std::all_of(u.begin(), u.end(), [](char32_t c) { return c < 0x80; }));
    bool any_cased = std::any_of(u.begin(), u.end(), is_cased);
    if (name == "islower") return Value::boolean(any_cased && std::none_of(u.begin(), u.end(), is_upper));
    if (name == "isupper")
      return Value::boolean(any_cased && std::none_of(u.begin(), u.end(), [](char32_t c) { return is_lower(c); }));
    if (name == "istitle") return Value::boolean(any_cased && py_title(s) == s);
  }
  raise("the string method '", name, "' is not supported");
}

Value call_method(Interp& in, const Value& obj, const std::string& name, const Args& args) {
  if (obj.kind == K::Str) return str_method(in, obj.s, name, args);
  if (obj.kind == K::Dict) {
    const ValueDict& d = *obj.dict;
    if (name == "get") {
      auto a = args.bind("get", {"key", "default"});
      if (!a[0]) raise("get expected at least 1 argument, got 0");
      const Value* v = d.find(*a[0]);
      return v ? *v : arg_or(a[1], Value::none());
    }
    args.bind(name.c_str(), {});
    ValueList out;
    if (name == "copy") return obj;
    for (const auto& [k, v] : d.items) {
      if (name == "keys")
        out.push_back(k);
      else if (name == "values")
        out.push_back(v);
      else if (name == "items")
        out.push_back(Value::list_of({k, v}, true));
      else
        raise("the dict method '", name, "' is not supported");
    }
    return Value::list_of(std::move(out));
  }
  if (obj.is_seq()) {
    if (name == "copy") return obj;
    auto a = args.bind(name.c_str(), {"value"});
    if (!a[0]) raise(name, "() takes exactly one argument (0 given)");
    int64_t n = 0;
    for (size_t k = 0; k < obj.list->size(); ++k) {
      if (!py_eq((*obj.list)[k], *a[0])) continue;
      if (name == "index") return Value::integer(static_cast<int64_t>(k));
      ++n;
    }
    if (name == "index") raise(repr(*a[0]), " is not in list");
    return Value::integer(n);
  }
  raise("'", type_name(obj), "' object has no method '", name, "'");
}

// ---------------------------------------------------------------- filters

using FilterFn = Value (*)(Interp&, const Value&, const Args&);

Value f_default(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("default", {"default_value", "boolean"});
  bool boolean = a[1] && truthy(*a[1]);
  if (v.is_undefined() || (boolean && !truthy(v))) return a[0] ? *a[0] : Value::str("");
  return v;
}

Value f_tojson(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = a[0] && truthy(*a[0]);
  if (a[1] && a[1]->kind != K::None) {
    if (a[1]->kind == K::Str)
      o.indent = a[1]->s;
    else
      o.indent = std::string(std::max<int64_t>(0, need_int(*a[1], "indent")), ' ');
  }
  if (a[2] && a[2]->kind != K::None) {
    if (!a[2]->is_seq() || a[2]->list->size() != 2) raise("tojson separators must be a pair of strings");
    o.separators = std::make_pair(to_str((*a[2]->list)[0]), to_str((*a[2]->list)[1]));
  }
  o.sort_keys = a[3] && truthy(*a[3]);
  return Value::str(to_json(v, o));
}

Value f_join(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("join", {"d", "attribute"});
  std::string sep = opt_str(a[0], ""), out;
  bool first = true;
  for (const auto& x : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(a[1] && a[1]->kind != K::None ? attr_path(x, *a[1]) : x);
  }
  return Value::str(std::move(out));
}

Value f_first(Interp&, const Value& v, const Args& args) {
  args.bind("first", {});
  ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Interp&, const Value& v, const Args& args) {
  args.bind("last", {});
  if (v.generator) raise("'generator' object is not reversible");
  ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_length(Interp&, const Value& v, const Args& args) {
  args.bind("length", {});
  return Value::integer(py_len(v));
}

Value f_trim(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("trim", {"chars"});
  std::optional<std::string> chars;
  if (a[0] && a[0]->kind != K::None) chars = to_str(*a[0]);
  return Value::str(py_strip(to_str(v), true, true, chars));
}

Value f_string(Interp&, const Value& v, const Args& args) {
  args.bind("string", {});
  return Value::str(to_str(v));
}

Value f_upper(Interp&, const Value& v, const Args& args) {
  args.bind("upper", {});
  return Value::str(py_upper(to_str(v)));
}
Value f_lower(Interp&, const Value& v, const Args& args) {
  args.bind("lower", {});
  return Value::str(py_lower(to_str(v)));
}
Value f_capitalize(Interp&, const Value& v, const Args& args) {
  args.bind("capitalize", {});
  return Value::str(py_capitalize(to_str(v)));
}
Value f_title(Interp&, const Value& v, const Args& args) {
  args.bind("title", {});
  return Value::str(jinja_title(to_str(v)));
}

Value f_replace(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("replace", {"old", "new", "count"});
  if (!a[0] || !a[1]) raise("replace() missing required arguments 'old' and 'new'");
  int64_t count = a[2] && a[2]->kind != K::None ? need_int(*a[2], "count") : -1;
  return Value::str(py_replace(to_str(v), to_str(*a[0]), to_str(*a[1]), count));
}

// Python int(): optional sign, digits with single underscores, surrounding whitespace.
std::optional<int64_t> parse_py_int(const std::string& text, int base) {
  std::string s = py_strip(text, true, true);
  size_t k = 0;
  bool neg = false;
  if (k < s.size() && (s[k] == '+' || s[k] == '-')) neg = s[k++] == '-';
  if (base == 16 && s.compare(k, 2, "0x") == 0)
    k += 2;
  else if (base == 8 && s.compare(k, 2, "0o") == 0)
    k += 2;
  else if (base == 2 && s.compare(k, 2, "0b") == 0)
    k += 2;
  if (k >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool prev_digit = false;
  for (; k < s.size(); ++k) {
    char c = static_cast<char>(std::tolower(s[k]));
    if (c == '_' && prev_digit && k + 1 < s.size()) {
      prev_digit = false;
      continue;
    }
    int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'z') ? c - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) return std::nullopt;
    prev_digit = true;
  }
  if (!prev_digit) return std::nullopt;
  return neg ? -v : v;
}

std::optional<double> parse_py_float(const std::string& text) {
  std::string s = py_strip(text, true, true);
  if (s.empty()) return std::nullopt;
  std::string t;
  for (size_t k = 0; k < s.size(); ++k) {  // underscores only between digits
    if (s[k] == '_' && k > 0 && k + 1 < s.size() && is_digit(s[k - 1]) && is_digit(s[k + 1])) continue;
    t += s[k];
  }
  std::string low = py_lower(t);
  if (low == "nan" || low == "+nan" || low == "-nan") return NAN;
  if (low == "inf" || low == "+inf" || low == "infinity" || low == "+infinity") return INFINITY;
  if (low == "-inf" || low == "-infinity") return -INFINITY;
  if (low.find_first_not_of("0123456789+-.e") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return d;
}

Value f_int(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("int", {"default", "base"});
  Value def = a[0] ? *a[0] : Value::integer(0);
  int base = a[1] ? static_cast<int>(need_int(*a[1], "base")) : 10;
  if (v.is_undefined()) fail_undefined(v);
  if (is_int(v)) return Value::integer(as_int(v));
  if (v.kind == K::Float) {
    if (!std::isfinite(v.f)) return def;
    return Value::integer(static_cast<int64_t>(v.f));
  }
  if (v.kind == K::Str) {
    if (auto i = parse_py_int(v.s, base)) return Value::integer(*i);
    if (auto d = parse_py_float(v.s); d && std::isfinite(*d)) return Value::integer(static_cast<int64_t>(*d));
  }
  return def;
}

Value f_float(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("float", {"default"});
  Value def = a[0] ? *a[0] : Value::real(0.0);
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number()) return Value::real(as_double(v));
  if (v.kind == K::Str)
    if (auto d = parse_py_float(v.s)) return Value::real(*d);
  return def;
}

Value f_abs(Interp&, const Value& v, const Args& args) {
  args.bind("abs", {});
  if (v.kind == K::Float) return Value::real(std::fabs(v.f));
  if (is_int(v)) return Value::integer(std::llabs(as_int(v)));
  if (v.is_undefined()) fail_undefined(v);
  raise("bad operand type for abs(): '", type_name(v), "'");
}

Value f_round(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("round", {"precision", "method"});
  int64_t prec = a[0] ? need_int(*a[0], "precision") : 0;
  std::string method = opt_str(a[1], "common");
  if (method != "common" && method != "ceil" && method != "floor") raise("method must be common, ceil or floor");
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) raise("type ", type_name(v), " doesn't define __round__ method");
  if (method == "common") {
    if (is_int(v)) {  // round(int, n) stays an int; negative n rounds half-to-even to 10^-n
      int64_t x = as_int(v);
      if (prec >= 0) return Value::integer(x);
      if (prec < -18) return Value::integer(0);
      int64_t m = 1;
      for (int64_t k = 0; k < -prec; ++k) m *= 10;
      int64_t q = x / m, rem = x % m;
      if (rem < 0) {
        rem += m;
        --q;
      }
      if (rem * 2 > m || (rem * 2 == m && (q & 1))) ++q;
      return Value::integer(q * m);
    }
    // printf rounds the exact binary value half-to-even, which is what Python's round() does.
    char buf[512];
    if (prec >= 0 && prec < 300) {
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(prec), v.f);
      return Value::real(std::strtod(buf, nullptr));
    }
    double m = std::pow(10.0, static_cast<double>(-prec));
    return Value::real(std::nearbyint(v.f / m) * m);
  }
  double m = std::pow(10.0, static_cast<double>(prec));
  double x = as_double(v) * m;
  return Value::real((method == "ceil" ? std::ceil(x) : std::floor(x)) / m);
}

Value f_list(Interp&, const Value& v, const Args& args) {
  args.bind("list", {});
  return Value::list_of(iterate(v));
}

Value f_items(Interp&, const Value& v, const Args& args) {
  args.bind("items", {});
  if (v.is_undefined()) return Value::list_of({}, false, true);
  if (v.kind != K::Dict) raise("Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, x] : v.dict->items) out.push_back(Value::list_of({k, x}, true));
  return Value::list_of(std::move(out), false, true);
}

Value f_safe(Interp&, const Value& v, const Args& args) {
  args.bind("safe", {});
  return Value::str(to_str(v));
}

Value f_escape(Interp&, const Value& v, const Args& args) {
  args.bind("escape", {});
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Value::str(std::move(out));
}

Value f_indent(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("indent", {"width", "first", "blank"});
  std::string ind = " ";
  if (a[0] && a[0]->kind == K::Str)
    ind = a[0]->s;
  else
    ind = std::string(std::max<int64_t>(0, a[0] ? need_int(*a[0], "width") : 4), ' ');
  bool first = a[1] && truthy(*a[1]), blank = a[2] && truthy(*a[2]);
  std::vector<std::string> lines = py_splitlines(to_str(v) + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : ind + lines[k]);
  }
  if (first) rv = ind + rv;
  return Value::str(std::move(rv));
}

Value f_center(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("center", {"width"});
  return Value::str(py_pad(to_str(v), a[0] ? need_int(*a[0], "width") : 80, '^', " "));
}

Value f_truncate(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("truncate", {"length", "killwords", "end", "leeway"});
  int64_t length = a[0] ? need_int(*a[0], "length") : 255;
  bool killwords = a[1] && truthy(*a[1]);
  std::u32string end = utf8_decode(opt_str(a[2], "...")), s = utf8_decode(to_str(v));
  int64_t leeway = a[3] && a[3]->kind != K::None ? need_int(*a[3], "leeway") : 5;
  if (length < static_cast<int64_t>(end.size())) raise("expected length >= ", std::to_string(end.size()));
  if (static_cast<int64_t>(s.size()) <= length + leeway) return Value::str(utf8_encode(s));
  std::u32string head = s.substr(0, length - end.size());
  if (!killwords) {
    size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head.resize(sp);
  }
  return Value::str(utf8_encode(head + end));
}

Value f_wordcount(Interp&, const Value& v, const Args& args) {
  args.bind("wordcount", {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(to_str(v))) {
    bool w = is_alpha(c) || is_digit(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value f_reverse(Interp&, const Value& v, const Args& args) {
  args.bind("reverse", {});
  if (v.kind == K::Str) {
    std::u32string u = utf8_decode(v.s);
    std::reverse(u.begin(), u.end());
    return Value::str(utf8_encode(u));
  }
  ValueList items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list_of(std::move(items), false, v.kind != K::Dict);  // reversed() is an iterator
}

Value sorted(ValueList items, bool reverse, bool case_sensitive, const std::optional<Value>& attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) {
    Value key = attribute && attribute->kind != K::None ? attr_path(x, *attribute) : x;
    keyed.emplace_back(case_sensitive ? key : ignore_case(key), std::move(x));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? py_lt(b.first, a.first) : py_lt(a.first, b.first);
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list_of(std::move(out));
}

Value f_sort(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("sort", {"reverse", "case_sensitive", "attribute"});
  return sorted(iterate(v), a[0] && truthy(*a[0]), a[1] && truthy(*a[1]), a[2]);
}

Value f_dictsort(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("dictsort", {"case_sensitive", "by", "reverse"});
  if (v.kind != K::Dict) raise("dictsort expects a mapping");
  std::string by = opt_str(a[1], "key");
  if (by != "key" && by != "value") raise("You can only sort by either \"key\" or \"value\"");
  ValueList pairs;
  for (const auto& [k, x] : v.dict->items) pairs.push_back(Value::list_of({k, x}, true));
  return sorted(std::move(pairs), a[2] && truthy(*a[2]), a[0] && truthy(*a[0]), Value::integer(by == "key" ? 0 : 1));
}

Value f_unique(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("unique", {"case_sensitive", "attribute"});
  bool cs = a[0] && truthy(*a[0]);
  ValueList seen, out;
  for (const auto& x : iterate(v)) {
    Value key = a[1] && a[1]->kind != K::None ? attr_path(x, *a[1]) : x;
    if (!cs) key = ignore_case(key);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return py_eq(s, key); })) continue;
    seen.push_back(key);
    out.push_back(x);
  }
  return Value::list_of(std::move(out), false, true);
}

Value min_max(const Value& v, const Args& args, bool want_max, const char* fname) {
  auto a = args.bind(fname, {"case_sensitive", "attribute"});
  bool cs = a[0] && truthy(*a[0]);
  ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& x) {
    Value k = a[1] && a[1]->kind != K::None ? attr_path(x, *a[1]) : x;
    return cs ? k : ignore_case(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t k = 1; k < items.size(); ++k) {
    Value kk = key(items[k]);
    if (want_max ? py_lt(best_key, kk) : py_lt(kk, best_key)) {
      best = k;
      best_key = kk;
    }
  }
  return items[best];
}
Value f_max(Interp&, const Value& v, const Args& args) { return min_max(v, args, true, "max"); }
Value f_min(Interp&, const Value& v, const Args& args) { return min_max(v, args, false, "min"); }

Value f_sum(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("sum", {"attribute", "start"});
  Value acc = a[1] ? *a[1] : Value::integer(0);
  for (const auto& x : iterate(v)) acc = binary_op("+", acc, a[0] && a[0]->kind != K::None ? attr_path(x, *a[0]) : x);
  return acc;
}

Value f_batch(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("batch", {"linecount", "fill_with"});
  if (!a[0]) raise("batch() missing required argument 'linecount'");
  int64_t n = need_int(*a[0], "linecount");
  if (n <= 0) raise("batch linecount must be positive");
  ValueList out, cur;
  for (const auto& x : iterate(v)) {
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list_of(std::move(cur)));
      cur.clear();
    }
    cur.push_back(x);
  }
  if (!cur.empty()) {
    if (a[1] && a[1]->kind != K::None)
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*a[1]);
    out.push_back(Value::list_of(std::move(cur)));
  }
  return Value::list_of(std::move(out), false, true);
}

Value f_attr(Interp&, const Value& v, const Args& args) {
  auto a = args.bind("attr", {"name"});
  if (!a[0]) raise("attr() missing required argument 'name'");
  std::string name = to_str(*a[0]);
  // Python getattr only: a dict's keys are not attributes.
  if (v.kind == K::Dict)
    return in(kDictMethods, name) ? bound_method(v, name)
                                  : Value::undefined("'dict object' has no attribute '" + name + "'");
  return get_attr(v, name);
}

Value f_format(Interp&, const Value& v, const Args& args) {
  if (!args.pos.empty() && !args.kw.empty()) raise("can't handle positional and keyword arguments at the same time");
  if (!args.kw.empty()) {
    auto d = std::make_shared<ValueDict>();
    for (const auto& [k, x] : args.kw) d->set(Value::str(k), x);
    return Value::str(percent_format(to_str(v), Value::dict_of(d)));
  }
  return Value::str(percent_format(to_str(v), Value::list_of(args.pos, true)));
}

Value f_map(Interp& in, const Value& v, const Args& args) {
  ValueList out;
  if (args.pos.empty()) {
    auto a = args.bind("map", {"attribute", "default"});
    if (!a[0]) raise("map requires a filter argument");
    for (const auto& x : iterate(v)) {
      Value r = attr_path(x, *a[0]);
      if (a[1] && a[1]->kind != K::None && r.is_undefined()) r = *a[1];
      out.push_back(std::move(r));
    }
  } else {
    std::string name = to_str(args.pos[0]);
    if (!has_filter(name)) raise("No filter named '", name, "'");
    Args rest{std::vector<Value>(args.pos.begin() + 1, args.pos.end()), args.kw};
    for (const auto& x : iterate(v)) out.push_back(apply_filter(in, name, x, rest));
  }
  return Value::list_of(std::move(out), false, true);
}

Value select_reject(Interp& in, const Value& v, const Args& args, bool select, bool by_attr) {
  ValueList out;
  if (!truthy(v)) return Value::list_of({}, false, true);
  size_t off = by_attr ? 1 : 0;
  if (by_attr && args.pos.empty()) raise("Missing parameter for attribute name");
  std::optional<std::string> test;
  if (args.pos.size() > off) {
    test = to_str(args.pos[off]);
    if (!has_test(*test)) raise("No test named '", *test, "'");
  }
  Args rest{
      args.pos.size() > off + 1 ? std::vector<Value>(args.pos.begin() + off + 1, args.pos.end()) : std::vector<Value>{},
      args.kw};
  for (const auto& x : iterate(v)) {
    Value subject = by_attr ? attr_path(x, args.pos[0]) : x;
    bool ok = test ? apply_test(in, *test, subject, rest) : truthy(subject);
    if (ok == select) out.push_back(x);
  }
  return Value::list_of(std::move(out), false, true);
}
Value f_select(Interp& in, const Value& v, const Args& a) { return select_reject(in, v, a, true, false); }
Value f_reject(Interp& in, const Value& v, const Args& a) { return select_reject(in, v, a, false, false); }
Value f_selectattr(Interp& in, const Value& v, const Args& a) { return select_reject(in, v, a, true, true); }
Value f_rejectattr(Interp& in, const Value& v, const Args& a) { return select_reject(in, v, a, false, true); }

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> m = {
      {"abs", f_abs},           {"attr", f_attr},
      {"batch", f_batch},       {"capitalize", f_capitalize},
      {"center", f_center},     {"count", f_length},
      {"d", f_default},         {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},
      {"escape", f_escape},     {"first", f_first},
      {"float", f_float},       {"forceescape", f_escape},
      {"format", f_format},     {"indent", f_indent},
      {"int", f_int},           {"items", f_items},
      {"join", f_join},         {"last", f_last},
      {"length", f_length},     {"list", f_list},
      {"lower", f_lower},       {"map", f_map},
      {"max", f_max},           {"min", f_min},
      {"reject", f_reject},     {"rejectattr", f_rejectattr},
      {"replace", f_replace},   {"reverse", f_reverse},
      {"round", f_round},       {"safe", f_safe},
      {"select", f_select},     {"selectattr", f_selectattr},
      {"sort", f_sort},         {"string", f_string},
      {"sum", f_sum},           {"title", f_title},
      {"tojson", f_tojson},     {"trim", f_trim},
      {"truncate", f_truncate}, {"unique", f_unique},
      {"upper", f_upper},       {"wordcount", f_wordcount},
  };
  return m;
}

// ---------------------------------------------------------------- tests

using TestFn = bool (*)(Interp&, const Value&, const Args&);

Value one_arg(const Args& args, const char* name) {
  auto a = args.bind(name, {"other"});
  if (!a[0]) raise(name, "() missing required argument");
  return *a[0];
}

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> m = {
      {"defined", [](Interp&, const Value& v, const Args&) { return !v.is_undefined(); }},
      {"undefined", [](Interp&, const Value& v, const Args&) { return v.is_undefined(); }},
      {"none", [](Interp&, const Value& v, const Args&) { return v.kind == K::None; }},
      {"boolean", [](Interp&, const Value& v, const Args&) { return v.kind == K::Bool; }},
      {"false", [](Interp&, const Value& v, const Args&) { return v.kind == K::Bool && !v.b; }},
      {"true", [](Interp&, const Value& v, const Args&) { return v.kind == K::Bool && v.b; }},
      {"integer", [](Interp&, const Value& v, const Args&) { return v.kind == K::Int; }},
      {"float", [](Interp&, const Value& v, const Args&) { return v.kind == K::Float; }},
      {"number", [](Interp&, const Value& v, const Args&) { return v.is_number(); }},
      {"string", [](Interp&, const Value& v, const Args&) { return v.kind == K::Str; }},
      {"mapping", [](Interp&, const Value& v, const Args&) { return v.kind == K::Dict; }},
      {"iterable",
       [](Interp&, const Value& v, const Args&) {
         return v.is_undefined() || v.kind == K::Str || v.is_seq() || v.kind == K::Dict ||
                (v.kind == K::Object && v.s == "LoopContext");
       }},
      {"sequence",
       [](Interp&, const Value& v, const Args&) {
         return v.is_undefined() || v.kind == K::Str || (v.is_seq() && !v.generator) || v.kind == K::Dict;
       }},
      {"callable", [](Interp&, const Value& v, const Args&) { return v.kind == K::Func; }},
      {"escaped", [](Interp&, const Value&, const Args&) { return false; }},
      {"odd",
       [](Interp&, const Value& v, const Args&) {
         if (v.is_undefined()) fail_undefined(v);
         return need_int(v, "odd") % 2 != 0;
       }},
      {"even",
       [](Interp&, const Value& v, const Args&) {
         if (v.is_undefined()) fail_undefined(v);
         return need_int(v, "even") % 2 == 0;
       }},
      {"divisibleby",
       [](Interp&, const Value& v, const Args& a) {
         int64_t n = need_int(one_arg(a, "divisibleby"), "divisibleby");
         if (n == 0) raise("integer division or modulo by zero");
         return need_int(v, "divisibleby") % n == 0;
       }},
      {"sameas",
       [](Interp&, const Value& v, const Args& a) {
         const Value& o = one_arg(a, "sameas");
         if (v.kind != o.kind) return false;
         if (v.is_seq()) return v.list == o.list;
         if (v.kind == K::Dict || v.kind == K::Object) return v.dict == o.dict;
         return py_eq(v, o);
       }},
      {"eq", [](Interp&, const Value& v, const Args& a) { return py_eq(v, one_arg(a, "eq")); }},
      {"equalto", [](Interp&, const Value& v, const Args& a) { return py_eq(v, one_arg(a, "equalto")); }},
      {"==", [](Interp&, const Value& v, const Args& a) { return py_eq(v, one_arg(a, "==")); }},
      {"ne", [](Interp&, const Value& v, const Args& a) { return !py_eq(v, one_arg(a, "ne")); }},
      {"!=", [](Interp&, const Value& v, const Args& a) { return !py_eq(v, one_arg(a, "!=")); }},
      {"lt", [](Interp&, const Value& v, const Args& a) { return py_lt(v, one_arg(a, "lt")); }},
      {"lessthan", [](Interp&, const Value& v, const Args& a) { return py_lt(v, one_arg(a, "lessthan")); }},
      {"<", [](Interp&, const Value& v, const Args& a) { return py_lt(v, one_arg(a, "<")); }},
      {"le",
       [](Interp&, const Value& v, const Args& a) {
         const Value& o = one_arg(a, "le");
         return py_lt(v, o) || py_eq(v, o);
       }},
      {"<=",
       [](Interp&, const Value& v, const Args& a) {
         const Value& o = one_arg(a, "<=");
         return py_lt(v, o) || py_eq(v, o);
       }},
      {"gt", [](Interp&, const Value& v, const Args& a) { return py_lt(one_arg(a, "gt"), v); }},
      {"greaterthan", [](Interp&, const Value& v, const Args& a) { return py_lt(one_arg(a, "greaterthan"), v); }},
      {">", [](Interp&, const Value& v, const Args& a) { return py_lt(one_arg(a, ">"), v); }},
      {"ge",
       [](Interp&, const Value& v, const Args& a) {
         const Value& o = one_arg(a, "ge");
         return py_lt(o, v) || py_eq(v, o);
       }},
      {">=",
       [](Interp&, const Value& v, const Args& a) {
         const Value& o = one_arg(a, ">=");
         return py_lt(o, v) || py_eq(v, o);
       }},
      {"in",
       [](Interp&, const Value& v, const Args& a) {
         Value seq = one_arg(a, "in");
         if (seq.kind == K::Str) {
           if (v.kind != K::Str) raise("'in <string>' requires string as left operand, not ", type_name(v));
           return seq.s.find(v.s) != std::string::npos;
         }
         if (seq.kind == K::Dict) return seq.dict->find(v) != nullptr;
         for (const auto& x : iterate(seq))
           if (py_eq(x, v)) return true;
         return false;
       }},
      {"lower",
       [](Interp&, const Value& v, const Args&) {
         std::u32string u = utf8_decode(to_str(v));
         return std::any_of(u.begin(), u.end(), is_cased) && std::none_of(u.begin(), u.end(), is_upper);
       }},
      {"upper",
       [](Interp&, const Value& v, const Args&) {
         std::u32string u = utf8_decode(to_str(v));
         return std::any_of(u.begin(), u.end(), is_cased) &&
                std::none_of(u.begin(), u.end(), [](char32_t c) { return is_lower(c); });
       }},
      {"filter", [](Interp&, const Value& v, const Args&) { return v.kind == K::Str && has_filter(v.s); }},
      {"test", [](Interp&, const Value& v, const Args&) { return v.kind == K::Str && has_test(v.s); }},
  };
  return m;
}

// ---------------------------------------------------------------- arithmetic

[[noreturn]] void unsupported(const char* op, const Value& l, const Value& r) {
  raise("unsupported operand type(s) for ", op, ": '", type_name(l), "' and '", type_name(r), "'");
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.kind == K::Str) {
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::str(std::move(out));
  }
  ValueList out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return Value::list_of(std::move(out), seq.kind == K::Tuple);
}

Value int_or_overflow(bool overflow, int64_t v) {
  if (overflow) raise("integer overflow (Python would switch to a big integer)");
  return Value::integer(v);
}

}  // namespace

// ---------------------------------------------------------------- public (detail) API

bool has_filter(const std::string& name) { return filters().count(name) != 0; }
bool has_test(const std::string& name) { return tests().count(name) != 0; }

Value apply_filter(Interp& in, const std::string& name, const Value& v, const Args& args) {
  auto it = filters().find(name);
  if (it == filters().end()) raise("no filter named '", name, "'");
  return it->second(in, v, args);
}

bool apply_test(Interp& in, const std::string& name, const Value& v, const Args& args) {
  auto it = tests().find(name);
  if (it == tests().end()) raise("no test named '", name, "'");
  return it->second(in, v, args);
}

// Sandboxed getattr: Python attributes (methods) first, then the item of that name.
Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case K::Undefined:
      fail_undefined(obj);
    case K::Str:
      if (in(kStrMethods, name)) return bound_method(obj, name);
      return Value::undefined("'str object' has no attribute '" + name + "'");
    case K::List:
    case K::Tuple: {
      std::string tn = obj.kind == K::List ? "list" : "tuple";
      if (in(kListMethods, name) && (obj.kind == K::List || name != "copy")) return bound_method(obj, name);
      if (obj.kind == K::List && in(kListUnsafe, name))
        return Value::undefined("access to attribute '" + name + "' of 'list' object is unsafe.");
      return Value::undefined("'" + tn + " object' has no attribute '" + name + "'");
    }
    case K::Dict:
      if (in(kDictMethods, name)) return bound_method(obj, name);
      if (in(kDictUnsafe, name))
        return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.");
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    case K::Object:
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
      return Value::undefined("'" + obj.s + " object' has no attribute '" + name + "'");
    case K::None:
      return Value::undefined("'None' has no attribute '" + name + "'");
    default:
      return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
  }
}

// Sandboxed getitem: the item first, then (for string keys) the attribute of that name.
Value get_item(const Value& obj, const Value& key) {
  auto missing = [&]() {
    if (key.kind == K::Str) return get_attr(obj, key.s);
    std::string owner = obj.kind == K::None ? "None" : type_name(obj) + " object";
    return Value::undefined(owner + " has no element " + repr(key));
  };
  switch (obj.kind) {
    case K::Undefined:
      fail_undefined(obj);
    case K::Dict:
      if (const Value* v = obj.dict->find(key)) return *v;
      return missing();
    case K::List:
    case K::Tuple:
    case K::Str: {
      if (!is_int(key) || obj.generator) return missing();
      int64_t idx = as_int(key);
      if (obj.kind == K::Str) {
        std::u32string u = utf8_decode(obj.s);
        int64_t n = static_cast<int64_t>(u.size());
        if (idx < 0) idx += n;
        if (idx < 0 || idx >= n) return missing();
        std::string ch;
        utf8_append(ch, u[idx]);
        return Value::str(std::move(ch));
      }
      int64_t n = static_cast<int64_t>(obj.list->size());
      if (idx < 0) idx += n;
      if (idx < 0 || idx >= n) return missing();
      return (*obj.list)[idx];
    }
    default:
      return missing();
  }
}

Value slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) fail_undefined(obj);
  for (const Value* v : {&start_v, &stop_v, &step_v})
    if (v->kind != K::None && !is_int(*v)) raise("slice indices must be integers or None");
  if (obj.kind != K::Str && !(obj.is_seq() && !obj.generator))
    return Value::undefined("'" + type_name(obj) + " object' is not subscriptable by a slice");
  int64_t step = step_v.kind == K::None ? 1 : as_int(step_v);
  if (step == 0) raise("slice step cannot be zero");
  std::u32string u;
  int64_t n;
  if (obj.kind == K::Str) {
    u = utf8_decode(obj.s);
    n = static_cast<int64_t>(u.size());
  } else {
    n = static_cast<int64_t>(obj.list->size());
  }
  auto adjust = [&](const Value& v, int64_t def) {
    if (v.kind == K::None) return def;
    int64_t x = as_int(v);
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t start = adjust(start_v, step < 0 ? n - 1 : 0), stop = adjust(stop_v, step < 0 ? -1 : n);
  std::vector<int64_t> idx;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) idx.push_back(k);
  if (obj.kind == K::Str) {
    std::u32string out;
    for (int64_t k : idx) out += u[k];
    return Value::str(utf8_encode(out));
  }
  ValueList out;
  for (int64_t k : idx) out.push_back((*obj.list)[k]);
  return Value::list_of(std::move(out), obj.kind == K::Tuple);
}

Value binary_op(const std::string& op, const Value& l, const Value& r) {
  if (l.is_undefined()) fail_undefined(l);
  if (r.is_undefined()) fail_undefined(r);
  const bool nums = l.is_number() && r.is_number();
  const bool ints = nums && is_int(l) && is_int(r);
  int64_t res = 0;
  if (op == "+") {
    if (ints) {
      bool ovf = __builtin_add_overflow(as_int(l), as_int(r), &res);
      return int_or_overflow(ovf, res);
    }
    if (nums) return Value::real(as_double(l) + as_double(r));
    if (l.kind == K::Str && r.kind == K::Str) return Value::str(l.s + r.s);
    if (l.is_seq() && l.kind == r.kind && !l.generator && !r.generator) {
      ValueList out = *l.list;
      out.insert(out.end(), r.list->begin(), r.list->end());
      return Value::list_of(std::move(out), l.kind == K::Tuple);
    }
    if (l.kind == K::Str || l.is_seq())
      raise("can only concatenate ", type_name(l), " (not \"", type_name(r), "\") to ", type_name(l));
    unsupported("+", l, r);
  }
  if (op == "-") {
    if (ints) {
      bool ovf = __builtin_sub_overflow(as_int(l), as_int(r), &res);
      return int_or_overflow(ovf, res);
    }
    if (nums) return Value::real(as_double(l) - as_double(r));
    unsupported("-", l, r);
  }
  if (op == "*") {
    if (ints) {
      bool ovf = __builtin_mul_overflow(as_int(l), as_int(r), &res);
      return int_or_overflow(ovf, res);
    }
    if (nums) return Value::real(as_double(l) * as_double(r));
    if ((l.kind == K::Str || (l.is_seq() && !l.generator)) && is_int(r)) return repeat(l, as_int(r));
    if ((r.kind == K::Str || (r.is_seq() && !r.generator)) && is_int(l)) return repeat(r, as_int(l));
    if (l.kind == K::Str || l.is_seq()) raise("can't multiply sequence by non-int of type '", type_name(r), "'");
    unsupported("*", l, r);
  }
  if (op == "/") {
    if (!nums) unsupported("/", l, r);
    if (as_double(r) == 0) raise("division by zero");
    return Value::real(as_double(l) / as_double(r));
  }
  if (op == "//" || op == "%") {
    if (op == "%" && l.kind == K::Str) return Value::str(percent_format(l.s, r));
    if (!nums) unsupported(op.c_str(), l, r);
    if (ints) {
      int64_t a = as_int(l), b = as_int(r);
      if (b == 0) raise("integer division or modulo by zero");
      int64_t q = a / b, m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {
        --q;
        m += b;
      }
      return Value::integer(op == "//" ? q : m);
    }
    double a = as_double(l), b = as_double(r);
    if (b == 0) raise(op == "//" ? "float floor division by zero" : "float modulo");
    // CPython's float_divmod.
    double m = std::fmod(a, b), div = (a - m) / b;
    if (m != 0) {
      if ((b < 0) != (m < 0)) {
        m += b;
        div -= 1.0;
      }
    } else {
      m = std::copysign(0.0, b);
    }
    if (op == "%") return Value::real(m);
    double fd;
    if (div != 0) {
      fd = std::floor(div);
      if (div - fd > 0.5) fd += 1.0;
    } else {
      fd = std::copysign(0.0, a / b);
    }
    return Value::real(fd);
  }
  if (op == "**") {
    if (!nums) unsupported("** or pow()", l, r);
    if (ints && as_int(r) >= 0) {
      int64_t base = as_int(l), e = as_int(r), acc = 1;
      bool ovf = false;
      while (e-- > 0) ovf |= __builtin_mul_overflow(acc, base, &acc);
      return int_or_overflow(ovf, acc);
    }
    if (as_double(l) == 0 && as_double(r) < 0) raise("0.0 cannot be raised to a negative power");
    return Value::real(std::pow(as_double(l), as_double(r)));
  }
  raise("unknown operator ", op);
}

void add_globals(ValueDict& g) {
  auto put = [&](const char* name, NativeFn f) { g.set(Value::str(name), Value::func(name, std::move(f))); };
  put("raise_exception", [](Interp&, Args& a) -> Value {
    auto b = a.bind("raise_exception", {"message"});
    raise("raise_exception: ", b[0] ? to_str(*b[0]) : "");
  });
  put("strftime_now", [](Interp&, Args& a) {
    auto b = a.bind("strftime_now", {"format"});
    if (!b[0] || b[0]->kind != K::Str) raise("strftime_now() argument must be str");
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::string buf(256 + b[0]->s.size() * 8, '\0');
    size_t n = std::strftime(buf.data(), buf.size(), b[0]->s.c_str(), &tm);
    buf.resize(n);
    return Value::str(std::move(buf));
  });
  put("namespace", [](Interp&, Args& a) {
    auto d = std::make_shared<ValueDict>();
    for (const auto& p : a.pos) {
      if (p.kind != K::Dict) raise("namespace() positional argument must be a mapping");
      for (const auto& kv : p.dict->items) d->set(kv.first, kv.second);
    }
    for (const auto& [k, v] : a.kw) {
      if (!k.empty() && k[0] == '_')
        raise("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '", k, "'");
      d->set(Value::str(k), v);
    }
    return Value::object("Namespace", d);
  });
  put("dict", [](Interp&, Args& a) {
    auto d = std::make_shared<ValueDict>();
    if (a.pos.size() > 1) raise("dict expected at most 1 argument, got ", std::to_string(a.pos.size()));
    if (!a.pos.empty()) {
      const Value& src = a.pos[0];
      if (src.kind == K::Dict) {
        d->items = src.dict->items;
      } else {
        for (const auto& pair : iterate(src)) {
          ValueList kv = iterate(pair);
          if (kv.size() != 2)
            raise("dictionary update sequence element has length ", std::to_string(kv.size()), "; 2 is required");
          d->set(kv[0], kv[1]);
        }
      }
    }
    for (const auto& [k, v] : a.kw) d->set(Value::str(k), v);
    return Value::dict_of(d);
  });
  put("range", [](Interp&, Args& a) {
    if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) raise("range expected 1 to 3 integer arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = need_int(a.pos[0], "range() argument");
    } else {
      start = need_int(a.pos[0], "range() argument");
      stop = need_int(a.pos[1], "range() argument");
      if (a.pos.size() == 3) step = need_int(a.pos[2], "range() argument");
    }
    if (step == 0) raise("range() arg 3 must not be zero");
    ValueList out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= 100000) raise("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      out.push_back(Value::integer(k));
    }
    return Value::list_of(std::move(out));
  });
}

}  // namespace skv::jinja::detail
