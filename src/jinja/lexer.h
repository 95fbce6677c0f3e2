#pragma once
// Template source to tokens, with jinja2's whitespace control (-/+, trim_blocks, lstrip_blocks)
// already applied to the data tokens.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jinja/jinja.h"

namespace skv::jinja::detail {

struct Token {
  enum class T : uint8_t { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, Str, Int, Float, Op, Eof };
  T t;
  int line;
  std::string s;  // data text, name, decoded string literal, operator
  int64_t i = 0;
  double f = 0;
};
std::vector<Token> tokenize(std::string_view source, const Options& opts);

}  // namespace skv::jinja::detail
