// The evaluation scorer on the tiny random Llama fixture: its log-likelihoods equal the sums of
// Session::score's per-token log-probabilities (which run every token through every layer in
// one pass), whatever the engine's steps, prefix cache or truncation on the way.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "engine/session.h"
#include "eval/lm.h"
#include "eval/runner.h"
#include "io/model_files.h"
#include "model/llama.h"
#include "model/swiftkv.h"
#include "tokenizer/tokenizer.h"

namespace skv::eval {
namespace {

const std::string kModel = std::string(SKV_SOURCE_DIR) + "/tests/fixtures/models/llama_gqa";

class EvalLm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = model::LlamaModel::load(kModel).release();
    tok_ = tokenizer::Tokenizer::from_path(kModel).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
  }
  // Reference: sum of score()'s log-probs of the last m tokens of ids.
  double reference(const std::vector<int32_t>& ids, size_t m) {
    engine::Session s(*model_, ids.size() + 1, 512);
    std::vector<double> lp = s.score(ids);
    double sum = 0;
    for (size_t i = ids.size() - m; i < ids.size(); ++i) sum += lp[i];
    return sum;
  }
  static model::LlamaModel* model_;
  static tokenizer::Tokenizer* tok_;
};
model::LlamaModel* EvalLm::model_ = nullptr;
tokenizer::Tokenizer* EvalLm::tok_ = nullptr;

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
  auto tok = tokenizer::Tokenizer::from_tokenizer_json(std::string(SKV_SOURCE_DIR) +
                                                       "/tests/fixtures/tokenizer/llama3_style.json");
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
    // The same request again takes its context from the prefix cache and gives the same numbers
    // up to float rounding (its rows run in GEMM blocks of another size).
    std::vector<LoglikResult> again = lm.loglikelihoods(context, conts);
    for (size_t j = 0; j < conts.size(); ++j) {
      EXPECT_NEAR(again[j].loglik, got[j].loglik, 1e-4);
      EXPECT_EQ(again[j].is_greedy, got[j].is_greedy);
    }
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
    engine::Session s(*model_, 64, 512);
    engine::GenerationOptions greedy;
    greedy.sampling.temperature = 0;  // argmax, ties to the lowest id
    greedy.max_tokens = 1;
    greedy.ignore_eos = true;
    cont.push_back(s.generate(ids, greedy).tokens.at(0));
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

// loglikelihood_batch against loglikelihood() one request at a time, on the plain fixture and
// on a SwiftKV conversion of it (whose prefix rows stop at layer M).
void expect_batch_equals_one_by_one(model::LlamaModel& model, const tokenizer::Tokenizer& tok) {
  std::vector<EvalModel::Request> reqs;
  const std::string preamble = "Q: a long shared preamble of a few shot prompt with examples\nA: yes\n\n";
  for (const std::string q : {"Q: first?\nA:", "Q: the second one?\nA:"})
    for (const std::string c : {" apple", " a red brick wall", " stone"}) {
      EvalModel enc(model, tok, {});
      reqs.push_back(enc.encode_pair(preamble + q, c));
    }
  reqs.push_back({{7}, {8, 9, 10}});  // one-token context: no prefix
  std::vector<int32_t> long_ctx(30);
  std::iota(long_ctx.begin(), long_ctx.end(), 5);
  reqs.push_back({long_ctx, {40, 41, 42}});  // truncated at max_length 24
  reqs.push_back({long_ctx, {40, 41}});      // truncated by one token less: another group
  const EvalModel::Request duplicate = reqs[0];
  reqs.push_back(duplicate);
  for (int64_t batch : {1, 5, 512}) {
    for (int64_t max_length : {24, 2048}) {
      EvalModel one(model, tok, {.max_length = max_length, .batch_tokens = 512});
      EvalModel lm(model, tok, {.max_length = max_length, .batch_tokens = batch});
      std::vector<LoglikResult> got = lm.loglikelihood_batch(reqs);
      ASSERT_EQ(got.size(), reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        const LoglikResult want = one.loglikelihood(reqs[i].first, reqs[i].second);
        EXPECT_NEAR(got[i].loglik, want.loglik, 1e-4) << "batch " << batch << " max_length " << max_length << " #" << i;
        EXPECT_EQ(got[i].is_greedy, want.is_greedy) << i;
        EXPECT_EQ(got[i].tokens, want.tokens) << i;
      }
    }
  }
}

TEST_F(EvalLm, LoglikelihoodBatchEqualsOneByOne) { expect_batch_equals_one_by_one(*model_, *tok_); }

TEST_F(EvalLm, LoglikelihoodBatchEqualsOneByOneOnSwiftKV) {
  io::ModelFiles f = io::open_model_files(kModel);
  model::add_swiftkv_tensors(f, 1, 2);
  model::LlamaModel skv(std::move(f));
  ASSERT_TRUE(skv.swiftkv_active());
  expect_batch_equals_one_by_one(skv, *tok_);
}

