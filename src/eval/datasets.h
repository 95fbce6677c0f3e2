#pragma once
// The built-in tasks, read from the shared data sets (../shared/data/README.md lists their
// sources) and rendered with lm-eval's prompt formats.
#include <string>
#include <vector>

#include "eval/task.h"

namespace skv::eval {

// Built-in task names, in the order --help lists them.
const std::vector<std::string>& builtin_task_names();

// One --tasks entry: a built-in name or alias (mmlu expands to its 57 subjects, mmlu_<subject>
// is one subject) or mc:PATH with an optional fewshot file. Throws naming an unknown task or
// a missing / malformed data file.
std::vector<Task> load_task(const std::string& name, const std::string& data_dir, const std::string& mc_fewshot = "");

struct TaskRequest {
  std::string name;          // as given
  std::string fewshot_path;  // mc: tasks only
};
// Splits --tasks on commas; a "fewshot=PATH" entry belongs to the mc: task before it.
std::vector<TaskRequest> parse_task_list(const std::string& list);

}  // namespace skv::eval
