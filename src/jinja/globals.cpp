// The functions transformers adds to a chat template's environment, plus jinja2's own
// namespace / dict / range (with the sandbox's MAX_RANGE).
#include <ctime>
#include <memory>

#include "jinja/builtins.h"

namespace skv::jinja::detail {

using K = Value::Kind;

void add_globals(ValueDict& g) {
  auto put = [&](const char* name, NativeFn f) { g.set(Value::str(name), Value::func(name, std::move(f))); };
  put("raise_exception", [](Interp&, Args& a) -> Value {
    auto b = a.bind("raise_exception", {"message"});
    raise("raise_exception: ", b[0] ? to_str(*b[0]) : "");
  });
  put("strftime_now", [](Interp&, Args& a) {
    auto b = a.bind("strftime_now", {"format"});
    if (!b[0] || b[0]->kind != K::Str) raise("strftime_now() argument must be str");
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::string buf(256 + b[0]->s.size() * 8, '\0');
    size_t n = std::strftime(buf.data(), buf.size(), b[0]->s.c_str(), &tm);
    buf.resize(n);
    return Value::str(std::move(buf));
  });
  put("namespace", [](Interp&, Args& a) {
    auto d = std::make_shared<ValueDict>();
    for (const auto& p : a.pos) {
      if (p.kind != K::Dict) raise("namespace() positional argument must be a mapping");
      for (const auto& kv : p.dict->items) d->set(kv.first, kv.second);
    }
    for (const auto& [k, v] : a.kw) {
      if (!k.empty() && k[0] == '_')
        raise("Chat templates cannot store underscore-prefixed attributes on a namespace, but got ", quote_bounded(k));
      d->set(Value::str(k), v);
    }
    return Value::object("Namespace", d);
  });
  put("dict", [](Interp&, Args& a) {
    auto d = std::make_shared<ValueDict>();
    if (a.pos.size() > 1) raise("dict expected at most 1 argument, got ", std::to_string(a.pos.size()));
    if (!a.pos.empty()) {
      const Value& src = a.pos[0];
      if (src.kind == K::Dict) {
        d->items = src.dict->items;
      } else {
        for (const auto& pair : iterate(src)) {
          ValueList kv = iterate(pair);
          if (kv.size() != 2)
            raise("dictionary update sequence element has length ", std::to_string(kv.size()), "; 2 is required");
          d->set(kv[0], kv[1]);
        }
      }
    }
    for (const auto& [k, v] : a.kw) d->set(Value::str(k), v);
    return Value::dict_of(d);
  });
  put("range", [](Interp&, Args& a) {
    if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) raise("range expected 1 to 3 integer arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = need_int(a.pos[0], "range() argument");
    } else {
      start = need_int(a.pos[0], "range() argument");
      stop = need_int(a.pos[1], "range() argument");
      if (a.pos.size() == 3) step = need_int(a.pos[2], "range() argument");
    }
    if (step == 0) raise("range() arg 3 must not be zero");
    ValueList out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= 100000) raise("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      out.push_back(Value::integer(k));
    }
    return Value::list_of(std::move(out));
  });
}

}  // namespace skv::jinja::detail
