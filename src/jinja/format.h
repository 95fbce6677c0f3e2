#pragma once
// Python's two string formatting mini-languages, as far as chat templates use them.
#include <string>

#include "jinja/value.h"

namespace skv::jinja::detail {

// printf-style `"..." % args` (also the `format` filter): args is a tuple, a mapping for
// `%(name)s`, or a single value.
std::string percent_format(const std::string& fmt, const Value& args);
// str.format: `{}`, `{0}`, `{name}`, `!r` / `!s` and a [fill]align width .precision type spec.
std::string brace_format(const std::string& fmt, const Args& args);

}  // namespace skv::jinja::detail
