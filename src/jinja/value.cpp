// Python semantics for template values: str() / repr() / ==, <, iteration, json.dumps.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja/internal.h"

namespace skv::jinja::detail {

// ---------------------------------------------------------------- containers

const Value* ValueDict::find(const Value& key) const {
  for (const auto& kv : items)
    if (py_eq(kv.first, key)) return &kv.second;
  return nullptr;
}

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first.kind == Value::Kind::Str && kv.first.s == key) return &kv.second;
  return nullptr;
}

void ValueDict::set(Value key, Value value) {
  for (auto& kv : items)
    if (py_eq(kv.first, key)) {
      kv.second = std::move(value);  // Python keeps the original position of a re-set key
      return;
    }
  items.emplace_back(std::move(key), std::move(value));
}

std::vector<std::optional<Value>> Args::bind(const char* fname, std::initializer_list<const char*> params) const {
  std::vector<std::optional<Value>> out(params.size());
  if (pos.size() > params.size())
    raise(fname, "() takes at most ", std::to_string(params.size()), " arguments (", std::to_string(pos.size()),
          " given)");
  for (size_t k = 0; k < pos.size(); ++k) out[k] = pos[k];
  for (const auto& [name, v] : kw) {
    size_t k = 0;
    for (const char* p : params) {
      if (name == p) break;
      ++k;
    }
    if (k == params.size()) raise(fname, "() got an unexpected keyword argument '", name, "'");
    if (out[k]) raise(fname, "() got multiple values for argument '", name, "'");
    out[k] = v;
  }
  return out;
}

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

// Python str.isspace() (also what `\s` matches in jinja's lexer regexes).
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

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

// ---------------------------------------------------------------- str / repr

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "Undefined";
    case Value::Kind::None:
      return "NoneType";
    case Value::Kind::Bool:
      return "bool";
    case Value::Kind::Int:
      return "int";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::Str:
      return "str";
    case Value::Kind::List:
      return v.generator ? "generator" : "list";
    case Value::Kind::Tuple:
      return "tuple";
    case Value::Kind::Dict:
      return "dict";
    case Value::Kind::Object:
      return v.s;
    case Value::Kind::Func:
      return "function";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return false;
    case Value::Kind::Bool:
      return v.b;
    case Value::Kind::Int:
      return v.i != 0;
    case Value::Kind::Float:
      return v.f != 0;
    case Value::Kind::Str:
      return !v.s.empty();
    case Value::Kind::List:
      return v.generator || !v.list->empty();  // a generator object is truthy
    case Value::Kind::Tuple:
      return !v.list->empty();
    case Value::Kind::Dict:
      return !v.dict->items.empty();
    default:
      return true;
  }
}

// Python's float repr: the shortest digits that round-trip, positional for 1e-4 <= |x| < 1e16.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string s(buf, r.ptr);
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  size_t epos = s.find('e');
  int exp = std::stoi(s.substr(epos + 1));
  std::string digits;
  for (size_t k = 0; k < epos; ++k)
    if (s[k] != '.') digits += s[k];
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      ip.append(exp + 1 - ip.size(), '0');
      std::string fp = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      out = ip + "." + fp;
    } else {
      out = "0." + std::string(-exp - 1, '0') + digits;
    }
    return sign + out;
  }
  std::string m = digits.substr(0, 1);
  if (digits.size() > 1) m += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return sign + m + eb;
}

static bool py_printable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F))
    return false;
  if (c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xF8FF) || (c >= 0xFFF0 && c <= 0xFFFB)) return false;
  return c <= 0x10FFFF;
}

static std::string str_repr(const std::string& s) {
  bool has_sq = s.find('\'') != std::string::npos, has_dq = s.find('"') != std::string::npos;
  char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (py_printable(c)) {
      utf8_append(out, c);
    } else {
      char b[16];
      if (c < 0x100)
        std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000)
        std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(b, sizeof b, "\\U%08x", static_cast<unsigned>(c));
      out += b;
    }
  }
  return out + q;
}

std::string repr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "Undefined";
    case Value::Kind::Str:
      return str_repr(v.s);
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      if (v.generator) return "<generator object>";
      bool tup = v.kind == Value::Kind::Tuple;
      std::string out = tup ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.list)[k]);
      }
      if (tup && v.list->size() == 1) out += ",";
      return out + (tup ? ")" : "]");
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += repr(k) + ": " + repr(x);
      }
      return out + "}";
    }
    case Value::Kind::Object: {
      Value d = Value::dict_of(v.dict);
      return "<" + v.s + " " + repr(d) + ">";
    }
    case Value::Kind::Func:
      return "<function " + v.s + ">";
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "";
    case Value::Kind::None:
      return "None";
    case Value::Kind::Bool:
      return v.b ? "True" : "False";
    case Value::Kind::Int:
      return std::to_string(v.i);
    case Value::Kind::Float:
      return float_repr(v.f);
    case Value::Kind::Str:
      return v.s;
    default:
      return repr(v);
  }
}

// ---------------------------------------------------------------- comparison

bool py_eq(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.kind == K::Float || b.kind == K::Float) {
      double x = a.kind == K::Float ? a.f : a.kind == K::Int ? static_cast<double>(a.i) : a.b;
      double y = b.kind == K::Float ? b.f : b.kind == K::Int ? static_cast<double>(b.i) : b.b;
      return x == y;
    }
    int64_t x = a.kind == K::Int ? a.i : a.b, y = b.kind == K::Int ? b.i : b.b;
    return x == y;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined:
    case K::None:
      return true;
    case K::Str:
      return a.s == b.s;
    case K::List:
    case K::Tuple: {
      if (a.list == b.list) return true;
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!py_eq((*a.list)[k], (*b.list)[k])) return false;
      return true;
    }
    case K::Dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, x] : a.dict->items) {
        const Value* y = b.dict->find(k);
        if (!y || !py_eq(x, *y)) return false;
      }
      return true;
    }
    case K::Object:
      return a.dict == b.dict;
    case K::Func:
      return a.fn == b.fn;
    default:
      return false;
  }
}

