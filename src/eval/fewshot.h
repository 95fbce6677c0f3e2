#pragma once
// Few-shot prompt assembly like lm-eval's ConfigurableTask.fewshot_context:
//   description + shot_1 + D + ... + shot_k + D + doc_to_text(item)
// with shot = doc_to_text + target_delimiter + answer and D = fewshot_delimiter.
#include <cstdint>
#include <string>
#include <vector>

#include "eval/task.h"

namespace skv::eval {

// The few-shot docs item `doc_id` of `task` gets, as indices into task.fewshot_docs (or into
// task.docs when the task has no separate pool, never doc_id itself). first_n tasks take the
// first k; the others draw k without replacement from a generator seeded by (seed, doc_id),
// so an item's examples do not depend on --limit or on which other items run.
std::vector<size_t> fewshot_indices(const Task& task, size_t doc_id, int k, uint64_t seed);

std::string build_context(const Task& task, size_t doc_id, int k, uint64_t seed);

}  // namespace skv::eval
