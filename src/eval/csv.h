#pragma once
// CSV as Python's csv module reads it by default (excel dialect): comma separated, fields
// optionally in double quotes, "" for a quote inside them, newlines allowed inside quotes.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace skv::eval {

struct CsvRow {
  int64_t line = 0;  // 1-based line where the row starts
  std::vector<std::string> fields;
};

// `what` names the source in errors (an unterminated quote).
std::vector<CsvRow> parse_csv(std::string_view text, const std::string& what);

}  // namespace skv::eval
