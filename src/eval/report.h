#pragma once
// The results file `swiftkv eval --output` writes and the markdown table `--compare` prints.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/runner.h"

namespace skv::eval {

// {"results": {task: {metric: value, ..., "n", "num_fewshot", "seconds", ...}}, "groups": {...}}
// plus whatever the caller puts under "config" / "timings". NaN metrics become null.
nlohmann::ordered_json results_json(const std::vector<TaskResult>& tasks, const std::vector<TaskResult>& groups);

// The metric a comparison shows for a task: acc_norm for ARC / PIQA / generic mc (length-
// normalised multiple choice), acc for MMLU / BoolQ / TruthfulQA MC1 / LAMBADA, mc2 for
// TruthfulQA MC2, exact_match for GSM8K, word_perplexity for WikiText.
std::string main_metric(const std::string& task, const nlohmann::ordered_json& metrics);
bool is_accuracy_metric(const std::string& metric);  // averaged in the comparison; perplexities are not

// Results files read for a comparison. Files with the same label are one model evaluated in
// several runs and are merged into one set.
struct ResultsSet {
  std::string label;               // the file's "label", else its name without .json
  nlohmann::ordered_json results;  // task -> metrics (group members carry "group"), merged
  std::vector<std::string> paths;  // the results files it came from
};
struct ResultsSets {
  std::vector<ResultsSet> sets;
  std::vector<std::string> rows;  // tasks and groups (not group members), first-seen order
};
// Throws naming a file that cannot be read or is not a results file.
ResultsSets load_results_sets(const std::vector<std::string>& paths);
// `rows` restricted to `only` in its order (all of them when `only` is empty); throws on a
// name no file has.
std::vector<std::string> select_rows(const std::vector<std::string>& rows, const std::vector<std::string>& only);

// Markdown table: one row per task (group members only through their group), one column per
// results set, and an Average row over the accuracy-type main metrics. only_tasks (optional)
// picks and orders the rows, so the average is over exactly those tasks.
std::string compare_table(const std::vector<std::string>& paths, const std::vector<std::string>& only_tasks = {});

}  // namespace skv::eval
