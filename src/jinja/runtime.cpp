#include "jinja/runtime.h"

#include "core/error.h"
#include "jinja/builtins.h"

namespace skv::jinja::detail {

Interp::Interp(const ValueDict& globals) {
  frames_.emplace_back();
  for (const auto& [k, v] : globals.items) frames_[0].emplace_back(k.s, v);
}

void Interp::run(const Body& body, std::string& out) {
  try {
    exec(body, out);
  } catch (const Failure& f) {
    skv::fail("jinja: line ", line, ": ", f.msg);
  }
}

// Scoping as in jinja2: a for-loop iteration, macro call or `with` block opens a frame whose
// assignments vanish when it closes; `if` does not. A macro sees its own frame and the
// template's top level, not its caller's locals.
Value Interp::lookup(const std::string& name) const {
  for (size_t f = frames_.size(); f-- > 0;) {
    if (f > 0 && f < base_) continue;
    for (const auto& kv : frames_[f])
      if (kv.first == name) return kv.second;
  }
  return Value::undefined(quote_bounded(name) + " is undefined");
}

void Interp::assign(const std::string& name, Value v) {
  auto& frame = frames_.back();
  for (auto& kv : frame)
    if (kv.first == name) {
      kv.second = std::move(v);
      return;
    }
  frame.emplace_back(name, std::move(v));
}

void Interp::assign_targets(const std::vector<std::string>& names, const Value& v) {
  if (names.size() == 1) {
    assign(names[0], v);
    return;
  }
  ValueList items = iterate(v);
  if (items.size() > names.size()) raise("too many values to unpack (expected ", std::to_string(names.size()), ")");
  if (items.size() < names.size())
    raise("not enough values to unpack (expected ", std::to_string(names.size()), ", got ",
          std::to_string(items.size()), ")");
  for (size_t k = 0; k < names.size(); ++k) assign(names[k], items[k]);
}

Interp::Flow Interp::exec(const Body& body, std::string& out) {
  for (const auto& n : body) {
    Flow f = exec(*n, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec(const Node& n, std::string& out) {
  line = n.line;
  switch (n.k) {
    case Node::K::Text:
      out += n.text;
      return Flow::Normal;
    case Node::K::Output:
      out += to_str(eval(*n.expr));
      return Flow::Normal;
    case Node::K::If:
      for (const auto& [test, body] : n.branches)
        if (truthy(eval(*test))) return exec(body, out);
      return exec(n.else_body, out);
    case Node::K::For: {
      Value seq = eval(*n.expr);
      ValueList items = iterate(seq);
      if (n.cond) {  // `for x in xs if cond`: filtered before the loop, so loop.length counts kept items
        ValueList kept;
        for (auto& it : items) {
          frames_.emplace_back();
          assign_targets(n.targets, it);
          bool keep = truthy(eval(*n.cond));
          frames_.pop_back();
          if (keep) kept.push_back(std::move(it));
        }
        items = std::move(kept);
      }
      if (items.empty()) {
        frames_.emplace_back();
        Flow f = exec(n.else_body, out);
        frames_.pop_back();
        return f;
      }
      const int64_t len = static_cast<int64_t>(items.size());
      for (int64_t k = 0; k < len; ++k) {
        auto a = std::make_shared<ValueDict>();
        auto put = [&](const char* key, Value v) { a->items.emplace_back(Value::str(key), std::move(v)); };
        put("index0", Value::integer(k));
        put("index", Value::integer(k + 1));
        put("revindex0", Value::integer(len - k - 1));
        put("revindex", Value::integer(len - k));
        put("first", Value::boolean(k == 0));
        put("last", Value::boolean(k == len - 1));
        put("length", Value::integer(len));
        put("depth0", Value::integer(0));
        put("depth", Value::integer(1));
        put("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
        put("nextitem", k + 1 < len ? items[k + 1] : Value::undefined("there is no next item"));
        put("cycle", Value::func("cycle", [k](Interp&, Args& args) {
              if (args.pos.empty()) raise("no items for cycling given");
              return args.pos[k % static_cast<int64_t>(args.pos.size())];
            }));
        frames_.emplace_back();
        assign("loop", Value::object("LoopContext", std::move(a)));
        assign_targets(n.targets, items[k]);
        Flow f = exec(n.body, out);
        frames_.pop_back();
        if (f == Flow::Break) break;
      }
      return Flow::Normal;
    }
    case Node::K::Set: {
      Value v = eval(*n.expr);
      if (n.ns_attr.empty()) {
        assign_targets(n.targets, v);
        return Flow::Normal;
      }
      Value ns = lookup(n.targets[0]);
      if (ns.kind != Value::Kind::Object || ns.s != "Namespace")
        raise("cannot assign attribute on non-namespace object");
      if (n.ns_attr[0] == '_')  // transformers' TemplateNamespace rule
        raise("Chat templates cannot store underscore-prefixed attributes on a namespace, but got ",
              quote_bounded(n.ns_attr));
      ns.dict->set(Value::str(n.ns_attr), std::move(v));
      return Flow::Normal;
    }
    case Node::K::SetBlock:
    case Node::K::FilterBlock: {
      std::string buf;
      frames_.emplace_back();
      exec(n.body, buf);
      frames_.pop_back();
      Value v = Value::str(std::move(buf));
      if (n.expr) {
        const Value* saved = filter_subject_;
        filter_subject_ = &v;
        Value r = eval(*n.expr);
        filter_subject_ = saved;
        v = std::move(r);
      }
      line = n.line;
      if (n.k == Node::K::SetBlock)
        assign_targets(n.targets, v);
      else
        out += to_str(v);
      return Flow::Normal;
    }
    case Node::K::Macro:
      assign(n.text, make_macro(n));
      return Flow::Normal;
    case Node::K::Break:
      return Flow::Break;
    case Node::K::Continue:
      return Flow::Continue;
    case Node::K::Scope: {
      std::vector<Value> vals;
      for (const auto& [name, e] : n.params) vals.push_back(eval(*e));
      frames_.emplace_back();
      for (size_t k = 0; k < vals.size(); ++k) assign(n.params[k].first, vals[k]);
      Flow f = exec(n.body, out);
      frames_.pop_back();
      return f;
    }
  }
  return Flow::Normal;
}

Value Interp::make_macro(const Node& n) {
  const Node* node = &n;
  return Value::func(n.text, [node](Interp& in, Args& args) { return in.call_macro(*node, args); });
}

Value Interp::call_macro(const Node& n, Args& args) {
  if (depth_ >= 200) raise("maximum macro recursion depth exceeded in ", quote_bounded(n.text));
  if (args.pos.size() > n.params.size())
    raise("macro ", quote_bounded(n.text), " takes not more than ", std::to_string(n.params.size()), " argument(s)");
  std::vector<std::optional<Value>> given(n.params.size());
  for (size_t k = 0; k < args.pos.size(); ++k) given[k] = args.pos[k];
  for (const auto& [name, v] : args.kw) {
    size_t k = 0;
    while (k < n.params.size() && n.params[k].first != name) ++k;
    if (k == n.params.size())
      raise("macro ", quote_bounded(n.text), " takes no keyword argument ", quote_bounded(name));
    if (given[k]) raise("macro ", quote_bounded(n.text), " got multiple values for argument ", quote_bounded(name));
    given[k] = v;
  }
  const size_t saved_base = base_;
  const int saved_line = line;
  frames_.emplace_back();
  base_ = frames_.size() - 1;
  ++depth_;
  for (size_t k = 0; k < n.params.size(); ++k) {
    const auto& [name, def] = n.params[k];
    if (given[k])
      assign(name, *given[k]);
    else if (def)
      assign(name, eval(*def));
    else
      assign(name, Value::undefined("parameter " + quote_bounded(name) + " was not provided"));
  }
  std::string buf;
  exec(n.body, buf);
  --depth_;
  frames_.pop_back();
  base_ = saved_base;
  line = saved_line;
  return Value::str(std::move(buf));
}

Value Interp::call(const Value& f, Args& args) {
  if (f.is_undefined()) fail_undefined(f);
  if (f.kind != Value::Kind::Func) raise(quote_bounded(type_name(f)), " object is not callable");
  return (*f.fn)(*this, args);
}

Args Interp::eval_args(const Expr& e, size_t first) {
  Args args;
  size_t npos = e.a.size() - e.kw.size();
  for (size_t k = first; k < npos; ++k) args.pos.push_back(eval(*e.a[k]));
  for (size_t k = 0; k < e.kw.size(); ++k) args.kw.emplace_back(e.kw[k], eval(*e.a[npos + k]));
  return args;
}

static bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Value::Kind::Undefined:
      return false;  // iterates as empty
    case Value::Kind::Str:
      if (item.kind != Value::Kind::Str) raise("'in <string>' requires string as left operand, not ", type_name(item));
      return container.s.find(item.s) != std::string::npos;
    case Value::Kind::List:
    case Value::Kind::Tuple:
      for (const auto& x : *container.list)
        if (py_eq(x, item)) return true;
      return false;
    case Value::Kind::Dict:
      return container.dict->find(item) != nullptr;
    default:
      raise("argument of type ", quote_bounded(type_name(container)), " is not iterable");
  }
}

static bool compare(const std::string& op, const Value& l, const Value& r) {
  if (op == "==") return py_eq(l, r);
  if (op == "!=") return !py_eq(l, r);
  if (op == "<") return py_lt(l, r);
  if (op == ">") return py_lt(r, l);
  if (op == "<=") return py_lt(l, r) || py_eq(l, r);
  if (op == ">=") return py_lt(r, l) || py_eq(l, r);
  if (op == "in") return contains(r, l);
  return !contains(r, l);  // notin
}

Value Interp::eval(const Expr& e) {
  line = e.line;
  switch (e.k) {
    case Expr::K::Const:
      return e.value;
    case Expr::K::Name:
      return lookup(e.name);
    case Expr::K::List:
    case Expr::K::Tuple: {
      ValueList items;
      for (const auto& x : e.a) items.push_back(eval(*x));
      return Value::list_of(std::move(items), e.k == Expr::K::Tuple);
    }
    case Expr::K::Dict: {
      auto d = std::make_shared<ValueDict>();
      for (size_t k = 0; k + 1 < e.a.size(); k += 2) {
        Value key = eval(*e.a[k]);
        if (key.kind == Value::Kind::List || key.kind == Value::Kind::Dict || key.kind == Value::Kind::Undefined)
          raise("unhashable type: ", quote_bounded(type_name(key)));
        d->set(std::move(key), eval(*e.a[k + 1]));
      }
      return Value::dict_of(std::move(d));
    }
    case Expr::K::Attr:
      return get_attr(eval(*e.a[0]), e.name);
    case Expr::K::Item: {
      Value obj = eval(*e.a[0]);
      const Expr& key = *e.a[1];
      if (key.k != Expr::K::Slice) return get_item(obj, eval(key));
      Value parts[3];
      for (int k = 0; k < 3; ++k) parts[k] = key.a[k] ? eval(*key.a[k]) : Value::none();
      line = e.line;
      return slice(obj, parts[0], parts[1], parts[2]);
    }
    case Expr::K::Call: {
      Value callee = eval(*e.a[0]);
      Args args = eval_args(e, 1);
      line = e.line;
      return call(callee, args);
    }
    case Expr::K::Filter: {
      Value subject = e.a[0] ? eval(*e.a[0]) : *filter_subject_;
      Args args = eval_args(e, 1);
      line = e.line;
      return apply_filter(*this, e.name, subject, args);
    }
    case Expr::K::Test: {
      Value subject = eval(*e.a[0]);
      Args args = eval_args(e, 1);
      line = e.line;
      return Value::boolean(apply_test(*this, e.name, subject, args));
    }
    case Expr::K::Not:
      return Value::boolean(!truthy(eval(*e.a[0])));
    case Expr::K::Neg:
    case Expr::K::Pos: {
      Value v = eval(*e.a[0]);
      bool neg = e.k == Expr::K::Neg;
      switch (v.kind) {
        case Value::Kind::Undefined:
          fail_undefined(v);
        case Value::Kind::Bool:
          return Value::integer(neg ? -int64_t{v.b} : v.b);
        case Value::Kind::Int:
          return Value::integer(neg ? -v.i : v.i);
        case Value::Kind::Float:
          return Value::real(neg ? -v.f : v.f);
        default:
          raise("bad operand type for unary ", neg ? "-" : "+", ": ", quote_bounded(type_name(v)));
      }
    }
    case Expr::K::Bin: {
      Value l = eval(*e.a[0]);
      Value r = eval(*e.a[1]);
      line = e.line;
      return binary_op(e.name, l, r);
    }
    case Expr::K::Cmp: {
      Value l = eval(*e.a[0]);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value r = eval(*e.a[k + 1]);
        line = e.line;
        if (!compare(e.ops[k], l, r)) return Value::boolean(false);
        l = std::move(r);
      }
      return Value::boolean(true);
    }
    case Expr::K::And: {
      Value l = eval(*e.a[0]);
      return truthy(l) ? eval(*e.a[1]) : l;
    }
    case Expr::K::Or: {
      Value l = eval(*e.a[0]);
      return truthy(l) ? l : eval(*e.a[1]);
    }
    case Expr::K::Cond:
      if (truthy(eval(*e.a[0]))) return eval(*e.a[1]);
      if (e.a[2]) return eval(*e.a[2]);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    case Expr::K::Concat: {
      std::string s;
      for (const auto& x : e.a) s += to_str(eval(*x));
      return Value::str(std::move(s));
    }
    case Expr::K::Slice:
      break;  // only valid inside Item
  }
  raise("invalid expression");
}

}  // namespace skv::jinja::detail
