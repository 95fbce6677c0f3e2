#pragma once
// Internals of the Jinja2 subset (jinja/jinja.h): values, tokens, AST, and the builtin
// filters / tests / methods. Semantics follow jinja2 3.1 running in transformers'
// ImmutableSandboxedEnvironment, i.e. Python semantics for values: `and`/`or` return an
// operand, 1 == 1.0 == true, strings index by code point, dicts keep insertion order, and a
// missing attribute is an Undefined that only fails when used (printing gives "").
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja/jinja.h"

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

// ---- value helpers (value.cpp) ----
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
struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // Python json.dumps indent (an int n becomes n spaces)
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& o);  // Python json.dumps
Value from_json(const nlohmann::ordered_json& j);

// ---- UTF-8 and Python string helpers ----
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
bool py_isspace(char32_t c);
std::string py_strip(std::string_view s, bool left, bool right, const std::optional<std::string>& chars = {});

// ---- attribute access (jinja's sandboxed getattr / getitem) ----
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// ---- builtins (builtins.cpp) ----
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(Interp& in, const std::string& name, const Value& v, const Args& args);
bool apply_test(Interp& in, const std::string& name, const Value& v, const Args& args);
void add_globals(ValueDict& globals);
Value binary_op(const std::string& op, const Value& l, const Value& r);

// ---- lexer / parser (parser.cpp) ----
struct Token {
  enum class T : uint8_t { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, Str, Int, Float, Op, Eof };
  T t;
  int line;
  std::string s;  // data text, name, decoded string literal, operator
  int64_t i = 0;
  double f = 0;
};
std::vector<Token> tokenize(std::string_view source, const Options& opts);

struct Expr;
using ExprP = std::unique_ptr<Expr>;
struct Expr {
  enum class K : uint8_t {
    Const,
    Name,
    List,
    Tuple,
    Dict,
    Attr,
    Item,
    Slice,
    Call,
    Filter,
    Test,
    Not,
    Neg,
    Pos,
    Bin,
    Cmp,
    And,
    Or,
    Cond,
    Concat
  };
  K k;
  int line = 0;
  std::string name;              // Name; Attr attribute; Filter / Test name; Bin operator
  Value value;                   // Const
  std::vector<ExprP> a;          // operands. Call: callee, args. Filter / Test: subject (null in a
                                 // filter block: the body), args. Slice: start, stop, step (nullable)
  std::vector<std::string> kw;   // Call / Filter / Test: names of the trailing keyword args in `a`
  std::vector<std::string> ops;  // Cmp: a[0] ops[0] a[1] ops[1] a[2] ...
};

struct Node;
using NodeP = std::unique_ptr<Node>;
using Body = std::vector<NodeP>;
struct Node {
  enum class K : uint8_t { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, FilterBlock, Scope };
  K k;
  int line = 0;
  std::string text;                              // Text: the data; Macro: its name
  ExprP expr;                                    // Output / Set value / For iterable / FilterBlock & SetBlock filter
  ExprP cond;                                    // For: the `if` filter
  std::vector<std::pair<ExprP, Body>> branches;  // If / elif
  Body body, else_body;
  std::vector<std::string> targets;                   // Set / For / SetBlock names (several: tuple unpacking)
  std::string ns_attr;                                // Set: `set ns.attr = ...` (targets[0] is the namespace)
  std::vector<std::pair<std::string, ExprP>> params;  // Macro params (default may be null); `with` vars
};

Body parse(const std::vector<Token>& tokens);

// ---- interpreter (runtime.cpp) ----
class Interp {
 public:
  explicit Interp(const ValueDict& globals);
  void run(const Body& body, std::string& out);
  Value call(const Value& f, Args& args);
  Value call_macro(const Node& n, Args& args);

 private:
  enum class Flow { Normal, Break, Continue };
  Flow exec(const Body& body, std::string& out);
  Flow exec(const Node& n, std::string& out);
  Value eval(const Expr& e);
  Args eval_args(const Expr& e, size_t first);
  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value v);
  void assign_targets(const std::vector<std::string>& names, const Value& v);
  Value make_macro(const Node& n);

  std::vector<std::vector<std::pair<std::string, Value>>> frames_;  // [0]: globals + context
  size_t base_ = 0;                        // inside a macro: frames below this (except [0]) are invisible
  const Value* filter_subject_ = nullptr;  // body text for `{% filter %}` / `{% set x | f %}`
  int depth_ = 0;                          // macro recursion guard
 public:
  int line = 0;  // line being executed, for error messages
};

}  // namespace skv::jinja::detail
