// The evaluation scorer on the tiny random Llama fixture: its log-likelihoods equal the sums of
// Session::score's per-token log-probabilities (which run every token through every layer in
// one pass), whatever the chunking, cache reuse or truncation on the way.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "engine/session.h"
#include "eval/lm.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace skv::eval {
namespace {

const std::string kModel = std::string(SKV_SOURCE_DIR) + "/tests/fixtures/models/llama_gqa";

class EvalLm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = LlamaModel::load(kModel).release();
    tok_ = Tokenizer::from_path(kModel).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
  }
  // Reference: sum of score()'s log-probs of the last m tokens of ids.
  double reference(const std::vector<int32_t>& ids, size_t m) {
    Session s(*model_, ids.size() + 1, 512);
    std::vector<double> lp = s.score(ids);
    double sum = 0;
    for (size_t i = ids.size() - m; i < ids.size(); ++i) sum += lp[i];
    return sum;
  }
  static LlamaModel* model_;
  static Tokenizer* tok_;
};
LlamaModel* EvalLm::model_ = nullptr;
Tokenizer* EvalLm::tok_ = nullptr;

TEST_F(EvalLm, EncodePairMovesTrailingSpacesToTheContinuation) {
  EvalModel lm(*model_, *tok_, {});
  auto [ctx, cont] = lm.encode_pair("Question: why?\nAnswer: ", "because");
  EXPECT_EQ(ctx, tok_->encode("Question: why?\nAnswer:", true, true));
  std::vector<int32_t> whole = tok_->encode("Question: why?\nAnswer: because", true, true);
  ASSERT_EQ(ctx.size() + cont.size(), whole.size());
  EXPECT_EQ(std::vector<int32_t>(whole.begin() + ctx.size(), whole.end()), cont);
  // An empty context conditions on the prefix token (BOS, else EOS).
  auto [ctx0, cont0] = lm.encode_pair("", "hello");
  EXPECT_EQ(ctx0, (std::vector<int32_t>{*tok_->bos_id()}));
  EXPECT_EQ(cont0, tok_->encode("hello", false, true));
  // A whitespace-only context too; its spaces go to the continuation.
  auto [ctx1, cont1] = lm.encode_pair("  ", "hello");
  EXPECT_EQ(ctx1, (std::vector<int32_t>{*tok_->bos_id()}));
  EXPECT_EQ(cont1, tok_->encode("  hello", false, true));
}

TEST_F(EvalLm, BosFollowsTheTokenizerUnlessTheTextStartsWithIt) {
  // A Llama-3 style tokenizer whose post-processor adds BOS (only encoding is exercised).
  auto tok =
      Tokenizer::from_tokenizer_json(std::string(SKV_SOURCE_DIR) + "/tests/fixtures/tokenizer/llama3_style.json");
  ASSERT_TRUE(tok->adds_bos() && tok->bos_id());
  const int32_t bos = *tok->bos_id();
  const std::string bos_text = tok->decode({bos}, false);
  EvalModel lm(*model_, *tok, {});
  EXPECT_EQ(lm.prefix_token(), bos);
  EXPECT_EQ(lm.encode("hello").front(), bos);
  EXPECT_EQ(lm.encode(bos_text + "hello"), tok->encode(bos_text + "hello", false, true));  // one BOS, not two
  auto [ctx, cont] = lm.encode_pair("Question:", " hi");
  EXPECT_EQ(ctx.front(), bos);
  EXPECT_EQ(cont, tok->encode(" hi", false, true));
  // Empty context: the prefix token, and a continuation that starts with it is not scored twice.
  auto [c0, k0] = lm.encode_pair("", bos_text + "hi");
  EXPECT_EQ(c0, (std::vector<int32_t>{bos}));
  EXPECT_EQ(k0, tok->encode("hi", false, true));
  EvalModel no_bos(*model_, *tok, {.max_length = 2048, .batch_tokens = 512, .add_bos = false});
  EXPECT_EQ(no_bos.encode("hello"), tok->encode("hello", false, true));
}

