// Metric arithmetic against values worked out by hand from lm-eval's definitions.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/metrics.h"

namespace skv::eval {
namespace {

TEST(EvalMetrics, MeanAndStderr) {
  // acc over 4 items 1,0,1,1: mean 0.75; sample variance = (3 * 0.0625 + 0.5625) / 3 = 0.25,
  // so stderr = 0.5 / sqrt(4) = 0.25.
  std::vector<double> acc = {1, 0, 1, 1};
  EXPECT_DOUBLE_EQ(mean(acc), 0.75);
  EXPECT_DOUBLE_EQ(mean_stderr(acc), 0.25);
  // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squares 32, sample var 32/7.
  std::vector<double> xs = {2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(mean_stderr(xs), std::sqrt(32.0 / 7.0) / std::sqrt(8.0));
  EXPECT_TRUE(std::isnan(mean_stderr({1.0})));
  EXPECT_TRUE(std::isnan(mean({})));
}

TEST(EvalMetrics, Perplexity) {
  // Two items with ll -1 and -3: mean -2, perplexity e^2.
  std::vector<double> lls = {-1, -3};
  EXPECT_DOUBLE_EQ(perplexity(lls), std::exp(2.0));
  // Delta method: e^2 * stderr(lls) = e^2 * (sqrt(2) / sqrt(2)) = e^2.
  EXPECT_NEAR(perplexity_stderr(lls), std::exp(2.0), 1e-12);
}

TEST(EvalMetrics, WeightedPerplexityAndBitsPerByte) {
  // Documents (ll, words): (-10, 4), (-6, 4) -> weighted mean -16 / 8 = -2.
  Weighted w = {{-10, 4}, {-6, 4}};
  EXPECT_DOUBLE_EQ(weighted_mean(w), -2.0);
  EXPECT_DOUBLE_EQ(weighted_perplexity(w), std::exp(2.0));
  // Same lls over (5 + 3) bytes: -16 / 8 = -2 nats per byte = 2 / ln 2 bits.
  Weighted b = {{-10, 5}, {-6, 3}};
  EXPECT_DOUBLE_EQ(bits_per_byte(b), 2.0 / std::log(2.0));
}

TEST(EvalMetrics, ArgmaxTakesTheFirstMaximum) {
  EXPECT_EQ(argmax({-3, -1, -1, -2}), 1);
  EXPECT_THROW(argmax({}), Error);
}

TEST(EvalMetrics, AccNormDividesByCharacters) {
  // lls -4 ("ab", 2 chars -> -2) vs -9 ("abcdef", 6 chars -> -1.5): acc picks 0, acc_norm 1.
  std::vector<double> lls = {-4, -9};
  EXPECT_EQ(argmax(lls), 0);
  EXPECT_EQ(argmax_normalized(lls, {"ab", "abcdef"}), 1);
  // Python's len counts code points: "héé" is 3 characters (5 bytes). -3/3 = -1 beats -5/4.
  EXPECT_EQ(utf8_length("h\xC3\xA9\xC3\xA9"), 3);
  EXPECT_EQ(argmax_normalized({-3, -5}, {"h\xC3\xA9\xC3\xA9", "abcd"}), 0);
  EXPECT_EQ(utf8_length("\xF0\x9F\x98\x80!"), 2);
  EXPECT_EQ(utf8_length("\xFF"), 1);
}

TEST(EvalMetrics, Mc2IsTheTrueAnswersShareOfProbability) {
  // p = e^-1, e^-2 (true), e^-1 (false): (e^-1 + e^-2) / (2e^-1 + e^-2).
  const double e1 = std::exp(-1.0), e2 = std::exp(-2.0);
  EXPECT_NEAR(mc2({-1, -2, -1}, {1, 1, 0}), (e1 + e2) / (2 * e1 + e2), 1e-12);
  // A true answer listed after a false one still counts (lm-eval 0.4.13 sums labels == 1).
  EXPECT_NEAR(mc2({-1, -1, -1}, {1, 0, 1}), 2.0 / 3.0, 1e-12);
  // Whole-answer probabilities far below double's range still normalise.
  EXPECT_NEAR(mc2({-2000, -2000}, {1, 0}), 0.5, 1e-12);
}

TEST(EvalMetrics, PooledStderrMatchesLmEval) {
  // Subtasks of sizes 4 and 6 with stderrs 0.25 and 0.2:
  // var = (3 * 0.0625 * 4 + 5 * 0.04 * 6) / (10 - 2) = (0.75 + 1.2) / 8 = 0.24375.
  EXPECT_NEAR(pooled_sample_stderr({0.25, 0.2}, {4, 6}), std::sqrt(0.24375 / 10), 1e-15);
}

}  // namespace
}  // namespace skv::eval
