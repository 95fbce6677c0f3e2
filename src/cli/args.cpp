#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace skv::cli {

Args::Args(int argc, char** argv, const std::set<std::string>& value_flags, const std::set<std::string>& bool_flags,
           const std::map<std::string, std::string>& aliases) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-') {
      positional_.push_back(a);
      continue;
    }
    std::optional<std::string> inline_value;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      inline_value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    if (auto it = aliases.find(a); it != aliases.end()) a = it->second;
    if (value_flags.count(a)) {
      if (inline_value) {
        values_[a].push_back(*inline_value);
      } else {
        if (i + 1 >= argc) fail("flag ", a, " needs a value");
        values_[a].push_back(argv[++i]);
      }
    } else if (bool_flags.count(a)) {
      if (inline_value) fail("flag ", a, " takes no value");
      bools_.insert(a);
    } else {
      fail("unknown flag ", a, " (see --help)");
    }
  }
}

std::optional<std::string> Args::opt(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::string Args::str(const std::string& flag, const std::string& def) const { return opt(flag).value_or(def); }

std::string Args::required(const std::string& flag) const {
  auto v = opt(flag);
  if (!v) fail("missing required flag ", flag);
  return *v;
}

int64_t Args::integer(const std::string& flag, int64_t def) const {
  auto v = opt(flag);
  if (!v) return def;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE)
    fail("flag ", flag, " expects an integer, got ", quote_bounded(*v));
  return x;
}

double Args::real(const std::string& flag, double def) const {
  auto v = opt(flag);
  if (!v) return def;
  errno = 0;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno == ERANGE) fail("flag ", flag, " expects a number, got ", quote_bounded(*v));
  return x;
}

std::vector<std::string> Args::all(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (true) {
    const size_t comma = s.find(',', pos);
    items.push_back(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) return items;
    pos = comma + 1;
  }
}

std::vector<int32_t> parse_id_list(const std::string& s, const std::string& what) {
  std::vector<int32_t> ids;
  if (s.empty()) fail(what, " is empty");
  for (const std::string& item : split_commas(s)) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || v < 0 || v > INT32_MAX)
      fail(what, ": ", quote_bounded(item), " is not a token id (expected comma-separated non-negative integers)");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

std::vector<double> parse_real_list(const std::string& s, const std::string& what) {
  std::vector<double> out;
  if (s.empty()) fail(what, " is empty");
  for (const std::string& item : split_commas(s)) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
      fail(what, ": ", quote_bounded(item), " is not a number (expected a comma-separated list)");
    out.push_back(v);
  }
  return out;
}

}  // namespace skv::cli
