#include "eval/fewshot.h"

#include "core/error.h"

namespace skv::eval {
namespace {

// splitmix64: a fixed, documented generator, so the same seed gives the same examples on
// every platform (std::uniform_int_distribution is implementation-defined).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by rejection, free of modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
};

}  // namespace

std::vector<size_t> fewshot_indices(const Task& task, size_t doc_id, int k, uint64_t seed) {
  if (k < 0) fail("--num-fewshot must be >= 0, got ", k);
  if (k == 0) return {};
  const bool own_pool = !task.fewshot_docs.empty();
  const size_t pool = own_pool ? task.fewshot_docs.size() : task.docs.size();
  std::vector<size_t> candidates;
  candidates.reserve(pool);
  for (size_t i = 0; i < pool; ++i)
    if (own_pool || i != doc_id) candidates.push_back(i);
  if (static_cast<size_t>(k) > candidates.size())
    fail("task ", task.name, ": --num-fewshot ", k, " needs more examples than the ", candidates.size(),
         " it has to draw from");
  if (task.fewshot_first_n) return std::vector<size_t>(candidates.begin(), candidates.begin() + k);
  SplitMix64 rng{seed * 0x9E3779B97F4A7C15ull ^ (doc_id + 1) * 0xD1B54A32D192ED03ull};
  for (int i = 0; i < k; ++i) std::swap(candidates[i], candidates[i + rng.below(candidates.size() - i)]);
  return std::vector<size_t>(candidates.begin(), candidates.begin() + k);
}

std::string build_context(const Task& task, size_t doc_id, int k, uint64_t seed) {
  std::string ctx = task.description;
  const std::vector<Doc>& pool = task.fewshot_docs.empty() ? task.docs : task.fewshot_docs;
  for (size_t i : fewshot_indices(task, doc_id, k, seed)) {
    const Doc& d = pool[i];
    ctx += d.text + task.target_delimiter + fewshot_answer(task, d) + task.fewshot_delimiter;
  }
  return ctx + task.docs.at(doc_id).text;
}

}  // namespace skv::eval
