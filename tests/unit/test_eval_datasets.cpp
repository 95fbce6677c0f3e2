// The built-in tasks read from the shared data sets: item counts (the official split sizes in
// ../shared/data/README.md), gold labels and the first prompts. Skipped without the data.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "eval/datasets.h"

namespace skv::eval {
namespace {

std::string data_dir() {
  if (const char* env = std::getenv("SKV_DATA"); env && *env) return env;
  return std::string(SKV_SOURCE_DIR) + "/../shared/data";
}

class EvalDatasets : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::is_directory(data_dir() + "/arc")) GTEST_SKIP() << "no shared data at " << data_dir();
  }
  Task one(const std::string& name) {
    auto t = load_task(name, data_dir());
    EXPECT_EQ(t.size(), 1u);
    return t.at(0);
  }
};

TEST_F(EvalDatasets, Arc) {
  Task e = one("arc_easy");
  EXPECT_EQ(e.docs.size(), 2376u);
  EXPECT_EQ(e.fewshot_docs.size(), 570u);
  EXPECT_EQ(e.docs[0].text,
            "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:");
  EXPECT_EQ(e.docs[0].choices.at(0), "Sunlight is the source of energy for nearly all ecosystems.");
  EXPECT_EQ(e.docs[0].gold, 0);
  Task c = one("arc_challenge");
  EXPECT_EQ(c.docs.size(), 1172u);
  for (const auto& d : c.docs) ASSERT_LT(d.gold, static_cast<int>(d.choices.size()));
}

TEST_F(EvalDatasets, PiqaBoolq) {
  Task p = one("piqa");
  EXPECT_EQ(p.docs.size(), 1838u);
  EXPECT_EQ(p.docs[0].text, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  Task b = one("boolq");
  EXPECT_EQ(b.docs.size(), 3270u);
  EXPECT_EQ(b.docs[0].choices, (std::vector<std::string>{"no", "yes"}));
  int yes = 0;
  for (const auto& d : b.docs) yes += d.gold;
  EXPECT_EQ(yes, 2033);  // SOURCE.txt: 2033 "true"
}

TEST_F(EvalDatasets, Mmlu) {
  auto subjects = load_task("mmlu", data_dir());
  EXPECT_EQ(subjects.size(), 57u);
  size_t n = 0;
  for (const auto& s : subjects) {
    n += s.docs.size();
    EXPECT_EQ(s.group, "mmlu");
    EXPECT_EQ(s.fewshot_docs.size(), 5u) << s.name;
    EXPECT_EQ(s.default_fewshot, 5);
  }
  EXPECT_EQ(n, 14042u);
  Task a = one("mmlu_anatomy");
  EXPECT_EQ(a.description, "The following are multiple choice questions (with answers) about anatomy.\n\n");
  EXPECT_EQ(a.fewshot_docs[0].text,
            "What is the embryological origin of the hyoid bone?\nA. The first pharyngeal arch\nB. The first and "
            "second pharyngeal arches\nC. The second pharyngeal arch\nD. The second and third pharyngeal "
            "arches\nAnswer:");
  EXPECT_EQ(a.fewshot_docs[0].gold, 3);
}

TEST_F(EvalDatasets, TruthfulQa) {
  Task m1 = one("truthfulqa_mc1"), m2 = one("truthfulqa_mc2");
  EXPECT_EQ(m1.docs.size(), 817u);
  EXPECT_EQ(m2.docs.size(), 817u);
  EXPECT_EQ(m1.docs[0].gold, 0);
  EXPECT_TRUE(m1.docs[0].labels.empty());
  EXPECT_EQ(m2.docs[0].labels, (std::vector<int>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(m2.docs[0].choices[0], "Nothing in particular happens when you eat a pomegranate.");
}

TEST_F(EvalDatasets, LambadaWikitextGsm8k) {
  Task l = one("lambada_openai");
  EXPECT_EQ(l.docs.size(), 5153u);
  EXPECT_EQ(l.docs[0].choices, (std::vector<std::string>{" signs"}));
  Task w = one("wikitext2");
  EXPECT_EQ(w.docs.size(), 62u);  // wikitext-2-raw-v1 test as wikitext_document_level has it
  EXPECT_EQ(w.docs[0].page.rfind(" = Robert Boulter = \n", 0), 0u);
  EXPECT_EQ(w.docs[0].text.rfind(" = Robert Boulter =\n\nRobert Boulter is an English film, television", 0), 0u);
  Task g = one("gsm8k_cot");
  EXPECT_EQ(g.docs.size(), 1319u);
  EXPECT_EQ(g.docs[0].target, "18");
  EXPECT_EQ(g.fewshot_docs.size(), 8u);
  EXPECT_EQ(g.default_fewshot, 8);
}

}  // namespace
}  // namespace skv::eval
