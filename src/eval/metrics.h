#pragma once
// Metric arithmetic with lm-evaluation-harness (0.4.x) definitions, so our numbers and theirs
// can be compared digit for digit: lm_eval/api/metrics.py and the multiple-choice branch of
// ConfigurableTask.process_results.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace skv::eval {

double mean(const std::vector<double>& xs);
// Sample standard deviation (ddof = 1) over sqrt(n): lm-eval's mean_stderr. NaN for n < 2.
double mean_stderr(const std::vector<double>& xs);
// exp(-mean(loglikelihoods)): lm-eval's `perplexity` aggregation (lambada).
double perplexity(const std::vector<double>& lls);
// lm-eval reports a bootstrap stderr for perplexity; a bootstrap is random, so we give the
// delta-method value exp(-m) * mean_stderr(lls), which the bootstrap estimates.
double perplexity_stderr(const std::vector<double>& lls);

// (loglikelihood, weight) pairs, e.g. (document loglik, words in the document).
using Weighted = std::vector<std::pair<double, double>>;
double weighted_mean(const Weighted& items);        // sum(a) / sum(b)
double weighted_perplexity(const Weighted& items);  // exp(-weighted_mean)
double bits_per_byte(const Weighted& items);        // -weighted_mean / ln 2

// Index of the first maximum (numpy argmax).
int64_t argmax(const std::vector<double>& xs);
// acc_norm's prediction: argmax of loglik / len(choice), len counted in Unicode code points
// as Python's len(str) does on doc_to_choice's strings (without the target delimiter).
int64_t argmax_normalized(const std::vector<double>& lls, const std::vector<std::string_view>& choices);
int64_t utf8_length(std::string_view s);  // code points; an invalid byte counts as one

// TruthfulQA MC2: probability mass of the answers labelled 1, normalised over all answers
// (lm-eval 0.4.13's process_results_mc2; before it, lm-eval counted only the answers before
// the first label 0 as true, which differs on the two items that list a true answer later).
double mc2(const std::vector<double>& lls, const std::vector<int>& labels);

// Standard error of a group's size-weighted mean from its subtasks' stderrs: lm-eval's
// pooled_sample_stderr (mmlu's overall acc_stderr).
double pooled_sample_stderr(const std::vector<double>& stderrs, const std::vector<int64_t>& sizes);

}  // namespace skv::eval
