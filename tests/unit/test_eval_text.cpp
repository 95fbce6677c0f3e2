// Rolling windows, the WikiText document split and detokeniser, Python-str helpers, and GSM8K
// answer extraction, against hand-worked examples of lm-eval's code.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/gsm8k.h"
#include "eval/pystr.h"
#include "eval/rolling.h"
#include "eval/wikitext.h"

namespace skv::eval {
namespace {

using V = std::vector<int32_t>;
constexpr int32_t P = 99;

TEST(EvalRolling, ContextLenOneGivesDisjointChunks) {
  // Tokens 0..8, max_seq_len 3, context_len 1: predict 3 at a time, each window conditioned on
  // the one token before it (the first on the prefix token).
  auto w = rolling_windows({0, 1, 2, 3, 4, 5, 6, 7, 8}, P, 3, 1);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].context, (V{P}));
  EXPECT_EQ(w[0].prediction, (V{0, 1, 2}));
  EXPECT_EQ(w[1].context, (V{2}));
  EXPECT_EQ(w[1].prediction, (V{3, 4, 5}));
  EXPECT_EQ(w[2].context, (V{5}));
  EXPECT_EQ(w[2].prediction, (V{6, 7, 8}));
}

TEST(EvalRolling, LmEvalDocstringExample) {
  // get_rolling_token_windows' docstring: max_seq_len 3, context_len 2.
  auto w = rolling_windows({0, 1, 2, 3, 4, 5, 6, 7, 8}, P, 3, 2);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].context, (V{P}));
  EXPECT_EQ(w[0].prediction, (V{0, 1, 2}));
  EXPECT_EQ(w[1].context, (V{1, 2}));
  EXPECT_EQ(w[1].prediction, (V{3, 4}));
  EXPECT_EQ(w[2].context, (V{3, 4}));
  EXPECT_EQ(w[2].prediction, (V{5, 6}));
  EXPECT_EQ(w[3].context, (V{5, 6}));
  EXPECT_EQ(w[3].prediction, (V{7, 8}));
}

TEST(EvalRolling, ShortAndRaggedInputs) {
  auto one = rolling_windows({5, 6}, P, 4, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].context, (V{P}));
  EXPECT_EQ(one[0].prediction, (V{5, 6}));
  EXPECT_TRUE(rolling_windows({}, P, 4, 1).empty());
  // 0..5 with max 4: first predicts 0..3; the last predicts 4, 5 with the 3 tokens before.
  auto w = rolling_windows({0, 1, 2, 3, 4, 5}, P, 4, 1);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[1].context, (V{1, 2, 3}));
  EXPECT_EQ(w[1].prediction, (V{4, 5}));
  // Every token is predicted exactly once and no window exceeds max_seq_len inputs.
  V toks(1000);
  for (int i = 0; i < 1000; ++i) toks[i] = i;
  V all;
  for (const auto& x : rolling_windows(toks, P, 64, 1)) {
    EXPECT_LE(x.context.size() + x.prediction.size() - 1, 64u);
    all.insert(all.end(), x.prediction.begin(), x.prediction.end());
  }
  EXPECT_EQ(all, toks);
  EXPECT_THROW(rolling_windows(toks, P, 4, 5), Error);
  EXPECT_THROW(rolling_windows(toks, P, 4, 0), Error);
}

TEST(EvalPyStr, WhitespaceLikePython) {
  EXPECT_EQ(trailing_space_bytes("ab \t\n"), 3u);
  EXPECT_EQ(trailing_space_bytes("ab\xC2\xA0"), 2u);  // NO-BREAK SPACE is whitespace to str.rstrip
  EXPECT_EQ(trailing_space_bytes("\xC3\xA9"), 0u);
  EXPECT_EQ(py_strip("  \x1f x y \u3000"), "x y");
  // len(re.split(r"\s+", s)) counts empty pieces at the ends.
  EXPECT_EQ(split_whitespace_count("a b  c"), 3);
  EXPECT_EQ(split_whitespace_count(" a b \n"), 4);
  EXPECT_EQ(split_whitespace_count(""), 1);
}

TEST(EvalWikitext, SplitsDocumentsAtTopLevelHeadings) {
  const std::string raw =
      " \n"
      " = Alpha = \n"
      " \n"
      " Text one . \n"
      " = = Section = = \n"
      " More . \n"
      " = Beta = \n"
      " Two \n";
  auto docs = wikitext_documents(raw);
  ASSERT_EQ(docs.size(), 2u);  // the blank lines before the first heading are dropped
  EXPECT_EQ(docs[0], " = Alpha = \n \n Text one . \n = = Section = = \n More . ");
  EXPECT_EQ(docs[1], " = Beta = \n Two \n");
}

TEST(EvalWikitext, Detokenizer) {
  EXPECT_EQ(wikitext_detokenize(" = Alpha = \n The 1 @,@ 000 @-@ year ( old ) man 's \" big \" dog . Yes ; "
                                "no : maybe ? fine ! ok , N done \n"),
            " = Alpha =\nThe 1,000-year (old) man's \"big\" dog. Yes; no: maybe? fine! ok, 1 done\n");
  EXPECT_EQ(wikitext_detokenize(" = = Section = = \n"), " == Section ==\n");
  EXPECT_EQ(wikitext_detokenize("players ' cars [ a b ] { c } 3 @.@ 5 10 \xC2\xB0 C"),
            "players' cars [a b] {c} 3.5 10\xC2\xB0"
            "C");
}

TEST(EvalGsm8k, TargetAndExtraction) {
  EXPECT_EQ(gsm8k_target("She has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"), "7");
  EXPECT_EQ(gsm8k_target("#### 1,000"), "1,000");
  EXPECT_EQ(gsm8k_extract_strict("So 5 + 4 = 9. The answer is 9.\n\nQ: next"), "9");
  EXPECT_EQ(gsm8k_extract_strict("The answer is -1,250.50 dollars"), "-1,250.50");
  // The regex's final "." needs one more character: at the end of the text the group gives
  // up its last digit, as in lm-eval.
  EXPECT_EQ(gsm8k_extract_strict("The answer is 18"), "1");
  EXPECT_EQ(gsm8k_extract_strict("no answer here"), "[invalid]");
  EXPECT_EQ(gsm8k_extract_flexible("3 + 4 = 7 so she has $1,200."), "$1,200.");
  EXPECT_EQ(gsm8k_extract_flexible("It is 5"), "5");
  EXPECT_EQ(gsm8k_extract_flexible("none"), "[invalid]");
}

TEST(EvalGsm8k, ExactMatchIgnoresCommasDollarsAndFinalPeriod) {
  EXPECT_TRUE(gsm8k_exact_match("1,000", "1000"));
  EXPECT_TRUE(gsm8k_exact_match("$1,200.", "1200"));
  EXPECT_TRUE(gsm8k_exact_match("#### 12", "12"));
  EXPECT_FALSE(gsm8k_exact_match("12.5", "125"));
  EXPECT_FALSE(gsm8k_exact_match("[invalid]", "12"));
  EXPECT_FALSE(gsm8k_exact_match("-3", "3"));
}

}  // namespace
}  // namespace skv::eval
