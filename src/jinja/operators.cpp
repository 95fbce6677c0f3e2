// Python's binary operators on template values; ints are 64-bit, so an overflow is an error
// where Python would switch to a big integer.
#include <cmath>

#include "jinja/format.h"
#include "jinja/value.h"

namespace skv::jinja::detail {

namespace {

using K = Value::Kind;

[[noreturn]] void unsupported(const char* op, const Value& l, const Value& r) {
  raise("unsupported operand type(s) for ", op, ": ", quote_bounded(type_name(l)), " and ",
        quote_bounded(type_name(r)));
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.kind == K::Str) {
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::str(std::move(out));
  }
  ValueList out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return Value::list_of(std::move(out), seq.kind == K::Tuple);
}

Value int_or_overflow(bool overflow, int64_t v) {
  if (overflow) raise("integer overflow (Python would switch to a big integer)");
  return Value::integer(v);
}

}  // namespace

Value binary_op(const std::string& op, const Value& l, const Value& r) {
  if (l.is_undefined()) fail_undefined(l);
  if (r.is_undefined()) fail_undefined(r);
  const bool nums = l.is_number() && r.is_number();
  const bool ints = nums && is_int(l) && is_int(r);
  int64_t res = 0;
  if (op == "+") {
    if (ints) {
      bool ovf = __builtin_add_overflow(as_int(l), as_int(r), &res);
      return int_or_overflow(ovf, res);
    }
    if (nums) return Value::real(as_double(l) + as_double(r));
    if (l.kind == K::Str && r.kind == K::Str) return Value::str(l.s + r.s);
    if (l.is_seq() && l.kind == r.kind && !l.generator && !r.generator) {
      ValueList out = *l.list;
      out.insert(out.end(), r.list->begin(), r.list->end());
      return Value::list_of(std::move(out), l.kind == K::Tuple);
    }
    if (l.kind == K::Str || l.is_seq())
      raise("can only concatenate ", type_name(l), " (not \"", type_name(r), "\") to ", type_name(l));
    unsupported("+", l, r);
  }
  if (op == "-") {
    if (ints) {
      bool ovf = __builtin_sub_overflow(as_int(l), as_int(r), &res);
      return int_or_overflow(ovf, res);
    }
    if (nums) return Value::real(as_double(l) - as_double(r));
    unsupported("-", l, r);
  }
  if (op == "*") {
    if (ints) {
      bool ovf = __builtin_mul_overflow(as_int(l), as_int(r), &res);
      return int_or_overflow(ovf, res);
    }
    if (nums) return Value::real(as_double(l) * as_double(r));
    if ((l.kind == K::Str || (l.is_seq() && !l.generator)) && is_int(r)) return repeat(l, as_int(r));
    if ((r.kind == K::Str || (r.is_seq() && !r.generator)) && is_int(l)) return repeat(r, as_int(l));
    if (l.kind == K::Str || l.is_seq())
      raise("can't multiply sequence by non-int of type ", quote_bounded(type_name(r)));
    unsupported("*", l, r);
  }
  if (op == "/") {
    if (!nums) unsupported("/", l, r);
    if (as_double(r) == 0) raise("division by zero");
    return Value::real(as_double(l) / as_double(r));
  }
  if (op == "//" || op == "%") {
    if (op == "%" && l.kind == K::Str) return Value::str(percent_format(l.s, r));
    if (!nums) unsupported(op.c_str(), l, r);
    if (ints) {
      int64_t a = as_int(l), b = as_int(r);
      if (b == 0) raise("integer division or modulo by zero");
      int64_t q = a / b, m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {
        --q;
        m += b;
      }
      return Value::integer(op == "//" ? q : m);
    }
    double a = as_double(l), b = as_double(r);
    if (b == 0) raise(op == "//" ? "float floor division by zero" : "float modulo");
    // CPython's float_divmod.
    double m = std::fmod(a, b), div = (a - m) / b;
    if (m != 0) {
      if ((b < 0) != (m < 0)) {
        m += b;
        div -= 1.0;
      }
    } else {
      m = std::copysign(0.0, b);
    }
    if (op == "%") return Value::real(m);
    double fd;
    if (div != 0) {
      fd = std::floor(div);
      if (div - fd > 0.5) fd += 1.0;
    } else {
      fd = std::copysign(0.0, a / b);
    }
    return Value::real(fd);
  }
  if (op == "**") {
    if (!nums) unsupported("** or pow()", l, r);
    if (ints && as_int(r) >= 0) {
      int64_t base = as_int(l), e = as_int(r), acc = 1;
      bool ovf = false;
      while (e-- > 0) ovf |= __builtin_mul_overflow(acc, base, &acc);
      return int_or_overflow(ovf, acc);
    }
    if (as_double(l) == 0 && as_double(r) < 0) raise("0.0 cannot be raised to a negative power");
    return Value::real(std::pow(as_double(l), as_double(r)));
  }
  raise("unknown operator ", op);
}

}  // namespace skv::jinja::detail
