// Group aggregation (mmlu), the main metric a comparison shows per task, and the --compare
// table's Average row.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/report.h"

namespace skv::eval {
namespace {

TaskResult subject(const std::string& name, int64_t n, double acc, double se) {
  TaskResult t;
  t.name = name;
  t.group = "mmlu";
  t.n = n;
  t.num_fewshot = 5;
  t.metrics = {{"acc", acc}, {"acc_stderr", se}};
  return t;
}

TEST(EvalReport, GroupIsTheItemWeightedMeanWithPooledStderr) {
  TaskResult g = aggregate_group("mmlu", {subject("mmlu_a", 4, 0.75, 0.25), subject("mmlu_b", 6, 0.5, 0.2)});
  EXPECT_EQ(g.name, "mmlu");
  EXPECT_EQ(g.n, 10);
  ASSERT_EQ(g.metrics.size(), 2u);
  EXPECT_EQ(g.metrics[0].first, "acc");
  EXPECT_DOUBLE_EQ(g.metrics[0].second, (0.75 * 4 + 0.5 * 6) / 10);  // = mean over all 10 items
  EXPECT_EQ(g.metrics[1].first, "acc_stderr");
  EXPECT_DOUBLE_EQ(g.metrics[1].second, pooled_sample_stderr({0.25, 0.2}, {4, 6}));
}

TEST(EvalReport, MainMetricPerTask) {
  nlohmann::ordered_json mc = {{"acc", 0.5}, {"acc_norm", 0.6}};
  EXPECT_EQ(main_metric("arc_easy", mc), "acc_norm");
  EXPECT_EQ(main_metric("piqa", mc), "acc_norm");
  EXPECT_EQ(main_metric("mc:x.jsonl", mc), "acc_norm");
  EXPECT_EQ(main_metric("mmlu", {{"acc", 0.3}}), "acc");
  EXPECT_EQ(main_metric("boolq", {{"acc", 0.3}}), "acc");
  EXPECT_EQ(main_metric("truthfulqa_mc1", {{"acc", 0.3}}), "acc");
  EXPECT_EQ(main_metric("truthfulqa_mc2", {{"mc2", 0.3}}), "mc2");
  EXPECT_EQ(main_metric("gsm8k_cot", {{"exact_match", 0.1}, {"exact_match_flexible", 0.2}}), "exact_match");
  EXPECT_EQ(main_metric("wikitext2", {{"word_perplexity", 20.0}, {"byte_perplexity", 1.7}}), "word_perplexity");
  EXPECT_EQ(main_metric("lambada_openai", {{"perplexity", 20.0}, {"acc", 0.4}}), "acc");
  EXPECT_TRUE(is_accuracy_metric("acc_norm"));
  EXPECT_FALSE(is_accuracy_metric("word_perplexity"));
}

TEST(EvalReport, CompareAveragesTheAccuracyTasksEveryFileHas) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string a = (dir / "skv_cmp_base.json").string(), b = (dir / "skv_cmp_b.json").string();
  std::ofstream(a) << R"({"label": "base", "results": {
      "arc_easy": {"acc": 0.5, "acc_norm": 0.6, "acc_norm_stderr": 0.01},
      "mmlu": {"acc": 0.3},
      "mmlu_anatomy": {"acc": 0.9, "group": "mmlu"},
      "wikitext2": {"word_perplexity": 20.5},
      "boolq": {"acc": 0.7}}})";
  std::ofstream(b) << R"({"results": {
      "arc_easy": {"acc": 0.4, "acc_norm": 0.5},
      "mmlu": {"acc": 0.2},
      "wikitext2": {"word_perplexity": 25.25}}})";
  const std::string t = compare_table({a, b});
  std::remove(a.c_str());
  std::remove(b.c_str());
  EXPECT_NE(t.find("| Task | Metric | base | skv_cmp_b |"), std::string::npos) << t;
  EXPECT_NE(t.find("| arc_easy | acc_norm | 0.6000 ± 0.0100 | 0.5000 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| wikitext2 | word_perplexity | 20.500 | 25.250 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| boolq | acc | 0.7000 | - |"), std::string::npos) << t;
  EXPECT_EQ(t.find("mmlu_anatomy"), std::string::npos) << t;  // shown through its group
  // (0.6 + 0.3) / 2 and (0.5 + 0.2) / 2: boolq is missing from b, perplexities never count.
  EXPECT_NE(t.find("| Average | accuracy | 0.4500 | 0.3500 |"), std::string::npos) << t;
  EXPECT_NE(t.find("Not in the average (missing from some files): boolq"), std::string::npos) << t;
}

TEST(EvalReport, CompareMergesFilesWithTheSameLabelIntoOneColumn) {
  // One model evaluated in several runs (say MMLU on its own) is one column.
  const auto dir = std::filesystem::temp_directory_path();
  const std::string a = (dir / "skv_cmp_m1.json").string(), b = (dir / "skv_cmp_m2.json").string(),
                    c = (dir / "skv_cmp_other.json").string();
  std::ofstream(a) << R"({"label": "m", "results": {"arc_easy": {"acc": 0.5, "acc_norm": 0.6}}})";
  std::ofstream(b) << R"({"label": "m", "results": {"mmlu": {"acc": 0.3}}})";
  std::ofstream(c) << R"({"label": "o", "results": {"arc_easy": {"acc": 0.4, "acc_norm": 0.4}, "mmlu": {"acc": 0.2}}})";
  const std::string t = compare_table({a, b, c});
  EXPECT_NE(t.find("| Task | Metric | m | o |\n"), std::string::npos) << t;
  EXPECT_NE(t.find("| mmlu | acc | 0.3000 | 0.2000 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| Average | accuracy | 0.4500 | 0.3000 |"), std::string::npos) << t;
  // The same task twice under one label is ambiguous.
  EXPECT_THROW(compare_table({a, a}), Error);
  for (const auto& p : {a, b, c}) std::remove(p.c_str());
}

}  // namespace
}  // namespace skv::eval
