#pragma once
// Template values with the Python semantics jinja2 3.1 gives them in transformers'
// ImmutableSandboxedEnvironment: `and`/`or` return an operand, 1 == 1.0 == true, strings index
// by code point, dicts keep insertion order, and a missing attribute is an Undefined that only
// fails when used (printing gives "").
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace skv::jinja::detail {

// A runtime failure without a line number; the interpreter adds the line of the statement or
// expression being evaluated and rethrows it as skv::Error.
struct Failure {
  std::string msg;
};
template <class... Args>
[[noreturn]] void raise(Args&&... args) {
  std::string s;
  ((s += args), ...);
  throw Failure{std::move(s)};
}

struct Value;
struct Args;
class Interp;
struct ValueDict;
using ValueList = std::vector<Value>;
using NativeFn = std::function<Value(Interp&, Args&)>;

struct Value {
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, Str, List, Tuple, Dict, Object, Func };
  Kind kind = Kind::Undefined;
  bool generator = false;  // came from select/map/items...: a Python generator, which has no len()
  bool b = false;
  int64_t i = 0;
  double f = 0;
  // Str: the text (UTF-8). Undefined: the error to raise when it is used. Object: its Python type
  // name ("Namespace", "LoopContext"). Func: its name.
  std::string s;
  std::shared_ptr<const ValueList> list;  // List / Tuple (immutable: the sandbox forbids mutation)
  std::shared_ptr<ValueDict> dict;        // Dict (never mutated) / Object attributes (namespace: mutable)
  std::shared_ptr<const NativeFn> fn;     // Func

  static Value undefined(std::string why) {
    Value v;
    v.s = std::move(why);
    return v;
  }
  static Value none() { return make(Kind::None); }
  static Value boolean(bool x) {
    Value v = make(Kind::Bool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = make(Kind::Int);
    v.i = x;
    return v;
  }
  static Value real(double x) {
    Value v = make(Kind::Float);
    v.f = x;
    return v;
  }
  static Value str(std::string x) {
    Value v = make(Kind::Str);
    v.s = std::move(x);
    return v;
  }
  static Value list_of(ValueList items, bool tuple = false, bool generator = false) {
    Value v = make(tuple ? Kind::Tuple : Kind::List);
    v.list = std::make_shared<const ValueList>(std::move(items));
    v.generator = generator;
    return v;
  }
  static Value dict_of(std::shared_ptr<ValueDict> d) {
    Value v = make(Kind::Dict);
    v.dict = std::move(d);
    return v;
  }
  static Value object(std::string type, std::shared_ptr<ValueDict> attrs) {
    Value v = make(Kind::Object);
    v.s = std::move(type);
    v.dict = std::move(attrs);
    return v;
  }
  static Value func(std::string name, NativeFn f) {
    Value v = make(Kind::Func);
    v.s = std::move(name);
    v.fn = std::make_shared<const NativeFn>(std::move(f));
    return v;
  }

  bool is(Kind k) const { return kind == k; }
  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_number() const { return kind == Kind::Bool || kind == Kind::Int || kind == Kind::Float; }
  bool is_seq() const { return kind == Kind::List || kind == Kind::Tuple; }
  const ValueList& items() const { return *list; }

 private:
  static Value make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// Insertion-ordered mapping (Python dict). Linear lookup: chat-template dicts are tiny.
struct ValueDict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// Call arguments: positional then keyword, as written.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Python-style binding to parameter names; throws on unknown / duplicate / surplus arguments.
  // Missing parameters come back as std::nullopt.
  std::vector<std::optional<Value>> bind(const char* fname, std::initializer_list<const char*> params) const;
};

// ---- Python semantics (value.cpp) ----
std::string type_name(const Value& v);
bool truthy(const Value& v);
std::string to_str(const Value& v);  // Python str()
std::string repr(const Value& v);    // Python repr()
std::string float_repr(double d);    // Python repr(float)
bool py_eq(const Value& a, const Value& b);
bool py_lt(const Value& a, const Value& b);  // raises TypeError-like Failure on unorderable types
[[noreturn]] void fail_undefined(const Value& v);
ValueList iterate(const Value& v);  // Python iter(): list items, dict keys, string chars
int64_t py_len(const Value& v);

// ---- subscripts (value.cpp); getattr, which finds methods, is in builtins.h ----
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// ---- binary operators + - * / // % ** (operators.cpp) ----
Value binary_op(const std::string& op, const Value& l, const Value& r);

// ---- numbers: bool is an int, as in Python ----
inline bool is_int(const Value& v) { return v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool; }
inline int64_t as_int(const Value& v) { return v.kind == Value::Kind::Bool ? v.b : v.i; }
inline double as_double(const Value& v) { return v.kind == Value::Kind::Float ? v.f : static_cast<double>(as_int(v)); }
inline int64_t need_int(const Value& v, const char* what) {
  if (!is_int(v)) raise(what, " must be an integer, not ", quote_bounded(type_name(v)));
  return as_int(v);
}

}  // namespace skv::jinja::detail
