#pragma once
// Shared by the tests that run models: the fixture checkpoints and seeded random token ids.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace skv::testing {

inline std::string model_fixture(const std::string& name) {
  return std::string(SKV_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

inline std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

}  // namespace skv::testing
