// Mirrors jinja2's parser.py closely, because chat templates depend on its operator precedence
// quirks (e.g. `-2**2` is 4, filters bind tighter than `+`).
#include "jinja/parser.h"

#include <algorithm>

#include "core/error.h"
#include "jinja/builtins.h"

namespace skv::jinja::detail {

namespace {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  Body parse_template() {
    Body b = subparse({});
    if (cur().t != Token::T::Eof) fail(cur().line, "unexpected tag '" + cur().s + "'");
    return b;
  }

 private:
  const std::vector<Token>& t_;
  size_t p_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;  // recursion depth, bounded so a hostile template cannot overflow the stack
  std::vector<std::pair<std::string, int>> open_;  // open block tags, for end-of-template errors

  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.nesting_ > 400) p.fail(p.cur().line, "template nested too deeply");
    }
    ~Nest() { --p.nesting_; }
  };

  using T = Token::T;
  const Token& cur() const { return t_[p_]; }
  const Token& look(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[p_];
    if (p_ + 1 < t_.size()) ++p_;
    return t;
  }
  bool is_op(const char* op) const { return cur().t == T::Op && cur().s == op; }
  bool is_name(const char* n) const { return cur().t == T::Name && cur().s == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail(int line, const std::string& msg) const { skv::fail("jinja: line ", line, ": ", msg); }

  static std::string describe(const Token& t) {
    switch (t.t) {
      case T::Data:
        return "template data";
      case T::VarBegin:
        return "'{{'";
      case T::VarEnd:
        return "end of print statement";
      case T::BlockBegin:
        return "'{%'";
      case T::BlockEnd:
        return "end of statement block";
      case T::Name:
        return "'" + t.s + "'";
      case T::Str:
        return "string literal";
      case T::Int:
      case T::Float:
        return "number";
      case T::Op:
        return "'" + t.s + "'";
      case T::Eof:
        return "end of template";
    }
    return "token";
  }
  [[noreturn]] void unexpected(const std::string& expected) const {
    if (cur().t == T::Eof) eof_error(expected);
    fail(cur().line, "expected " + expected + ", got " + describe(cur()));
  }
  [[noreturn]] void eof_error(const std::string& expected) const {
    std::string msg = "unexpected end of template, expected " + expected;
    if (!open_.empty())
      msg += " (the innermost open block is '" + open_.back().first + "' from line " +
             std::to_string(open_.back().second) + ")";
    fail(cur().line, msg);
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected(std::string("'") + op + "'");
  }
  void expect_block_end() {
    if (cur().t != T::BlockEnd) unexpected("end of statement block");
    next();
  }
  std::string expect_name() {
    if (cur().t != T::Name) unexpected("a name");
    return next().s;
  }

  ExprP node(Expr::K k, int line) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->line = line;
    return e;
  }

  // ---------------------------------------------------------------- statements

  // Parses until `{% <one of end> ...`; leaves the stream on the end tag's name.
  Body subparse(const std::vector<std::string>& end) {
    Body body;
    while (cur().t != T::Eof) {
      const Token& t = cur();
      if (t.t == T::Data) {
        auto n = std::make_unique<Node>();
        n->k = Node::K::Text;
        n->line = t.line;
        n->text = t.s;
        body.push_back(std::move(n));
        next();
      } else if (t.t == T::VarBegin) {
        next();
        auto n = std::make_unique<Node>();
        n->k = Node::K::Output;
        n->line = t.line;
        n->expr = parse_tuple(false, true, {}, false);
        if (cur().t != T::VarEnd) unexpected("end of print statement");
        next();
        body.push_back(std::move(n));
      } else if (t.t == T::BlockBegin) {
        next();
        if (cur().t == T::Name && std::find(end.begin(), end.end(), cur().s) != end.end()) return body;
        body.push_back(parse_statement());
        expect_block_end();
      } else {
        fail(t.line, "unexpected " + describe(t));
      }
    }
    return body;
  }

  // `{% tag ... %}` body `{% end_tag %}`: expects the current block's end, parses the body.
  Body parse_statements(const std::vector<std::string>& end, bool drop_needle) {
    skip_op(":");
    expect_block_end();
    Body b = subparse(end);
    if (cur().t == T::Eof) {
      std::string exp;
      for (size_t k = 0; k < end.size(); ++k) exp += (k ? k + 1 == end.size() ? " or '" : ", '" : "'") + end[k] + "'";
      eof_error(exp);
    }
    if (drop_needle) next();
    return b;
  }

  NodeP parse_statement() {
    Nest nest(*this);
    const Token& t = cur();
    if (t.t != T::Name) fail(t.line, "tag name expected");
    std::string tag = t.s;
    int line = t.line;
    auto n = std::make_unique<Node>();
    n->line = line;
    open_.emplace_back(tag, line);
    if (tag == "if") {
      next();
      n->k = Node::K::If;
      while (true) {
        ExprP test = parse_tuple(false, false, {}, false);
        Body b = parse_statements({"elif", "else", "endif"}, false);
        n->branches.emplace_back(std::move(test), std::move(b));
        std::string which = next().s;
        if (which == "elif") continue;
        if (which == "else") n->else_body = parse_statements({"endif"}, true);
        break;
      }
    } else if (tag == "for") {
      next();
      n->k = Node::K::For;
      n->targets = parse_assign_target({"in"});
      if (!skip_name("in")) unexpected("'in'");
      n->expr = parse_tuple(false, false, {"recursive"}, false);
      if (skip_name("if")) n->cond = parse_expression(true);
      if (is_name("recursive")) fail(cur().line, "recursive for loops are not supported");
      ++loop_depth_;
      n->body = parse_statements({"endfor", "else"}, false);
      --loop_depth_;
      if (next().s == "else") n->else_body = parse_statements({"endfor"}, true);
    } else if (tag == "set") {
      next();
      if (cur().t == T::Name && look().t == T::Op && look().s == ".") {
        n->targets = {next().s};
        next();
        n->ns_attr = expect_name();
      } else {
        n->targets = parse_assign_target({});
      }
      if (skip_op("=")) {
        n->k = Node::K::Set;
        n->expr = parse_tuple(false, true, {}, false);
      } else {
        if (!n->ns_attr.empty()) unexpected("'='");
        n->k = Node::K::SetBlock;
        if (is_op("|")) n->expr = parse_filter(nullptr);
        n->body = parse_statements({"endset"}, true);
      }
    } else if (tag == "macro") {
      next();
      n->k = Node::K::Macro;
      n->text = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        if (!n->params.empty()) expect_op(",");
        if (is_op(")")) break;
        std::string pname = expect_name();
        ExprP def;
        if (skip_op("=")) def = parse_expression(true);
        n->params.emplace_back(pname, std::move(def));
      }
      next();
      int saved = loop_depth_;
      loop_depth_ = 0;
      n->body = parse_statements({"endmacro"}, true);
      loop_depth_ = saved;
    } else if (tag == "break" || tag == "continue") {
      next();
      if (loop_depth_ == 0) fail(line, "'" + tag + "' outside of a for loop");
      n->k = tag == "break" ? Node::K::Break : Node::K::Continue;
    } else if (tag == "filter") {
      next();
      n->k = Node::K::FilterBlock;
      n->expr = parse_filter(nullptr, true);
      n->body = parse_statements({"endfilter"}, true);
    } else if (tag == "with") {
      next();
      n->k = Node::K::Scope;
      while (cur().t != T::BlockEnd) {
        if (!n->params.empty()) expect_op(",");
        std::string name = expect_name();
        expect_op("=");
        n->params.emplace_back(name, parse_expression(true));
      }
      n->body = parse_statements({"endwith"}, true);
    } else if (tag == "generation") {  // transformers' AssistantTracker extension: renders its body
      next();
      n->k = Node::K::Scope;
      n->body = parse_statements({"endgeneration"}, true);
    } else if (tag == "block" || tag == "extends" || tag == "include" || tag == "import" || tag == "from" ||
               tag == "call" || tag == "autoescape" || tag == "print") {
      fail(line, "the '" + tag + "' tag is not supported");
    } else {
      std::string msg = "encountered unknown tag '" + tag + "'";
      if (open_.size() > 1) {
        msg += " (the innermost open block is '" + open_[open_.size() - 2].first + "' from line " +
               std::to_string(open_[open_.size() - 2].second) + ")";
      }
      fail(line, msg);
    }
    open_.pop_back();
    return n;
  }

  // Names, `a, b`, `(a, b)`: what for loops and set can assign to.
  std::vector<std::string> parse_assign_target(const std::vector<std::string>& extra_end) {
    std::vector<std::string> names;
    bool paren = skip_op("(");
    while (true) {
      if (cur().t != T::Name) unexpected("a name to assign to");
      std::string n = next().s;
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
        fail(cur().line, "can't assign to constant '" + n + "'");
      names.push_back(n);
      if (!skip_op(",")) break;
      if ((paren && is_op(")")) || cur().t == T::BlockEnd ||
          (cur().t == T::Name && std::find(extra_end.begin(), extra_end.end(), cur().s) != extra_end.end()))
        break;
    }
    if (paren) expect_op(")");
    return names;
  }

  // ---------------------------------------------------------------- expressions

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().t == T::VarEnd || cur().t == T::BlockEnd || is_op(")")) return true;
    return cur().t == T::Name && std::find(extra_end.begin(), extra_end.end(), cur().s) != extra_end.end();
  }

  ExprP parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                    bool explicit_parens) {
    int line = cur().line;
    std::vector<ExprP> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) unexpected("an expression");
    }
    auto e = node(Expr::K::Tuple, line);
    e->a = std::move(args);
    return e;
  }

  ExprP parse_expression(bool with_condexpr) {
    Nest nest(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprP parse_condexpr() {
    int line = cur().line;
    ExprP e1 = parse_or();
    while (skip_name("if")) {
      ExprP test = parse_or();
      ExprP e3;
      if (skip_name("else")) e3 = parse_condexpr();
      auto c = node(Expr::K::Cond, line);
      c->a.push_back(std::move(test));
      c->a.push_back(std::move(e1));
      c->a.push_back(std::move(e3));
      e1 = std::move(c);
    }
    return e1;
  }

  ExprP binary(Expr::K k, int line, ExprP l, ExprP r, std::string op = {}) {
    auto e = node(k, line);
    e->name = std::move(op);
    e->a.push_back(std::move(l));
    e->a.push_back(std::move(r));
    return e;
  }

  ExprP parse_or() {
    int line = cur().line;
    ExprP l = parse_and();
    while (skip_name("or")) l = binary(Expr::K::Or, line, std::move(l), parse_and());
    return l;
  }
  ExprP parse_and() {
    int line = cur().line;
    ExprP l = parse_not();
    while (skip_name("and")) l = binary(Expr::K::And, line, std::move(l), parse_not());
    return l;
  }
  ExprP parse_not() {
    Nest nest(*this);
    if (is_name("not")) {
      int line = next().line;
      auto e = node(Expr::K::Not, line);
      e->a.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    int line = cur().line;
    ExprP first = parse_math1();
    ExprP cmp;
    while (true) {
      std::string op;
      if (cur().t == T::Op && (cur().s == "==" || cur().s == "!=" || cur().s == "<" || cur().s == "<=" ||
                               cur().s == ">" || cur().s == ">=")) {
        op = next().s;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().t == T::Name && look().s == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(Expr::K::Cmp, line);
        cmp->a.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->a.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprP parse_math1() {
    int line = cur().line;
    ExprP l = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().s;
      l = binary(Expr::K::Bin, line, std::move(l), parse_concat(), op);
    }
    return l;
  }
  ExprP parse_concat() {
    int line = cur().line;
    ExprP first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(Expr::K::Concat, line);
    e->a.push_back(std::move(first));
    while (skip_op("~")) e->a.push_back(parse_math2());
    return e;
  }
  ExprP parse_math2() {
    int line = cur().line;
    ExprP l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().s;
      l = binary(Expr::K::Bin, line, std::move(l), parse_pow(), op);
    }
    return l;
  }
  ExprP parse_pow() {
    int line = cur().line;
    ExprP l = parse_unary(true);
    while (skip_op("**")) l = binary(Expr::K::Bin, line, std::move(l), parse_unary(true), "**");
    return l;
  }
  ExprP parse_unary(bool with_filter) {
    Nest nest(*this);
    int line = cur().line;
    ExprP e;
    if (is_op("-") || is_op("+")) {
      bool neg = next().s == "-";
      e = node(neg ? Expr::K::Neg : Expr::K::Pos, line);
      e->a.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    const Token& t = cur();
    auto c = node(Expr::K::Const, t.line);
    switch (t.t) {
      case T::Name:
        next();
        if (t.s == "true" || t.s == "True")
          c->value = Value::boolean(true);
        else if (t.s == "false" || t.s == "False")
          c->value = Value::boolean(false);
        else if (t.s == "none" || t.s == "None")
          c->value = Value::none();
        else {
          c->k = Expr::K::Name;
          c->name = t.s;
        }
        return c;
      case T::Str: {
        std::string s;
        while (cur().t == T::Str) s += next().s;  // adjacent literals concatenate
        c->value = Value::str(std::move(s));
        return c;
      }
      case T::Int:
        c->value = Value::integer(next().i);
        return c;
      case T::Float:
        c->value = Value::real(next().f);
        return c;
      case T::Op:
        if (t.s == "(") {
          next();
          ExprP e = parse_tuple(false, true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.s == "[") return parse_list();
        if (t.s == "{") return parse_dict();
        break;
      default:
        break;
    }
    if (t.t == T::Eof) eof_error("an expression");
    fail(t.line, "unexpected " + describe(t));
  }

  ExprP parse_list() {
    auto e = node(Expr::K::List, next().line);
    while (!is_op("]")) {
      if (!e->a.empty()) expect_op(",");
      if (is_op("]")) break;
      e->a.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }
  ExprP parse_dict() {
    auto e = node(Expr::K::Dict, next().line);
    while (!is_op("}")) {
      if (!e->a.empty()) expect_op(",");
      if (is_op("}")) break;
      e->a.push_back(parse_expression(true));
      expect_op(":");
      e->a.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprP parse_postfix(ExprP e) {
    while (true) {
      if (is_op(".") || is_op("["))
        e = parse_subscript(std::move(e));
      else if (is_op("("))
        e = parse_call(std::move(e));
      else
        break;
    }
    return e;
  }
  ExprP parse_filter_expr(ExprP e) {
    while (true) {
      if (is_op("|"))
        e = parse_filter(std::move(e));
      else if (is_name("is"))
        e = parse_test(std::move(e));
      else if (is_op("("))
        e = parse_call(std::move(e));
      else
        break;
    }
    return e;
  }

  ExprP parse_subscript(ExprP obj) {
    const Token& t = next();
    if (t.s == ".") {
      const Token& a = next();
      if (a.t == T::Name) {
        auto e = node(Expr::K::Attr, t.line);
        e->name = a.s;
        e->a.push_back(std::move(obj));
        return e;
      }
      if (a.t != T::Int) fail(a.line, "expected name or number after '.'");
      auto e = node(Expr::K::Item, t.line);
      e->a.push_back(std::move(obj));
      auto k = node(Expr::K::Const, a.line);
      k->value = Value::integer(a.i);
      e->a.push_back(std::move(k));
      return e;
    }
    std::vector<ExprP> args;  // `[`
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = node(Expr::K::Item, t.line);
    e->a.push_back(std::move(obj));
    if (args.size() == 1) {
      e->a.push_back(std::move(args[0]));
    } else {
      auto tup = node(Expr::K::Tuple, t.line);
      tup->a = std::move(args);
      e->a.push_back(std::move(tup));
    }
    return e;
  }

  ExprP parse_subscribed() {
    int line = cur().line;
    ExprP start;
    if (!skip_op(":")) {
      ExprP e = parse_expression(true);
      if (!skip_op(":")) return e;
      start = std::move(e);
    }
    auto s = node(Expr::K::Slice, line);
    s->a.push_back(std::move(start));
    if (is_op(":") || is_op("]") || is_op(","))
      s->a.push_back(nullptr);
    else
      s->a.push_back(parse_expression(true));
    if (skip_op(":") && !is_op("]") && !is_op(","))
      s->a.push_back(parse_expression(true));
    else
      s->a.push_back(nullptr);
    return s;
  }

  // Appends `(args, kw=...)` to e->a / e->kw.
  void parse_call_args(Expr& e) {
    int line = cur().line;
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail(cur().line, "*args / **kwargs in calls are not supported");
      if (cur().t == T::Name && look().t == T::Op && look().s == "=") {
        e.kw.push_back(next().s);
        next();
        e.a.push_back(parse_expression(true));
      } else {
        if (!e.kw.empty()) fail(line, "invalid syntax for function call expression (positional after keyword)");
        e.a.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    next();
  }

  ExprP parse_call(ExprP callee) {
    auto e = node(Expr::K::Call, cur().line);
    e->a.push_back(std::move(callee));
    parse_call_args(*e);
    return e;
  }

  ExprP parse_filter(ExprP subject, bool start_inline = false) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      int line = cur().line;
      std::string name = expect_name();
      while (skip_op(".")) name.append(".").append(expect_name());
      if (!has_filter(name)) fail(line, "no filter named '" + name + "'");
      auto e = node(Expr::K::Filter, line);
      e->name = name;
      e->a.push_back(std::move(subject));
      if (is_op("(")) parse_call_args(*e);
      subject = std::move(e);
    }
    return subject;
  }

  ExprP parse_test(ExprP subject) {
    int line = next().line;  // `is`
    bool negated = skip_name("not");
    std::string name = expect_name();
    while (skip_op(".")) name.append(".").append(expect_name());
    if (!has_test(name)) fail(line, "no test named '" + name + "'");
    auto e = node(Expr::K::Test, line);
    e->name = name;
    e->a.push_back(std::move(subject));
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().t == T::Name || cur().t == T::Str || cur().t == T::Int || cur().t == T::Float || is_op("[") ||
                is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail(cur().line, "you cannot chain multiple tests with is");
      e->a.push_back(parse_postfix(parse_primary()));  // `x is divisibleby 3`, `x is sameas none`
    }
    if (!negated) return e;
    auto n = node(Expr::K::Not, line);
    n->a.push_back(std::move(e));
    return n;
  }
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace skv::jinja::detail
