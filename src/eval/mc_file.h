#pragma once
// The generic multiple-choice task `mc:PATH[,fewshot=PATH]`: JSON Lines, one item a line,
//   {"context": "...", "choices": ["...", ...], "label": k}
// Choices are scored verbatim as continuations of the context (no delimiter is added), and a
// few-shot example is its context followed by its correct choice.
#include <string>
#include <vector>

#include "eval/task.h"

namespace skv::eval {

// Throws skv::Error naming the file and line of the first bad item: invalid JSON, a missing or
// mistyped field, no choices, an empty choice, a label out of range; or a file with no items.
std::vector<Doc> read_mc_file(const std::string& path);

// mc:PATH or mc:PATH,fewshot=FEWSHOT_PATH (the --tasks list is split on commas first, so the
// fewshot= part arrives as its own entry; see parse_task_list).
Task mc_task(const std::string& path, const std::string& fewshot_path);

}  // namespace skv::eval
