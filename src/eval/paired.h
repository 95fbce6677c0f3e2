#pragma once
// Paired comparison of models scored on the same items. Two models' accuracies on 200 items
// each have standard errors of about 3.5 points, yet they mostly get the same items right or
// wrong; the standard error of the mean per-item difference is what says whether a gap of one
// point is real (the paired test lm-evaluation-harness leaves to the user).
#include <string>
#include <vector>

namespace skv::eval {

// Where the per-item samples of a results file are: its config.log_samples when recorded
// (relative paths tried as given, then next to the results file), else the results file's
// name with ".json" replaced by ".samples.jsonl". Throws when neither exists.
std::string samples_path_for(const std::string& results_path);

// Markdown table of (model - first model) per task on the items both have, with the standard
// error of the mean paired difference, and an Average row over the accuracy-type tasks every
// model has: the mean of the task differences, stderr sqrt(sum of squared task stderrs) / tasks
// (tasks are independent item sets). Groups (mmlu) pool their members' items, as their
// size-weighted accuracy does. Perplexity rows are left out (no per-item mean).
std::string paired_table(const std::vector<std::string>& results_paths, const std::vector<std::string>& only_tasks = {});

}  // namespace skv::eval
