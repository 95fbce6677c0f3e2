// jinja2's builtin tests (`x is defined`, `x is divisibleby 3`) and their aliases (`==`, `eq`, `equalto`).
#include <algorithm>
#include <map>

#include "jinja/builtins.h"
#include "jinja/pystring.h"

namespace skv::jinja::detail {

namespace {

using K = Value::Kind;

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

}  // namespace

bool has_test(const std::string& name) { return tests().count(name) != 0; }

bool apply_test(Interp& in, const std::string& name, const Value& v, const Args& args) {
  auto it = tests().find(name);
  if (it == tests().end()) raise("no test named ", quote_bounded(name));
  return it->second(in, v, args);
}

}  // namespace skv::jinja::detail
