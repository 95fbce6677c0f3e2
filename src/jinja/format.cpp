#include "jinja/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "jinja/pystring.h"

namespace skv::jinja::detail {

using K = Value::Kind;

std::string percent_format(const std::string& fmt, const Value& args) {
  ValueList pos;
  const ValueDict* mapping = nullptr;
  if (args.kind == K::Tuple)
    pos = *args.list;
  else if (args.kind == K::Dict)
    mapping = args.dict.get();
  else
    pos.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) raise("incomplete format");
    const Value* v = nullptr;
    if (fmt[k] == '(') {
      size_t e = fmt.find(')', k);
      if (e == std::string::npos || !mapping) raise("format requires a mapping");
      v = mapping->find(std::string_view(fmt).substr(k + 1, e - k - 1));
      if (!v) raise("KeyError: ", quote_bounded(fmt.substr(k + 1, e - k - 1)));
      k = e + 1;
    }
    std::string flags, width, prec;  // prec: digits after '.', "" if absent
    bool has_prec = false;
    while (k < fmt.size() && std::string("-+ #0").find(fmt[k]) != std::string::npos) flags += fmt[k++];
    while (k < fmt.size() && is_digit(fmt[k])) width += fmt[k++];
    if (k < fmt.size() && fmt[k] == '.') {
      ++k;
      has_prec = true;
      while (k < fmt.size() && is_digit(fmt[k])) prec += fmt[k++];
      if (prec.empty()) prec = "0";
    }
    if (k >= fmt.size()) raise("incomplete format");
    char type = fmt[k];
    if (type == '%') {
      out += '%';
      continue;
    }
    if (!v) {
      if (next >= pos.size()) raise("not enough arguments for format string");
      v = &pos[next++];
    }
    char buf[512];
    const std::string spec = "%" + flags + width + (has_prec ? "." + prec : "");
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = type == 's' ? to_str(*v) : repr(*v);
        if (has_prec) s = utf8_encode(utf8_decode(s).substr(0, std::stoul(prec)));
        out += py_pad(s, width.empty() ? 0 : std::stoll(width), flags.find('-') != std::string::npos ? '<' : '>', " ");
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
        if (!v->is_number()) raise("%", std::string(1, type), " format: a number is required, not ", type_name(*v));
        std::snprintf(buf, sizeof buf, (spec + "ll" + (type == 'i' || type == 'u' ? 'd' : type)).c_str(),
                      static_cast<long long>(v->kind == K::Float ? std::trunc(v->f) : as_int(*v)));
        out += buf;
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
        if (!v->is_number()) raise("must be real number, not ", type_name(*v));
        std::snprintf(buf, sizeof buf, (spec + type).c_str(), as_double(*v));
        out += buf;
        break;
      case 'c': {
        std::string s;
        if (v->kind == K::Str)
          s = v->s;
        else
          utf8_append(s, static_cast<char32_t>(as_int(*v)));
        out += s;
        break;
      }
      default:
        raise("unsupported format character ", quote_bounded(std::string(1, type)));
    }
  }
  if (!mapping && next < pos.size() && args.kind == K::Tuple)
    raise("not all arguments converted during string formatting");
  return out;
}

std::string brace_format(const std::string& fmt, const Args& args) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '}') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '}')
        ++k;
      else
        raise("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out += '{';
      ++k;
      continue;
    }
    size_t e = fmt.find('}', k);
    if (e == std::string::npos) raise("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, e - k - 1), spec, conv;
    if (size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (size_t bang = field.find('!'); bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field.resize(bang);
    }
    Value v;
    if (field.empty()) {
      if (auto_idx >= args.pos.size()) raise("Replacement index ", std::to_string(auto_idx), " out of range");
      v = args.pos[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char ch) { return is_digit(ch); })) {
      size_t idx = std::stoul(field);
      if (idx >= args.pos.size()) raise("Replacement index ", field, " out of range");
      v = args.pos[idx];
    } else {
      auto it = std::find_if(args.kw.begin(), args.kw.end(), [&](const auto& kv) { return kv.first == field; });
      if (it == args.kw.end()) raise("KeyError: ", quote_bounded(field));
      v = it->second;
    }
    std::string s;
    if (conv == "r") {
      s = repr(v);
    } else if (!spec.empty() && v.is_number() && spec.find_first_of("dfeEgGxX%") != std::string::npos) {
      char type = spec.back();
      std::string body = spec.substr(0, spec.size() - 1);
      char buf[512];
      std::string pf = "%" + body;
      if (type == 'd')
        std::snprintf(buf, sizeof buf, (pf + "lld").c_str(), static_cast<long long>(as_int(v)));
      else
        std::snprintf(buf, sizeof buf, (pf + type).c_str(), as_double(v));
      s = buf;
    } else {
      s = to_str(v);
      if (!spec.empty()) {
        std::string fill = " ";
        char align = v.is_number() ? '>' : '<';
        size_t p = 0;
        if (spec.size() >= 2 && std::string("<>^").find(spec[1]) != std::string::npos) {
          fill = spec.substr(0, 1);
          align = spec[1];
          p = 2;
        } else if (std::string("<>^").find(spec[0]) != std::string::npos) {
          align = spec[0];
          p = 1;
        }
        std::string w;
        while (p < spec.size() && is_digit(spec[p])) w += spec[p++];
        if (p < spec.size() && spec[p] == '.') {
          std::string pr;
          ++p;
          while (p < spec.size() && is_digit(spec[p])) pr += spec[p++];
          s = utf8_encode(utf8_decode(s).substr(0, pr.empty() ? 0 : std::stoul(pr)));
        }
        if (p < spec.size() && spec[p] == 's') ++p;
        if (p != spec.size()) raise("unsupported format spec ", quote_bounded(spec));
        s = py_pad(s, w.empty() ? 0 : std::stoll(w), align, fill);
      }
    }
    out += s;
    k = e;
  }
  return out;
}

}  // namespace skv::jinja::detail
