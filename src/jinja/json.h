#pragma once
// Template values to and from JSON: the context arrives as nlohmann JSON, and `tojson` must
// match Python's json.dumps byte for byte (transformers' tojson calls it).
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "jinja/value.h"

namespace skv::jinja::detail {

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // Python json.dumps indent (an int n becomes n spaces)
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& o);  // Python json.dumps
Value from_json(const nlohmann::ordered_json& j);

}  // namespace skv::jinja::detail
