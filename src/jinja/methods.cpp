// The str / dict / list methods a template can call, and the sandbox's getattr that finds them.
// Methods that would mutate a dict or list are refused, as ImmutableSandboxedEnvironment does.
#include <algorithm>

#include "jinja/builtins.h"
#include "jinja/format.h"
#include "jinja/pystring.h"

namespace skv::jinja::detail {

namespace {

using K = Value::Kind;

const Value& arg_or(const std::optional<Value>& v, const Value& def) { return v ? *v : def; }

Value str_list(std::vector<std::string> parts) {
  ValueList items;
  for (auto& p : parts) items.push_back(Value::str(std::move(p)));
  return Value::list_of(std::move(items));
}

// Code point index of a byte offset.
int64_t cp_index(const std::string& s, size_t byte_off) {
  int64_t n = 0;
  for (size_t k = 0; k < byte_off && k < s.size(); ++k)
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80) ++n;
  return n;
}

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
  raise("the string method ", quote_bounded(name), " is not supported");
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
        raise("the dict method ", quote_bounded(name), " is not supported");
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
  raise(quote_bounded(type_name(obj)), " object has no method ", quote_bounded(name));
}

}  // namespace

// Sandboxed getattr: Python attributes (methods) first, then the item of that name.
Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case K::Undefined:
      fail_undefined(obj);
    case K::Str:
      if (in(kStrMethods, name)) return bound_method(obj, name);
      return Value::undefined("'str object' has no attribute " + quote_bounded(name));
    case K::List:
    case K::Tuple: {
      std::string tn = obj.kind == K::List ? "list" : "tuple";
      if (in(kListMethods, name) && (obj.kind == K::List || name != "copy")) return bound_method(obj, name);
      if (obj.kind == K::List && in(kListUnsafe, name))
        return Value::undefined("access to attribute " + quote_bounded(name) + " of 'list' object is unsafe.");
      return Value::undefined("'" + tn + " object' has no attribute " + quote_bounded(name));
    }
    case K::Dict:
      if (in(kDictMethods, name)) return bound_method(obj, name);
      if (in(kDictUnsafe, name))
        return Value::undefined("access to attribute " + quote_bounded(name) + " of 'dict' object is unsafe.");
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
      return Value::undefined("'dict object' has no attribute " + quote_bounded(name));
    case K::Object:
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
      return Value::undefined("'" + obj.s + " object' has no attribute " + quote_bounded(name));
    case K::None:
      return Value::undefined("'None' has no attribute " + quote_bounded(name));
    default: {
      std::string msg = "'";  // appended to: GCC 12 misreports "'" + type_name(...) (-Wrestrict)
      msg += type_name(obj) + " object' has no attribute " + quote_bounded(name);
      return Value::undefined(msg);
    }
  }
}

Value get_py_attr(const Value& obj, const std::string& name) {
  if (obj.kind == K::Dict)
    return in(kDictMethods, name) ? bound_method(obj, name)
                                  : Value::undefined("'dict object' has no attribute " + quote_bounded(name));
  return get_attr(obj, name);
}

}  // namespace skv::jinja::detail
