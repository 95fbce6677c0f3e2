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

// Markdown table: one row per task (group members only through their group), one column per
// results file (its "label", else the file name without .json), and an Average row over the
// accuracy-type main metrics. Throws naming a file that is not a results file.
std::string compare_table(const std::vector<std::string>& paths);

}  // namespace skv::eval
