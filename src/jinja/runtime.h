#pragma once
// The tree-walking interpreter that renders a parsed template.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "jinja/ast.h"
#include "jinja/value.h"

namespace skv::jinja::detail {

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
