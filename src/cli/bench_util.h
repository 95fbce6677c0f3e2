#pragma once
// Timing helpers shared by the bench modes.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace skv::cli {

struct Stat {
  double mean = 0, sd = 0;
};

inline Stat stats(const std::vector<double>& v) {
  Stat s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0;
  return s;
}

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seeded random prompt ids, so every engine path sees the same tokens.
inline std::vector<int32_t> random_prompt(int64_t n, int64_t vocab, uint32_t seed = 42) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(std::max<int64_t>(n, 1)));
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

inline std::string base_name(const std::string& path) {
  std::string name = path;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  if (auto slash = name.find_last_of('/'); slash != std::string::npos && slash + 1 < name.size())
    name = name.substr(slash + 1);
  return name;
}

}  // namespace skv::cli
