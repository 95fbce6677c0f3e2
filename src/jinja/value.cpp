// Python semantics for template values: str() / repr() / ==, <, iteration, subscripts.
#include "jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja/builtins.h"
#include "jinja/pystring.h"

namespace skv::jinja::detail {

using K = Value::Kind;

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
    if (k == params.size()) raise(fname, "() got an unexpected keyword argument ", quote_bounded(name));
    if (out[k]) raise(fname, "() got multiple values for argument ", quote_bounded(name));
    out[k] = v;
  }
  return out;
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
  raise("'<' not supported between instances of ", quote_bounded(type_name(a)), " and ", quote_bounded(type_name(b)));
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
      raise(quote_bounded(type_name(v)), " object is not iterable");
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
      raise("object of type ", quote_bounded(type_name(v)), " has no len()");
  }
}

// ---------------------------------------------------------------- subscripts

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
  if (obj.kind != K::Str && !(obj.is_seq() && !obj.generator)) {
    std::string msg = "'";  // appended to: GCC 12 misreports "'" + type_name(...) (-Wrestrict)
    msg += type_name(obj) + " object' is not subscriptable by a slice";
    return Value::undefined(msg);
  }
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

}  // namespace skv::jinja::detail
