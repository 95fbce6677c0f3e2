#pragma once
// Minimal flag parser shared by every subcommand: `--name value`, `--name=value`, boolean
// `--flag`, short aliases. Unknown flags and missing / malformed values are errors that name
// the flag, so a typo never silently falls back to a default.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace skv::cli {

class Args {
 public:
  // value_flags take a value; bool_flags do not. aliases maps e.g. "-t" -> "--threads".
  Args(int argc, char** argv, const std::set<std::string>& value_flags, const std::set<std::string>& bool_flags,
       const std::map<std::string, std::string>& aliases = {});

  bool has(const std::string& flag) const { return values_.count(flag) || bools_.count(flag); }
  bool flag(const std::string& flag) const { return bools_.count(flag) != 0; }
  std::string str(const std::string& flag, const std::string& def) const;
  std::string required(const std::string& flag) const;  // throws if absent
  std::optional<std::string> opt(const std::string& flag) const;
  int64_t integer(const std::string& flag, int64_t def) const;  // throws naming flag on bad number
  double real(const std::string& flag, double def) const;
  std::vector<std::string> all(const std::string& flag) const;  // repeated flags
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> bools_;
  std::vector<std::string> positional_;
};

// "a,,b" -> {"a", "", "b"}: the items between commas, empty ones kept for the caller to judge.
std::vector<std::string> split_commas(const std::string& s);
// "1,2,3" -> {1,2,3}; throws naming `what` on anything that is not a comma-separated list of ints.
std::vector<int32_t> parse_id_list(const std::string& s, const std::string& what);
// "0.25,0.5" -> {0.25, 0.5}; throws naming `what` on an item that is not a finite number.
std::vector<double> parse_real_list(const std::string& s, const std::string& what);

}  // namespace skv::cli
