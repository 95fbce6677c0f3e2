// Group aggregation (mmlu), the main metric a comparison shows per task, the --compare
// table's Average row, and the paired (item-by-item) comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/metrics.h"
#include "eval/paired.h"
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

TEST(EvalReport, CompareTasksPicksAndOrdersTheRows) {
  const std::string a = (std::filesystem::temp_directory_path() / "skv_cmp_pick.json").string();
  std::ofstream(a) << R"({"label": "m", "results": {"arc_easy": {"acc_norm": 0.6}, "boolq": {"acc": 0.2},
      "piqa": {"acc_norm": 0.7}}})";
  const std::string t = compare_table({a}, {"piqa", "arc_easy"});
  EXPECT_LT(t.find("| piqa |"), t.find("| arc_easy |")) << t;
  EXPECT_EQ(t.find("boolq"), std::string::npos) << t;
  EXPECT_NE(t.find("| Average | accuracy | 0.6500 |"), std::string::npos) << t;
  EXPECT_THROW(compare_table({a}, {"mmlu"}), Error);  // no file has it
  std::remove(a.c_str());
}

// Writes NAME.json (results) and NAME.samples.jsonl (per-item samples) in the temp directory.
std::string write_run(const std::string& name, const std::string& results, const std::vector<std::string>& samples) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string p = (dir / (name + ".json")).string();
  std::ofstream(p) << results;
  std::ofstream s(dir / (name + ".samples.jsonl"));
  for (const auto& line : samples) s << line << "\n";
  return p;
}

std::string item(const std::string& task, int doc, const std::string& metric, double v) {
  return R"({"task": ")" + task + R"(", "doc_id": )" + std::to_string(doc) + R"(, "context": "x", ")" + metric +
         R"(": )" + std::to_string(v) + "}";
}

TEST(EvalPaired, DifferencesItemByItemWithTheirStandardError) {
  const std::string results = R"({"results": {"arc_easy": {"acc_norm": 0}, "mmlu": {"acc": 0},
      "mmlu_a": {"acc": 0, "group": "mmlu"}, "mmlu_b": {"acc": 0, "group": "mmlu"},
      "wikitext2": {"word_perplexity": 20}}})";
  // arc_easy: base 1,0,1,1 vs 1,1,0,1: differences 0,1,-1,0: mean 0, sd sqrt(2/3), stderr sqrt(2/3)/2.
  // mmlu pools its subjects: base 1,0,0,0 vs 1,1,0,1: differences 0,1,0,1: mean 0.5, stderr sqrt(1/12).
  const std::string base = write_run("skv_pair_base", R"({"label": "base", )" + results.substr(1),
                                     {item("arc_easy", 0, "acc_norm", 1), item("arc_easy", 1, "acc_norm", 0),
                                      item("arc_easy", 2, "acc_norm", 1), item("arc_easy", 3, "acc_norm", 1),
                                      item("mmlu_a", 0, "acc", 1), item("mmlu_a", 1, "acc", 0),
                                      item("mmlu_b", 0, "acc", 0), item("mmlu_b", 1, "acc", 0)});
  const std::string other = write_run("skv_pair_new", R"({"label": "new", )" + results.substr(1),
                                      {item("mmlu_b", 1, "acc", 1), item("arc_easy", 1, "acc_norm", 1),
                                       item("arc_easy", 0, "acc_norm", 1), item("arc_easy", 2, "acc_norm", 0),
                                       item("arc_easy", 3, "acc_norm", 1), item("mmlu_a", 0, "acc", 1),
                                       item("mmlu_a", 1, "acc", 1), item("mmlu_b", 0, "acc", 0)});
  const std::string t = paired_table({base, other});
  EXPECT_NE(t.find("| Task | Metric | n | new - base |"), std::string::npos) << t;
  EXPECT_NE(t.find("| arc_easy | acc_norm | 4 | +0.0000 ± 0.4082 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| mmlu | acc | 4 | +0.5000 ± 0.2887 |"), std::string::npos) << t;
  EXPECT_EQ(t.find("wikitext2"), std::string::npos) << t;  // perplexity: no per-item mean
  // Mean of the task differences; stderr sqrt(2/12 + 1/12) / 2 = 0.25.
  EXPECT_NE(t.find("| Average | accuracy | 2 tasks | +0.2500 ± 0.2500 |"), std::string::npos) << t;
  // Only the rows asked for.
  const std::string only = paired_table({base, other}, {"mmlu"});
  EXPECT_NE(only.find("| Average | accuracy | 1 tasks | +0.5000 ± 0.2887 |"), std::string::npos) << only;
  // A model compared with itself differs by exactly nothing.
  const std::string self = write_run("skv_pair_self", R"({"label": "self", )" + results.substr(1),
                                     {item("arc_easy", 0, "acc_norm", 1), item("arc_easy", 1, "acc_norm", 0),
                                      item("arc_easy", 2, "acc_norm", 1), item("arc_easy", 3, "acc_norm", 1)});
  const std::string s = paired_table({base, self}, {"arc_easy"});
  EXPECT_NE(s.find("| arc_easy | acc_norm | 4 | +0.0000 ± 0.0000 |"), std::string::npos) << s;
  for (const auto& p : {base, other, self}) {
    std::remove(p.c_str());
    std::remove((p.substr(0, p.size() - 5) + ".samples.jsonl").c_str());
  }
}

TEST(EvalPaired, OnlyTheItemsBothModelsScored) {
  const std::string r = R"({"results": {"boolq": {"acc": 0}}})";
  const std::string a = write_run("skv_pair_a", r, {item("boolq", 0, "acc", 1), item("boolq", 1, "acc", 0),
                                                   item("boolq", 2, "acc", 0)});
  const std::string b = write_run("skv_pair_b", r, {item("boolq", 1, "acc", 1), item("boolq", 2, "acc", 1)});
  const std::string t = paired_table({a, b});
  EXPECT_NE(t.find("| boolq | acc | 3 | +1.0000 ± 0.0000 (n 2) |"), std::string::npos) << t;
  for (const auto& p : {a, b}) {
    std::remove(p.c_str());
    std::remove((p.substr(0, p.size() - 5) + ".samples.jsonl").c_str());
  }
}

TEST(EvalPaired, FindsTheSamplesFileTheResultsRecordAndRefusesWithout) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string samples = (dir / "skv_pair_elsewhere.jsonl").string();
  std::ofstream(samples) << item("boolq", 0, "acc", 1) << "\n";
  const std::string a = (dir / "skv_pair_rec.json").string();
  std::ofstream(a) << R"({"results": {"boolq": {"acc": 1}}, "config": {"log_samples": ")" + samples + R"("}})";
  EXPECT_EQ(samples_path_for(a), samples);
  const std::string none = (dir / "skv_pair_none.json").string();
  std::ofstream(none) << R"({"results": {"boolq": {"acc": 1}}})";
  try {
    paired_table({a, none});
    ADD_FAILURE() << "no samples file: expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--log-samples"), std::string::npos) << e.what();
  }
  EXPECT_THROW(paired_table({a}), Error);  // one model: nothing to compare
  const std::string bad = (dir / "skv_pair_bad.json").string();
  std::ofstream(bad) << R"({"label": "bad", "results": {"boolq": {"acc": 1}}})";
  std::ofstream(dir / "skv_pair_bad.samples.jsonl") << "{not json\n";
  EXPECT_THROW(paired_table({a, bad}), Error);
  for (const auto& p : {samples, a, none, bad, (dir / "skv_pair_bad.samples.jsonl").string()}) std::remove(p.c_str());
}

}  // namespace
}  // namespace skv::eval
