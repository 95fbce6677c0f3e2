#pragma once
// Runs tasks on an EvalModel and reduces per-item results to lm-eval's metrics.
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/progress.h"
#include "eval/lm.h"
#include "eval/task.h"

namespace skv::eval {

struct RunOptions {
  int64_t limit = -1;         // first N items of each task (mmlu: of each subject); -1 = all
  double limit_fraction = 0;  // or ceil(fraction * items) when in (0, 1), as lm-eval's --limit 0.1
  int num_fewshot = -1;       // -1: each task's default
  uint64_t seed = 1234;
  // Renders a prompt with the chat template (empty = off): the task description as a system
  // turn when there is one, the rest (few-shot examples and the item) as one user turn, and
  // the generation prompt, as lm-eval 0.4.13 does without multi-turn few-shot.
  std::function<std::string(const std::string& system, const std::string& user)> chat;
  std::ostream* samples = nullptr;  // --log-samples: one JSON line per item
};

struct TaskResult {
  std::string name, group;
  int64_t n = 0;
  int num_fewshot = 0;
  double seconds = 0;
  int64_t tokens_computed = 0;
  std::vector<std::pair<std::string, double>> metrics;  // in report order, *_stderr after each
};

int64_t items_to_run(const Task& task, const RunOptions& opts);

TaskResult run_task(EvalModel& lm, const Task& task, const RunOptions& opts, Progress& progress);

// A group's result from its subtasks (mmlu): each metric is the item-weighted mean of the
// subtasks' (= the mean over all items), its stderr lm-eval's pooled_sample_stderr.
TaskResult aggregate_group(const std::string& group, const std::vector<TaskResult>& subtasks);

}  // namespace skv::eval
