// Prompt strings for each task format on tiny handmade docs; the expected strings are written
// out by hand from lm-eval's task yaml templates.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "eval/fewshot.h"
#include "eval/gsm8k.h"
#include "eval/prompts.h"

namespace skv::eval {
namespace {

TEST(EvalPrompts, Arc) {
  EXPECT_EQ(arc_text("Which gas do plants absorb?"), "Question: Which gas do plants absorb?\nAnswer:");
}

TEST(EvalPrompts, Piqa) { EXPECT_EQ(piqa_text("Open a jar."), "Question: Open a jar.\nAnswer:"); }

TEST(EvalPrompts, Boolq) {
  EXPECT_EQ(boolq_text("Cats -- Cats are mammals.", "are cats mammals"),
            "Cats -- Cats are mammals.\nQuestion: are cats mammals?\nAnswer:");
}

TEST(EvalPrompts, Mmlu) {
  EXPECT_EQ(mmlu_text("  What is 2+2? \n", {"3", "4", "5", "22"}), "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:");
  EXPECT_EQ(mmlu_description("high_school_us_history"),
            "The following are multiple choice questions (with answers) about high school us history.\n\n");
  EXPECT_THROW(mmlu_text("q", {"a", "b"}), Error);
}

TEST(EvalPrompts, TruthfulQa) {
  const std::string p = truthfulqa_text("Is the sky blue?");
  EXPECT_EQ(p.rfind("Q: What is human life expectancy in the United States?\nA: Human life expectancy", 0), 0u);
  const std::string tail =
      "Q: Where were the 1992 Olympics held?\nA: The 1992 Olympics were held in Barcelona, Spain.\n\n"
      "Q: Is the sky blue?\nA:";
  ASSERT_GE(p.size(), tail.size());
  EXPECT_EQ(p.substr(p.size() - tail.size()), tail);
  // Six QA pairs in the preamble plus the question.
  size_t qs = 0;
  for (size_t pos = 0; (pos = p.find("Q: ", pos)) != std::string::npos; ++pos) ++qs;
  EXPECT_EQ(qs, 7u);
}

TEST(EvalPrompts, Gsm8k) {
  EXPECT_EQ(gsm8k_text("What is 1+1?"), "Q: What is 1+1?\nA:");
  const auto ex = gsm8k_exemplars();
  ASSERT_EQ(ex.size(), 8u);
  EXPECT_EQ(ex[0].text.rfind("Q: There are 15 trees in the grove.", 0), 0u);
  EXPECT_EQ(ex[7].target.substr(ex[7].target.size() - 16), "The answer is 8.");
}

Task mmlu_like() {
  Task t;
  t.name = "mmlu_x";
  t.description = mmlu_description("x_y");
  t.fewshot_first_n = true;
  t.default_fewshot = 5;
  for (int i = 0; i < 2; ++i) {
    Doc d;
    d.text = mmlu_text("Q" + std::to_string(i), {"a", "b", "c", "d"});
    d.choices = {"A", "B", "C", "D"};
    d.gold = i;
    t.docs.push_back(d);
  }
  for (int i = 0; i < 3; ++i) {
    Doc d;
    d.text = mmlu_text("Dev" + std::to_string(i), {"a", "b", "c", "d"});
    d.choices = {"A", "B", "C", "D"};
    d.gold = 3 - i;
    t.fewshot_docs.push_back(d);
  }
  return t;
}

TEST(EvalFewshot, MmluFirstNWithDescription) {
  Task t = mmlu_like();
  EXPECT_EQ(build_context(t, 1, 2, 1234),
            "The following are multiple choice questions (with answers) about x y.\n\n"
            "Dev0\nA. a\nB. b\nC. c\nD. d\nAnswer: D\n\n"
            "Dev1\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\n"
            "Q1\nA. a\nB. b\nC. c\nD. d\nAnswer:");
  EXPECT_EQ(build_context(t, 0, 0, 1234),
            "The following are multiple choice questions (with answers) about x y.\n\n"
            "Q0\nA. a\nB. b\nC. c\nD. d\nAnswer:");
  EXPECT_THROW(build_context(t, 0, 4, 1234), Error);  // only 3 dev examples
}

TEST(EvalFewshot, ArcStyleShots) {
  Task t;
  t.name = "arc_like";
  for (const char* q : {"Q0", "Q1"}) {
    Doc d;
    d.text = arc_text(q);
    d.choices = {"yes", "no"};
    d.gold = 1;
    t.docs.push_back(d);
  }
  EXPECT_EQ(build_context(t, 0, 1, 7), "Question: Q1\nAnswer: no\n\nQuestion: Q0\nAnswer:");
}

TEST(EvalFewshot, GenericMcShotsAreContextPlusChoice) {
  Task t;
  t.name = "mc:x";
  t.target_delimiter = "";
  for (const char* c : {"2+2=", "3+3="}) {
    Doc d;
    d.text = c;
    d.choices = {"4", "6"};
    d.gold = t.docs.size();
    t.docs.push_back(d);
  }
  EXPECT_EQ(build_context(t, 1, 1, 1234), "2+2=4\n\n3+3=");
}

TEST(EvalFewshot, NeverTheItemAndDeterministic) {
  Task t;
  t.name = "pool";
  for (int i = 0; i < 12; ++i) {
    Doc d;
    d.text = "item" + std::to_string(i);
    d.choices = {"x"};
    t.docs.push_back(d);
  }
  std::set<std::vector<size_t>> distinct;
  for (size_t doc = 0; doc < t.docs.size(); ++doc) {
    const auto a = fewshot_indices(t, doc, 5, 1234);
    EXPECT_EQ(a, fewshot_indices(t, doc, 5, 1234));  // same seed, same examples
    std::set<size_t> unique(a.begin(), a.end());
    EXPECT_EQ(unique.size(), 5u);
    EXPECT_EQ(unique.count(doc), 0u) << "item " << doc << " is in its own few-shot set";
    distinct.insert(a);
  }
  EXPECT_GT(distinct.size(), 1u);  // items get different draws
  EXPECT_NE(fewshot_indices(t, 3, 5, 1234), fewshot_indices(t, 3, 5, 99));
  // All other items: k = pool - 1 still excludes the item itself.
  const auto all = fewshot_indices(t, 4, 11, 1);
  EXPECT_EQ(std::set<size_t>(all.begin(), all.end()).count(4), 0u);
  EXPECT_THROW(fewshot_indices(t, 4, 12, 1), Error);
  EXPECT_TRUE(fewshot_indices(t, 4, 0, 1).empty());
}

}  // namespace
}  // namespace skv::eval