TEST_F(EvalLm, LoglikelihoodsMatchScore) {
  for (int64_t batch : {512, 3}) {
    EvalModel lm(*model_, *tok_, {.max_length = 2048, .batch_tokens = batch});
    const std::string context = "Question: Which one is a fruit?\nAnswer:";
    const std::vector<std::string> conts = {" apple", " a red brick wall", " stone"};
    std::vector<LoglikResult> got = lm.loglikelihoods(context, conts);
    ASSERT_EQ(got.size(), 3u);
    for (size_t j = 0; j < conts.size(); ++j) {
      auto [ctx, cont] = lm.encode_pair(context, conts[j]);
      std::vector<int32_t> ids = ctx;
      ids.insert(ids.end(), cont.begin(), cont.end());
      EXPECT_NEAR(got[j].loglik, reference(ids, cont.size()), 2e-4) << "batch " << batch << " choice " << j;
      EXPECT_EQ(got[j].tokens, static_cast<int64_t>(cont.size()));
      EXPECT_LT(got[j].loglik, 0);
    }
    // The same request again reuses the cache and gives the same numbers.
    std::vector<LoglikResult> again = lm.loglikelihoods(context, conts);
    for (size_t j = 0; j < conts.size(); ++j) EXPECT_DOUBLE_EQ(again[j].loglik, got[j].loglik);
  }
}

TEST_F(EvalLm, IsGreedyFollowsTheArgmax) {
  EvalModel lm(*model_, *tok_, {});
  std::vector<int32_t> ctx = tok_->encode("The", true, true);
  // Build the greedy continuation one token at a time, then check it is flagged greedy and a
  // different last token is not.
  std::vector<int32_t> cont;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> ids = ctx;
    ids.insert(ids.end(), cont.begin(), cont.end());
    Session s(*model_, 64, 512);
    Tensor logits = s.prefill(ids);
    const float* row = logits.as<float>();
    int32_t best = 0;
    for (int32_t v = 1; v < model_->config().vocab_size; ++v)
      if (row[v] > row[best]) best = v;
    cont.push_back(best);
  }
  EXPECT_TRUE(lm.loglikelihood(ctx, cont).is_greedy);
  std::vector<int32_t> other = cont;
  other.back() = (other.back() + 1) % model_->config().vocab_size;
  EXPECT_FALSE(lm.loglikelihood(ctx, other).is_greedy);
}

TEST_F(EvalLm, LeftTruncatesToMaxLength) {
  EvalModel lm(*model_, *tok_, {.max_length = 8, .batch_tokens = 512});
  std::vector<int32_t> ctx = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  std::vector<int32_t> cont = {15, 16, 17};
  // lm-eval keeps the last max_length + 1 tokens of context + continuation: 10..17 as inputs.
  const double got = lm.loglikelihood(ctx, cont).loglik;
  EXPECT_NEAR(got, reference({9, 10, 11, 12, 13, 14, 15, 16, 17}, 3), 2e-4);
  EXPECT_THROW(lm.loglikelihood(ctx, std::vector<int32_t>(9, 5)), Error);
}

TEST_F(EvalLm, RollingEqualsWholeSequenceWhenItFits) {
  EvalModel lm(*model_, *tok_, {.max_length = 2048, .batch_tokens = 7});
  const std::string text = "a few words of text to score as one document";
  int64_t n = 0;
  const double got = lm.loglikelihood_rolling(text, &n);
  std::vector<int32_t> ids = {lm.prefix_token()};
  std::vector<int32_t> toks = tok_->encode(text, false, true);
  ids.insert(ids.end(), toks.begin(), toks.end());
  EXPECT_EQ(n, static_cast<int64_t>(toks.size()));
  EXPECT_NEAR(got, reference(ids, toks.size()), 2e-4);
  // Windows of 4: the same tokens are predicted, each window conditioned on one token.
  EvalModel small(*model_, *tok_, {.max_length = 4, .batch_tokens = 512});
  const double windowed = small.loglikelihood_rolling(text);
  EXPECT_TRUE(std::isfinite(windowed));
  EXPECT_NE(windowed, got);
}

TEST_F(EvalLm, GreedyGenerationIsDeterministic) {
  EvalModel lm(*model_, *tok_, {.max_length = 256, .batch_tokens = 512});
  GenerateResult a = lm.generate_until("Q: what?\nA:", {"Q:"}, 12);
  GenerateResult b = lm.generate_until("Q: what?\nA:", {"Q:"}, 12);
  EXPECT_EQ(a.text, b.text);
  EXPECT_LE(a.tokens, 12);
  EXPECT_THROW(lm.generate_until("x", {}, 256), Error);
}

}  // namespace
}  // namespace skv::eval
