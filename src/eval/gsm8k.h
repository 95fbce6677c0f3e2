#pragma once
// gsm8k as lm-eval's gsm8k_cot task (lm_eval/tasks/gsm8k/gsm8k-cot.yaml, version 3.0): eight
// fixed chain-of-thought exemplars, greedy generation until "Q:", "</s>" or "<|im_end|>", and
// exact match of the number the answer extraction filters find.
#include <string>
#include <vector>

#include "eval/task.h"

namespace skv::eval {

// The eight exemplars (question, worked answer ending "The answer is N.") of Wei et al. 2022,
// "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models", as gsm8k_cot
// lists them in fewshot_config.samples.
std::vector<Doc> gsm8k_exemplars();

// doc_to_target: the text after the last "####" of a GSM8K answer, stripped.
std::string gsm8k_target(const std::string& answer);

// "strict-match": first match of "The answer is (\-?[0-9\.\,]+)." (its group), else "[invalid]".
std::string gsm8k_extract_strict(const std::string& response);
// "flexible-extract": last match of "(-?[$0-9.,]{2,})|(-?[0-9]+)", stripped, else "[invalid]".
std::string gsm8k_extract_flexible(const std::string& response);

// exact_match with gsm8k_cot's settings: remove ",", "$", "(?s).*#### " and a final "." from
// both sides (in that order), lowercase, compare.
bool gsm8k_exact_match(const std::string& prediction, const std::string& reference);

}  // namespace skv::eval