[[noreturn]] void fail_undefined(const Value& v) { raise(v.s.empty() ? "value is undefined" : v.s); }

bool py_lt(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind != K::Float && b.kind != K::Float)
      return (a.kind == K::Int ? a.i : a.b) < (b.kind == K::Int ? b.i : b.b);
    double x = a.kind == K::Float ? a.f : a.kind == K::Int ? static_cast<double>(a.i) : a.b;
    double y = b.kind == K::Float ? b.f : b.kind == K::Int ? static_cast<double>(b.i) : b.b;
    return x < y;
  }
  if (a.kind == K::Str && b.kind == K::Str) return a.s < b.s;  // UTF-8 byte order == code point order
  if (a.kind == b.kind && a.is_seq() && !a.generator && !b.generator) {
    const auto &x = *a.list, &y = *b.list;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k)
      if (!py_eq(x[k], y[k])) return py_lt(x[k], y[k]);
    return x.size() < y.size();
  }
  raise("'<' not supported between instances of '", type_name(a), "' and '", type_name(b), "'");
}

// ---------------------------------------------------------------- iteration

ValueList iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return {};  // jinja's Undefined iterates as empty
    case Value::Kind::List:
    case Value::Kind::Tuple:
      return *v.list;
    case Value::Kind::Dict: {
      ValueList out;
      for (const auto& kv : v.dict->items) out.push_back(kv.first);
      return out;
    }
    case Value::Kind::Str: {
      ValueList out;
      for (char32_t c : utf8_decode(v.s)) {
        std::string ch;
        utf8_append(ch, c);
        out.push_back(Value::str(std::move(ch)));
      }
      return out;
    }
    default:
      raise("'", type_name(v), "' object is not iterable");
  }
}

int64_t py_len(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return 0;
    case Value::Kind::Str:
      return static_cast<int64_t>(utf8_decode(v.s).size());
    case Value::Kind::List:
    case Value::Kind::Tuple:
      if (v.generator) raise("object of type 'generator' has no len()");
      return static_cast<int64_t>(v.list->size());
    case Value::Kind::Dict:
      return static_cast<int64_t>(v.dict->items.size());
    default:
      raise("object of type '", type_name(v), "' has no len()");
  }
}

// ---------------------------------------------------------------- JSON

static void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {
        char b[16];
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          if (c >= 0x10000) {  // surrogate pair, like Python's json with ensure_ascii
            char32_t u = c - 0x10000;
            std::snprintf(b, sizeof b, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 | (u >> 10)),
                          static_cast<unsigned>(0xDC00 | (u & 0x3FF)));
          } else {
            std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
          }
          out += b;
        } else {
          utf8_append(out, c);
        }
      }
    }
  }
  out += '"';
}

static std::string json_scalar_key(const Value& k) {
  // json.dumps converts non-string keys: True -> "true", None -> "null", 1.5 -> "1.5".
  switch (k.kind) {
    case Value::Kind::Str:
      return k.s;
    case Value::Kind::Bool:
      return k.b ? "true" : "false";
    case Value::Kind::None:
      return "null";
    case Value::Kind::Int:
      return std::to_string(k.i);
    case Value::Kind::Float:
      return float_repr(k.f);
    default:
      raise("keys must be str, int, float, bool or None, not ", type_name(k));
  }
}

static void json_dump(std::string& out, const Value& v, const JsonOptions& o, int level) {
  std::string item_sep = o.separators ? o.separators->first : (o.indent ? "," : ", ");
  std::string key_sep = o.separators ? o.separators->second : ": ";
  auto newline = [&](int lvl) {
    if (!o.indent) return;
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += *o.indent;
  };
  switch (v.kind) {
    case Value::Kind::None:
      out += "null";
      return;
    case Value::Kind::Bool:
      out += v.b ? "true" : "false";
      return;
    case Value::Kind::Int:
      out += std::to_string(v.i);
      return;
    case Value::Kind::Float:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f > 0 ? "Infinity" : "-Infinity";
      else
        out += float_repr(v.f);
      return;
    case Value::Kind::Str:
      json_str(out, v.s, o.ensure_ascii);
      return;
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      if (v.generator) raise("Object of type generator is not JSON serializable");
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_dump(out, (*v.list)[k], o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> kvs;
      for (const auto& [k, x] : v.dict->items) kvs.emplace_back(json_scalar_key(k), &x);
      if (o.sort_keys)
        std::stable_sort(kvs.begin(), kvs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t k = 0; k < kvs.size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_str(out, kvs[k].first, o.ensure_ascii);
        out += key_sep;
        json_dump(out, *kvs[k].second, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default:
      raise("Object of type ", type_name(v), " is not JSON serializable");
  }
}

std::string to_json(const Value& v, const JsonOptions& o) {
  std::string out;
  json_dump(out, v, o, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::real(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::real(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list_of(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<ValueDict>();
      for (auto it = j.begin(); it != j.end(); ++it) d->items.emplace_back(Value::str(it.key()), from_json(it.value()));
      return Value::dict_of(std::move(d));
    }
    default:
      raise("unsupported JSON value in template context");
  }
}

}  // namespace skv::jinja::detail
