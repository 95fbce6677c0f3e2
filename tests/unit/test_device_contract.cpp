// The op contract of backend/backend.h, proven end to end: models run on a test-only device
// whose memory faults when host code touches it (guarded_device.h). A forward pass, batched
// forwards, scoring, generation and the evaluation scorer run there and agree with the host.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "engine/kv_cache.h"
#include "engine/session.h"
#include "eval/lm.h"
#include "guarded_device.h"
#include "io/model_files.h"
#include "model/llama.h"
#include "model/swiftkv.h"
#include "model_test_util.h"
#include "tokenizer/tokenizer.h"

namespace skv {
namespace {

using testing::GuardedDevice;

using testing::random_ids;
const auto fixture = testing::model_fixture;

TEST(GuardedDevice, HostAccessFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Tensor t = Tensor::zeros(DType::F32, {4, 4}, GuardedDevice::instance().device());
  ASSERT_TRUE(GuardedDevice::instance().contains(t.data));
  // Through the primitives the values are there...
  const Tensor h = backend::to_host(t);
  EXPECT_EQ(h.as<float>()[5], 0.0f);
  EXPECT_NE(h.data, t.data);
  // ...and touching them directly is fatal, which is what makes the tests below a proof.
  EXPECT_DEATH({ std::printf("%f\n", static_cast<double>(*static_cast<volatile float*>(t.data))); }, "");
}

// A model's SwiftKV variant, for checkpoints that are plain: converted in memory.
io::ModelFiles open_variant(const std::string& name, int64_t m, int64_t g) {
  io::ModelFiles f = io::open_model_files(fixture(name));
  if (m > 0) model::add_swiftkv_tensors(f, m, g);
  return f;
}

struct Case {
  const char* name;
  const char* dir;
  int64_t m, g;  // SwiftKV conversion; m = 0: the model as it is
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class DeviceContract : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case c = GetParam();
    host_ = std::make_unique<model::LlamaModel>(open_variant(c.dir, c.m, c.g));
    dev_ = std::make_unique<model::LlamaModel>(open_variant(c.dir, c.m, c.g),
                                               model::ModelOptions{.device = GuardedDevice::instance().device()});
    tok_ = tokenizer::Tokenizer::from_path(fixture(c.dir));
    ASSERT_EQ(dev_->swiftkv_active(), c.m > 0);
  }
  std::unique_ptr<model::LlamaModel> host_, dev_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

TEST_P(DeviceContract, ScoreAndGenerateMatchTheHost) {
  const std::vector<int32_t> ids = random_ids(45, host_->config().vocab_size, 3);
  engine::Session hs(*host_, 64, 16, tok_.get()), ds(*dev_, 64, 16, tok_.get());  // batch 16: chunked prefill
  const std::vector<double> a = hs.score(ids), b = ds.score(ids);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 1; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;

  engine::GenerationOptions opts;
  opts.sampling.temperature = 0;
  opts.max_tokens = 12;
  opts.ignore_eos = true;
  const std::vector<int32_t> prompt(ids.begin(), ids.begin() + 20);
  const engine::GenerationResult g1 = hs.generate(prompt, opts), g2 = ds.generate(prompt, opts);
  EXPECT_EQ(g1.tokens, g2.tokens);
  EXPECT_EQ(g1.text, g2.text);
}

TEST_P(DeviceContract, BatchedForwardMatchesTheHost) {
  const int64_t vocab = host_->config().vocab_size;
  const std::vector<std::vector<int32_t>> ids = {random_ids(9, vocab, 1), random_ids(5, vocab, 2),
                                                 random_ids(13, vocab, 4)};
  const model::Logits which[] = {model::Logits::All, model::Logits::Last, model::Logits::None};
  auto run = [&](const model::LlamaModel& m) {
    std::vector<engine::KVCache> caches;
    for (size_t i = 0; i < ids.size(); ++i) caches.push_back(engine::make_cache(m, 32));
    model::ForwardContext ctx(m);
    std::vector<model::SeqChunk> chunks;
    for (size_t i = 0; i < ids.size(); ++i)
      chunks.push_back({.kv = caches[i].view(),
                        .ids = ids[i].data(),
                        .n = static_cast<int64_t>(ids[i].size()),
                        .n_past = 0,
                        .which = which[i]});
    m.forward_batch(ctx, chunks);
    std::vector<Tensor> out;
    for (const model::SeqChunk& c : chunks)
      out.push_back(c.logits.defined() ? backend::clone(c.logits, kHost) : Tensor());
    // A decode step of every sequence on the caches just filled.
    std::vector<int32_t> next = {7, 8, 9};
    for (size_t i = 0; i < ids.size(); ++i)
      chunks[i] = {.kv = caches[i].view(),
                   .ids = &next[i],
                   .n = 1,
                   .n_past = static_cast<int64_t>(ids[i].size()),
                   .which = model::Logits::Last};
    m.forward_batch(ctx, chunks);
    for (const model::SeqChunk& c : chunks) out.push_back(backend::clone(c.logits, kHost));
    return out;
  };
  const std::vector<Tensor> a = run(*host_), b = run(*dev_);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].defined(), b[i].defined()) << i;
    if (!a[i].defined()) continue;
    EXPECT_FALSE(GuardedDevice::instance().contains(b[i].data));
    ASSERT_EQ(a[i].numel(), b[i].numel());
    for (int64_t j = 0; j < a[i].numel(); ++j) ASSERT_NEAR(a[i].as<float>()[j], b[i].as<float>()[j], 1e-5) << i;
  }
}

TEST_P(DeviceContract, EvalScorerMatchesTheHost) {
  const int64_t vocab = host_->config().vocab_size;
  std::vector<eval::EvalModel::Request> reqs;
  for (uint32_t s = 0; s < 4; ++s)
    reqs.emplace_back(random_ids(6 + s, vocab, 10 + s), random_ids(3 + s, vocab, 20 + s));
  eval::EvalModel he(*host_, *tok_, {}), de(*dev_, *tok_, {});
  const auto a = he.loglikelihood_batch(reqs), b = de.loglikelihood_batch(reqs);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i].loglik, b[i].loglik, 1e-4) << i;
    EXPECT_EQ(a[i].is_greedy, b[i].is_greedy) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DeviceContract,
                         ::testing::Values(Case{"llama_gqa", "llama_gqa", 0, 0}, Case{"qwen2_bias", "qwen2_bias", 0, 0},
                                           Case{"llama_bf16", "llama_bf16", 0, 0}, Case{"qwen3", "qwen3", 0, 0},
                                           Case{"mistral_window", "mistral_window", 0, 0},
                                           Case{"qwen3_swiftkv", "qwen3", 1, 1},
                                           Case{"mistral_window_swiftkv", "mistral_window", 1, 1},
                                           Case{"llama_gqa_swiftkv_g2", "llama_gqa", 1, 2},
                                           Case{"qwen2_bias_swiftkv", "qwen2_bias", 1, 1}),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace skv
