// Python's json.dumps, which transformers' `tojson` calls, and the context from nlohmann JSON.
#include "jinja/json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "jinja/pystring.h"

namespace skv::jinja::detail {

static void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {
        char b[16];
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          if (c >= 0x10000) {  // surrogate pair, like Python's json with ensure_ascii
            char32_t u = c - 0x10000;
            std::snprintf(b, sizeof b, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 | (u >> 10)),
                          static_cast<unsigned>(0xDC00 | (u & 0x3FF)));
          } else {
            std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
          }
          out += b;
        } else {
          utf8_append(out, c);
        }
      }
    }
  }
  out += '"';
}

static std::string json_scalar_key(const Value& k) {
  // json.dumps converts non-string keys: True -> "true", None -> "null", 1.5 -> "1.5".
  switch (k.kind) {
    case Value::Kind::Str:
      return k.s;
    case Value::Kind::Bool:
      return k.b ? "true" : "false";
    case Value::Kind::None:
      return "null";
    case Value::Kind::Int:
      return std::to_string(k.i);
    case Value::Kind::Float:
      return float_repr(k.f);
    default:
      raise("keys must be str, int, float, bool or None, not ", type_name(k));
  }
}

static void json_dump(std::string& out, const Value& v, const JsonOptions& o, int level) {
  std::string item_sep = o.separators ? o.separators->first : (o.indent ? "," : ", ");
  std::string key_sep = o.separators ? o.separators->second : ": ";
  auto newline = [&](int lvl) {
    if (!o.indent) return;
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += *o.indent;
  };
  switch (v.kind) {
    case Value::Kind::None:
      out += "null";
      return;
    case Value::Kind::Bool:
      out += v.b ? "true" : "false";
      return;
    case Value::Kind::Int:
      out += std::to_string(v.i);
      return;
    case Value::Kind::Float:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f > 0 ? "Infinity" : "-Infinity";
      else
        out += float_repr(v.f);
      return;
    case Value::Kind::Str:
      json_str(out, v.s, o.ensure_ascii);
      return;
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      if (v.generator) raise("Object of type generator is not JSON serializable");
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_dump(out, (*v.list)[k], o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> kvs;
      for (const auto& [k, x] : v.dict->items) kvs.emplace_back(json_scalar_key(k), &x);
      if (o.sort_keys)
        std::stable_sort(kvs.begin(), kvs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t k = 0; k < kvs.size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_str(out, kvs[k].first, o.ensure_ascii);
        out += key_sep;
        json_dump(out, *kvs[k].second, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default:
      raise("Object of type ", type_name(v), " is not JSON serializable");
  }
}

std::string to_json(const Value& v, const JsonOptions& o) {
  std::string out;
  json_dump(out, v, o, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::real(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::real(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list_of(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<ValueDict>();
      for (auto it = j.begin(); it != j.end(); ++it) d->items.emplace_back(Value::str(it.key()), from_json(it.value()));
      return Value::dict_of(std::move(d));
    }
    default:
      raise("unsupported JSON value in template context");
  }
}

}  // namespace skv::jinja::detail
