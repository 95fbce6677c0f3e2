#pragma once
// lm-eval's doc_to_text / doc_to_choice templates for the built-in tasks, as plain functions
// (sources: lm_eval/tasks/<task>/*.yaml in EleutherAI/lm-evaluation-harness 0.4.x).
#include <string>
#include <vector>

namespace skv::eval {

// arc_easy / arc_challenge: "Question: {{question}}\nAnswer:", choices "{{choices.text}}".
std::string arc_text(const std::string& stem);
// piqa: "Question: {{goal}}\nAnswer:", choices [sol1, sol2].
std::string piqa_text(const std::string& goal);
// boolq (super_glue): "{{passage}}\nQuestion: {{question}}?\nAnswer:", choices ["no", "yes"].
std::string boolq_text(const std::string& passage, const std::string& question);
// mmlu: "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nD. {{choices[3]}}\nAnswer:",
// choices ["A", "B", "C", "D"].
std::string mmlu_text(const std::string& question, const std::vector<std::string>& choices);
// "The following are multiple choice questions (with answers) about {subject with spaces}.\n\n"
std::string mmlu_description(const std::string& subject);
// truthfulqa_mc1 / mc2: a fixed 6-shot QA preamble, then "\n\nQ: {{question}}\nA:".
std::string truthfulqa_text(const std::string& question);
// gsm8k_cot: "Q: {{question}}\nA:".
std::string gsm8k_text(const std::string& question);

}  // namespace skv::eval
