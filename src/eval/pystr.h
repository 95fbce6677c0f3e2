#pragma once
// The few Python str operations whose exact behaviour lm-eval's numbers depend on (what
// counts as whitespace for rstrip / strip / re's \s, splitting on whitespace runs), on UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace skv::eval {

// str.isspace() for one code point (also what re's \s matches in a str pattern).
bool py_isspace(uint32_t cp);
// Byte length of the whitespace at the end / start of s (str.rstrip / str.lstrip).
size_t trailing_space_bytes(std::string_view s);
size_t leading_space_bytes(std::string_view s);
std::string py_strip(std::string_view s);
// len(re.split(r"\s+", s)): pieces between whitespace runs, counting empty ones at the ends.
int64_t split_whitespace_count(std::string_view s);

}  // namespace skv::eval
