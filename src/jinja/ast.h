#pragma once
// The parsed template: expressions and statements, with the line of each for error messages.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace skv::jinja::detail {

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

}  // namespace skv::jinja::detail
