#pragma once
// Python str semantics on UTF-8 std::strings: templates see Python strings, which count, index,
// strip and split by code point.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skv::jinja::detail {

// ---- UTF-8 ----
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);

// ---- character classes and case mapping ----
bool py_isspace(char32_t c);
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
bool is_cased(char32_t c);
bool is_alpha(char32_t c);
bool is_digit(char32_t c);  // ASCII digits only

// ---- str methods ----
std::string py_strip(std::string_view s, bool left, bool right, const std::optional<std::string>& chars = {});
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_capitalize(const std::string& s);
std::string py_title(const std::string& s);
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
// sep == nullopt splits on whitespace runs; maxsplit < 0: no limit; from_right: str.rsplit.
std::vector<std::string> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right);
std::vector<std::string> py_splitlines(const std::string& s, bool keepends);
// align: '<' ljust, '>' rjust, '^' center; width counts code points.
std::string py_pad(const std::string& s, int64_t width, char align, const std::string& fill);

}  // namespace skv::jinja::detail