TEST_F(EvalLm, LoglikelihoodBatchSharesContextsThroughThePrefixCache) {
  EvalModel lm(*model_, *tok_, {.max_length = 2048, .batch_tokens = 512});
  const int64_t block = lm.engine().options().block_size;
  ASSERT_EQ(block, 16);
  std::vector<int32_t> preamble(40);  // two full blocks and part of a third
  std::iota(preamble.begin(), preamble.end(), 3);
  auto item = [&](std::vector<int32_t> question) {
    std::vector<int32_t> ctx = preamble;
    ctx.insert(ctx.end(), question.begin(), question.end());
    return std::vector<EvalModel::Request>{{ctx, {30, 31}}, {ctx, {32}}, {ctx, {33, 34, 35}}};
  };
  auto hits = [](const EvalModel& m) { return m.engine().counters().prefix_hit_tokens; };
  // The first item: the first choice computes the context, the other two take its full blocks
  // (the 43-token context holds two) from the prefix cache instead of computing them alongside.
  std::vector<LoglikResult> a = lm.loglikelihood_batch(item({100, 101, 102}));
  EXPECT_EQ(hits(lm), 2 * 2 * block);
  // The next item, in another call, finds the preamble's blocks kept from the first.
  const int64_t h0 = hits(lm);
  std::vector<LoglikResult> b = lm.loglikelihood_batch(item({110, 111, 112, 113}));
  EXPECT_EQ(hits(lm) - h0, 3 * 2 * block);
  // Both items in one call of a fresh scorer: everything after the first request shares its
  // preamble blocks, and the results are those of the separate calls.
  EvalModel fresh(*model_, *tok_, {.max_length = 2048, .batch_tokens = 512});
  std::vector<EvalModel::Request> both = item({100, 101, 102});
  for (auto& r : item({110, 111, 112, 113})) both.push_back(r);
  std::vector<LoglikResult> ab = fresh.loglikelihood_batch(both);
  EXPECT_EQ(hits(fresh), 5 * 2 * block);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(ab[i].loglik, a[i].loglik, 1e-4);
    EXPECT_NEAR(ab[3 + i].loglik, b[i].loglik, 1e-4);
    EXPECT_NEAR(ab[3 + i].loglik, lm.loglikelihood(both[3 + i].first, both[3 + i].second).loglik, 1e-4);
  }
  EXPECT_THROW(lm.loglikelihood_batch({{{1, 2}, {}}}), Error);
  EXPECT_THROW(lm.loglikelihood_batch({{{}, {1}}}), Error);
  EvalModel small(*model_, *tok_, {.max_length = 4, .batch_tokens = 512});
  EXPECT_THROW(small.loglikelihood_batch({{{1, 2}, {3, 4, 5, 6, 7}}}), Error);
  EXPECT_THROW(lm.loglikelihood_batch({{{1, 2}, {100000}}}), Error);
  // A failed call leaves nothing behind: the scorer goes on.
  EXPECT_NEAR(lm.loglikelihood_batch(item({100, 101, 102}))[0].loglik, a[0].loglik, 1e-4);
}

// run_task: a batch of many items gives the log-likelihoods and predictions of one item at a
// time (--batch-tokens 1: every block is one item, every forward one row).
TEST_F(EvalLm, RunTaskDoesNotDependOnTheBatchSize) {
  Task task;
  task.name = "synthetic";
  task.metrics = {"acc", "acc_norm"};
  const std::vector<std::string> questions = {"Which is a fruit?",        "What is red?",
                                              "Where is the sea?",        "Who wrote it?",
                                              "How many legs has a cat?", "Is water wet?"};
  for (size_t i = 0; i < questions.size(); ++i) {
    Doc d;
    d.text = "Question: " + questions[i] + "\nAnswer:";
    d.choices = {"apple", "a red brick wall", "stone", "the number " + std::to_string(i)};
    d.gold = static_cast<int>(i % 4);
    task.docs.push_back(d);
  }
  task.description = "The following are questions.\n\n";
  auto run = [&](int64_t batch, int shots) {
    EvalModel lm(*model_, *tok_, {.max_length = 2048, .batch_tokens = batch});
    std::ostringstream samples;
    Progress progress("eval", "items", task.docs.size(), 0, false);
    RunOptions opts;
    opts.num_fewshot = shots;
    opts.samples = &samples;
    TaskResult r = run_task(lm, task, opts, progress);
    std::vector<nlohmann::json> lines;
    std::istringstream in(samples.str());
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return std::make_pair(r, lines);
  };
  for (int shots : {0, 2}) {
    auto [r1, s1] = run(1, shots);
    auto [rb, sb] = run(4096, shots);
    ASSERT_EQ(s1.size(), task.docs.size());
    ASSERT_EQ(sb.size(), task.docs.size());
    for (size_t i = 0; i < s1.size(); ++i) {
      EXPECT_EQ(s1[i]["doc_id"], sb[i]["doc_id"]);
      EXPECT_EQ(s1[i]["pred"], sb[i]["pred"]) << i;
      EXPECT_EQ(s1[i]["pred_norm"], sb[i]["pred_norm"]) << i;
      EXPECT_EQ(s1[i]["is_greedy"], sb[i]["is_greedy"]) << i;
      for (size_t j = 0; j < 4; ++j)
        EXPECT_NEAR(s1[i]["loglikelihoods"][j].get<double>(), sb[i]["loglikelihoods"][j].get<double>(), 1e-4);
    }
    ASSERT_EQ(r1.metrics.size(), rb.metrics.size());
    for (size_t k = 0; k < r1.metrics.size(); ++k) EXPECT_EQ(r1.metrics[k], rb.metrics[k]);
  }
}

}  // namespace skv::eval
