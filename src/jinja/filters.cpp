// jinja2's builtin filters, with jinja2 3.1's parameter names: templates pass them by keyword.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "jinja/builtins.h"
#include "jinja/format.h"
#include "jinja/json.h"
#include "jinja/pystring.h"

namespace skv::jinja::detail {

namespace {

using K = Value::Kind;

std::string opt_str(const std::optional<Value>& v, const std::string& def) { return v ? to_str(*v) : def; }

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
  raise("bad operand type for abs(): ", quote_bounded(type_name(v)));
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
    for (size_t k = 1; k < lines.size(); ++k) {  // appended to: GCC 12 misreports "\n" + ... (-Wrestrict)
      rv += '\n';
      if (!lines[k].empty()) rv += ind + lines[k];
    }
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
  return get_py_attr(v, to_str(*a[0]));
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
    if (!has_filter(name)) raise("No filter named ", quote_bounded(name));
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
    if (!has_test(*test)) raise("No test named ", quote_bounded(*test));
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

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) != 0; }

Value apply_filter(Interp& in, const std::string& name, const Value& v, const Args& args) {
  auto it = filters().find(name);
  if (it == filters().end()) raise("no filter named ", quote_bounded(name));
  return it->second(in, v, args);
}

}  // namespace skv::jinja::detail
