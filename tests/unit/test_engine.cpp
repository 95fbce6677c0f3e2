// The engine core: block accounting and the prefix cache, paged attention, and the engine's
// promises — batching, chunking, preemption and the prefix cache never change a request's
// tokens or log-probs; SwiftKV sends only logit rows through the later layers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "backend/ops.h"
#include "core/error.h"
#include "engine/block_manager.h"
#include "engine/engine.h"
#include "engine/engine_loop.h"
#include "engine/kv_cache.h"
#include "engine/kv_pool.h"
#include "model/llama.h"
#include "model_test_util.h"

namespace {

using skv::DType;
using skv::Tensor;
using skv::engine::BlockManager;
using skv::engine::BlockTable;
using skv::engine::Engine;
using skv::engine::EngineOptions;
using skv::engine::Event;
using skv::engine::Request;
using skv::testing::random_ids;

std::vector<int32_t> seq(int64_t n, int32_t start) {
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<int32_t>(i);
  return v;
}

// ---- block manager

TEST(BlockManager, AllocateGrowRelease) {
  BlockManager bm(8, 4, false);
  BlockTable t;
  ASSERT_TRUE(bm.allocate(t, seq(10, 0), 100));
  EXPECT_EQ(t.blocks.size(), 3u);  // 10 positions
  EXPECT_EQ(t.cached_tokens, 0);
  EXPECT_EQ(bm.num_free(), 5);
  ASSERT_TRUE(bm.grow(t, 13));
  EXPECT_EQ(t.blocks.size(), 4u);
  EXPECT_FALSE(bm.grow(t, 100));  // would need 25 blocks: refused, nothing taken
  EXPECT_EQ(t.blocks.size(), 4u);
  EXPECT_EQ(bm.num_free(), 4);
  BlockTable u;
  EXPECT_FALSE(bm.allocate(u, seq(20, 0), 100));  // 5 blocks, 4 free
  EXPECT_TRUE(u.blocks.empty());
  EXPECT_EQ(bm.num_free(), 4);
  ASSERT_TRUE(bm.allocate(u, seq(20, 0), 8));  // a chunk of 8 positions: 2 blocks
  EXPECT_EQ(u.blocks.size(), 2u);
  bm.release(t);
  bm.release(u);
  EXPECT_EQ(bm.num_free(), 8);
  std::vector<int32_t> all;
  BlockTable w;
  ASSERT_TRUE(bm.allocate(w, seq(32, 0), 32));
  all = w.blocks;
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, seq(8, 0));  // every block exactly once
}

TEST(BlockManager, PrefixCacheHitsFullBlocksAndNeverTheLastToken) {
  BlockManager bm(16, 4, true);
  const std::vector<int32_t> a = random_ids(10, 1000, 1);
  BlockTable t;
  ASSERT_TRUE(bm.allocate(t, a, 100));
  bm.commit(t, a, 10);  // blocks 0 and 1 are full and named
  bm.release(t);
  EXPECT_EQ(bm.num_free(), 16);

  // Same first 9 tokens, different 10th and more: both full blocks hit.
  std::vector<int32_t> b(a.begin(), a.begin() + 9);
  b.push_back(7);
  b.push_back(8);
  BlockTable u;
  ASSERT_TRUE(bm.allocate(u, b, 100));
  EXPECT_EQ(u.cached_tokens, 8);
  EXPECT_EQ(u.blocks.size(), 3u);
  bm.release(u);

  // A prompt of exactly 8 tokens: block 1 holds its last token, which must run.
  BlockTable v;
  ASSERT_TRUE(bm.allocate(v, std::vector<int32_t>(a.begin(), a.begin() + 8), 100));
  EXPECT_EQ(v.cached_tokens, 4);
  bm.release(v);

  // One changed token in block 0 changes every later name: no hit at all.
  std::vector<int32_t> c = a;
  c[1] += 1;
  BlockTable w;
  ASSERT_TRUE(bm.allocate(w, c, 100));
  EXPECT_EQ(w.cached_tokens, 0);
  bm.release(w);

  // Prefix caching off: nothing is ever found.
  BlockManager off(16, 4, false);
  BlockTable x;
  ASSERT_TRUE(off.allocate(x, a, 100));
  off.commit(x, a, 10);
  off.release(x);
  ASSERT_TRUE(off.allocate(x, a, 100));
  EXPECT_EQ(x.cached_tokens, 0);
}

TEST(BlockManager, SharedBlocksAreCountedAndEvictedLeastRecentlyFreedFirst) {
  BlockManager bm(6, 2, true);
  const std::vector<int32_t> a = {1, 2, 3, 4, 5};
  BlockTable t, u;
  ASSERT_TRUE(bm.allocate(t, a, 100));
  bm.commit(t, a, 5);
  ASSERT_TRUE(bm.allocate(u, a, 100));  // shares blocks 0, 1 with t
  EXPECT_EQ(u.cached_tokens, 4);
  EXPECT_EQ(bm.num_free(), 2);  // 3 for t, 1 more for u's last token
  bm.release(t);
  EXPECT_EQ(bm.num_free(), 3);  // the shared blocks are still u's
  bm.release(u);
  EXPECT_EQ(bm.num_free(), 6);
  // Fill the pool with other contents: the named blocks are evicted and their names dropped.
  const std::vector<int32_t> other = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  BlockTable w;
  ASSERT_TRUE(bm.allocate(w, other, 100));
  EXPECT_EQ(bm.num_free(), 0);
  bm.release(w);
  BlockTable x;
  ASSERT_TRUE(bm.allocate(x, a, 100));
  EXPECT_EQ(x.cached_tokens, 0);
}

TEST(KVPool, ParseBytes) {
  EXPECT_EQ(skv::engine::parse_bytes("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(skv::engine::parse_bytes("512MiB"), int64_t{512} << 20);
  EXPECT_EQ(skv::engine::parse_bytes("1.5G"), 1500000000);
  EXPECT_EQ(skv::engine::parse_bytes("3000000"), 3000000);
  EXPECT_EQ(skv::engine::parse_bytes("4kb"), 4000);
  for (const char* bad : {"", "GiB", "2 GiB", "-1", "1.2.3G", "2XB", "0"})
    EXPECT_THROW(skv::engine::parse_bytes(bad), skv::InputError) << bad;
}

// ---- paged attention

// The same bits as a contiguous cache, whatever the block size and the block order: keys reach
// the kernel in the same tiles, continuing one online softmax.
TEST(PagedAttention, EqualsContiguousBitForBitOverOddBlockSizesAndLengths) {
  std::mt19937 rng(5);
  const int64_t H = 6, KV = 2, D = 16;
  for (int64_t bs : {1, 3, 5, 16, 64, 100}) {
    for (int64_t total : {1, 7, 40, 129, 700}) {
      for (int64_t window : {0, 9}) {
        const int64_t n = std::min<int64_t>(total, 5), n_past = total - n;
        const int64_t blocks = (total + bs - 1) / bs, pool_blocks = blocks + 3;
        Tensor kc = skv::testing::randn({total, KV * D}, rng, 1.0f),
               vc = skv::testing::randn({total, KV * D}, rng, 1.0f);
        Tensor q = skv::testing::randn({n, H * D}, rng, 1.0f);
        // Scatter the contiguous cache over a shuffled table.
        std::vector<int32_t> table(pool_blocks);
        for (int64_t i = 0; i < pool_blocks; ++i) table[i] = static_cast<int32_t>(i);
        std::shuffle(table.begin(), table.end(), rng);
        table.resize(blocks);
        Tensor kp = Tensor::zeros(DType::F32, {pool_blocks * bs, KV * D}),
               vp = Tensor::zeros(DType::F32, {pool_blocks * bs, KV * D});
        for (int64_t p = 0; p < total; ++p) {
          const int64_t slot = table[p / bs] * bs + p % bs;
          std::copy(kc.as<float>() + p * KV * D, kc.as<float>() + (p + 1) * KV * D, kp.as<float>() + slot * KV * D);
          std::copy(vc.as<float>() + p * KV * D, vc.as<float>() + (p + 1) * KV * D, vp.as<float>() + slot * KV * D);
        }
        Tensor want = Tensor::empty(DType::F32, {n, H * D}), got = Tensor::empty(DType::F32, {n, H * D});
        skv::backend::attention(q, kc, vc, n_past, H, KV, 0.25f, want, window);
        const Tensor tt = skv::backend::host_i32(table.data(), blocks);
        skv::backend::attention(q, kp, vp, tt, bs, n_past, H, KV, 0.25f, got, window);
        EXPECT_TRUE(std::equal(got.as<float>(), got.as<float>() + got.numel(), want.as<float>()))
            << "bs " << bs << " total " << total << " window " << window;

        // Batch invariance: each row alone gives the same bits as in the block of n rows.
        for (int64_t i = 0; i < n; ++i) {
          Tensor one = Tensor::empty(DType::F32, {1, H * D});
          skv::backend::attention(q.row_block(i, 1), kp, vp, tt, bs, n_past + i, H, KV, 0.25f, one, window);
          EXPECT_TRUE(std::equal(one.as<float>(), one.as<float>() + H * D, got.as<float>() + i * H * D))
              << "row " << i << " bs " << bs << " total " << total;
        }
      }
    }
  }
}

// Compressed pools: attention over a pool stored in a KV dtype equals attention over the F32
// values that pool holds (it reads the format directly, block by block), and stays within a
// stated distance of attention over the original F32 keys and values.
TEST(PagedAttention, CompressedPoolsReadTheirOwnValues) {
  std::mt19937 rng(9);
  const int64_t H = 4, KV = 2, D = 64, bs = 16, total = 150, n = 6, n_past = total - n;
  const int64_t blocks = (total + bs - 1) / bs;
  Tensor kc = skv::testing::randn({total, KV * D}, rng, 1.0f), vc = skv::testing::randn({total, KV * D}, rng, 1.0f);
  Tensor q = skv::testing::randn({n, H * D}, rng, 0.5f);
  std::vector<int32_t> table(blocks);
  for (int64_t i = 0; i < blocks; ++i) table[i] = static_cast<int32_t>(blocks - 1 - i);
  const Tensor tt = skv::backend::host_i32(table.data(), blocks);
  Tensor exact = Tensor::empty(DType::F32, {n, H * D});
  skv::backend::attention(q, kc, vc, n_past, H, KV, 0.125f, exact);
  // Bounds on max |out - exact| for unit-variance K/V: the formats' rounding (f16 2^-11,
  // bf16 2^-8, q8_0 ~ max/254 per 32, MXFP8 E4M3 2^-4 relative) through softmax-weighted sums.
  const std::map<DType, float> bound = {
      {DType::F32, 0.0f}, {DType::F16, 2e-3f}, {DType::BF16, 1.5e-2f}, {DType::Q8_0, 2e-2f}, {DType::MXFP8, 8e-2f}};
  for (const auto& [dt, b] : bound) {
    Tensor kp = Tensor::empty(dt, {blocks * bs, KV * D}), vp = Tensor::empty(dt, {blocks * bs, KV * D});
    for (int64_t p = 0; p < total; ++p) {
      const int64_t slot = table[p / bs] * bs + p % bs;
      Tensor kd = kp.row_block(slot, 1), vd = vp.row_block(slot, 1);
      skv::backend::store_rows(kc.row_block(p, 1), kd);
      skv::backend::store_rows(vc.row_block(p, 1), vd);
    }
    // The values the pool holds, as a contiguous F32 cache.
    Tensor kf = Tensor::empty(DType::F32, {total, KV * D}), vf = Tensor::empty(DType::F32, {total, KV * D});
    for (int64_t p = 0; p < total; ++p) {
      const int64_t slot = table[p / bs] * bs + p % bs;
      Tensor kr = skv::backend::to_dtype(kp.row_block(slot, 1), DType::F32);
      Tensor vr = skv::backend::to_dtype(vp.row_block(slot, 1), DType::F32);
      std::copy(kr.as<float>(), kr.as<float>() + KV * D, kf.as<float>() + p * KV * D);
      std::copy(vr.as<float>(), vr.as<float>() + KV * D, vf.as<float>() + p * KV * D);
    }
    Tensor want = Tensor::empty(DType::F32, {n, H * D}), got = Tensor::empty(DType::F32, {n, H * D});
    skv::backend::attention(q, kf, vf, n_past, H, KV, 0.125f, want);
    skv::backend::attention(q, kp, vp, tt, bs, n_past, H, KV, 0.125f, got);
    float own = 0, vs_exact = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      own = std::max(own, std::fabs(got.as<float>()[i] - want.as<float>()[i]));
      vs_exact = std::max(vs_exact, std::fabs(got.as<float>()[i] - exact.as<float>()[i]));
    }
    EXPECT_EQ(own, 0.0f) << skv::dtype_name(dt);
    EXPECT_LE(vs_exact, b + 2e-6f) << skv::dtype_name(dt);
    std::printf("KV %-6s max |attention - F32 attention| = %.3g (bound %.3g)\n", skv::dtype_name(dt), vs_exact, b);
  }
}

// ---- the engine

struct Output {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<float> gaps;  // top-1 minus top-2 log-prob at each token (when 2+ alternatives were asked)
  std::string finish;
  int64_t cached = 0;
};
using Outputs = std::map<std::pair<uint64_t, int>, Output>;

void collect(const std::vector<Event>& events, Outputs& out) {
  for (const Event& e : events) {
    Output& o = out[{e.request, e.index}];
    o.tokens.insert(o.tokens.end(), e.tokens.begin(), e.tokens.end());
    for (const auto& lp : e.logprobs) {
      o.logprobs.push_back(lp.logprob);
      if (lp.top.size() >= 2) o.gaps.push_back(lp.top[0].second - lp.top[1].second);
    }
    if (e.finished) {
      o.finish = e.finish_reason;
      o.cached = e.usage.cached_tokens;
    }
  }
}

Outputs run(Engine& engine) {
  Outputs out;
  for (int guard = 0; engine.has_work(); ++guard) {
    if (guard > 100000) ADD_FAILURE() << "engine does not finish";
    collect(engine.step(), out);
  }
  return out;
}

struct Model {
  skv::model::LlamaModel model;
  explicit Model(skv::io::ModelFiles f) : model(std::move(f)) {}
};

// The batching tests' model, base or SwiftKV (M = 2 of 4), with float weights.
skv::io::ModelFiles tiny(bool swiftkv, uint32_t seed, int64_t max_len = 256) {
  skv::testing::TinyShape s;
  s.layers = 4;
  s.hidden = 64;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 16;
  s.ffn = 96;
  s.vocab = 96;
  skv::io::ModelFiles f = swiftkv ? skv::testing::swiftkv_model(s, 2, 1, seed) : skv::testing::base_model(s, seed);
  f.config.max_position_embeddings = max_len;
  return f;
}

skv::io::ModelFiles quantised(bool swiftkv, int64_t max_len = 256) {
  skv::io::ModelFiles f = tiny(swiftkv, 11, max_len);
  skv::testing::quantize_projections_q8_0(f);
  return f;
}

std::vector<Request> requests(int count, int64_t vocab, uint32_t seed, bool sampled) {
  std::mt19937 rng(seed);
  std::vector<Request> rs;
  const std::vector<int32_t> shared = random_ids(24, vocab, seed + 99);  // a common system prompt
  for (int i = 0; i < count; ++i) {
    Request r;
    const int64_t len = 3 + static_cast<int64_t>(rng() % 60);
    r.prompt = random_ids(len, vocab, seed + i);
    if (i % 3 == 0) r.prompt.insert(r.prompt.begin(), shared.begin(), shared.end());
    r.max_tokens = 4 + static_cast<int64_t>(rng() % 12);
    r.ignore_eos = true;
    r.logprobs = 2;
    if (sampled) {
      r.sampling.temperature = 0.9f;
      r.sampling.top_p = 0.95f;
      r.sampling.seed = 1000 + i;
      r.sampling.has_seed = true;
    } else {
      r.sampling.temperature = 0.0f;
    }
    rs.push_back(r);
  }
  return rs;
}

// Every request alone on a fresh engine, in order. Attention's partial sums follow the blocks,
// so results are invariant for one block size, which the comparison must share.
std::vector<Output> alone(const skv::model::LlamaModel& m, const std::vector<Request>& rs, int64_t block_size = 16) {
  std::vector<Output> out;
  for (const Request& r : rs) {
    EngineOptions o;
    o.num_kv_blocks = 256 / block_size;
    o.block_size = block_size;
    o.enable_prefix_caching = false;
    Engine e(m, nullptr, o);
    e.add(r);
    Outputs got = run(e);
    EXPECT_EQ(got.size(), 1u);
    out.push_back(got.begin()->second);
  }
  return out;
}

void expect_same(const std::vector<Output>& want, const Outputs& got, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t i = 0;
  for (const auto& [key, o] : got) {
    EXPECT_EQ(o.tokens, want[i].tokens) << what << ": request " << i;
    EXPECT_EQ(o.logprobs, want[i].logprobs) << what << ": request " << i;  // bit for bit
    EXPECT_EQ(o.finish, "length") << what;
    ++i;
  }
}

class EngineBatching : public ::testing::TestWithParam<bool> {};

TEST_P(EngineBatching, ConcurrentRequestsEqualEachAlone) {
  Model m(quantised(GetParam()));
  for (bool sampled : {false, true}) {
    const std::vector<Request> rs = requests(16, m.model.config().vocab_size, 3, sampled);
    const std::vector<Output> want = alone(m.model, rs);
    for (int64_t budget : {7, 64, 512}) {
      for (bool prefix : {true, false}) {
        EngineOptions o;
        o.num_kv_blocks = 512;
        o.block_size = 16;
        o.max_num_batched_tokens = budget;
        o.enable_prefix_caching = prefix;
        Engine e(m.model, nullptr, o);
        for (const Request& r : rs) e.add(r);
        const Outputs got = run(e);
        expect_same(want, got,
                    std::string(sampled ? "sampled" : "greedy") + " budget " + std::to_string(budget) +
                        (prefix ? " prefix cache" : " no prefix cache"));
        if (prefix) {
          int64_t cached = 0;
          for (const auto& [k, out] : got) cached += out.cached;
          EXPECT_GT(cached, 0) << "the shared system prompt was never found in the cache";
        }
        EXPECT_EQ(e.blocks().num_free(), 512) << "blocks leaked";
      }
    }
  }
}

TEST_P(EngineBatching, PreemptionWithSmallPoolCompletesEveryRequestUnchanged) {
  Model m(quantised(GetParam()));
  std::vector<Request> rs = requests(32, m.model.config().vocab_size, 8, false);
  for (Request& r : rs) r.max_tokens = 24;
  const std::vector<Output> want = alone(m.model, rs, 4);
  EngineOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 4;  // 256 positions for 32 requests of up to 111: they cannot all stay
  o.max_num_batched_tokens = 128;
  Engine e(m.model, nullptr, o);
  for (const Request& r : rs) e.add(r);
  const Outputs got = run(e);
  expect_same(want, got, "preemption");
  EXPECT_GT(e.counters().preemptions, 0);
  EXPECT_EQ(e.blocks().num_free(), 64);
}

// Float weights: prefill rows go through sgemm panels, whose rounding may depend on how many
// rows share a call. The rule for them: log-probs within 1e-4 of each request run alone, and
// the same greedy tokens except where the alone run's top two were within 1e-3 (a near-tie),
// after which the sequences may differ. Seeded sampling is held to the same rule (a draw near a
// boundary of the cumulative distribution is its near-tie). Ties are counted and printed.
TEST_P(EngineBatching, FloatWeightsMatchEachAloneUpToRounding) {
  Model m(tiny(GetParam(), 13));
  int requests_total = 0, bit_identical = 0, near_ties = 0, compared_tokens = 0;
  for (bool sampled : {false, true}) {
    const std::vector<Request> rs = requests(16, m.model.config().vocab_size, 5, sampled);
    const std::vector<Output> want = alone(m.model, rs);
    EngineOptions o;
    o.num_kv_blocks = 512;
    o.max_num_batched_tokens = 64;
    Engine e(m.model, nullptr, o);
    for (const Request& r : rs) e.add(r);
    const Outputs got = run(e);
    ASSERT_EQ(got.size(), want.size());
    size_t i = 0;
    for (const auto& [key, g] : got) {
      const Output& w = want[i++];
      ++requests_total;
      if (g.tokens == w.tokens && g.logprobs == w.logprobs) ++bit_identical;
      ASSERT_EQ(g.tokens.size(), w.tokens.size());
      for (size_t j = 0; j < w.tokens.size(); ++j) {
        if (g.tokens[j] != w.tokens[j]) {
          ASSERT_LT(j, w.gaps.size());
          if (!sampled) {
            EXPECT_LT(w.gaps[j], 1e-3f) << "request " << i - 1 << " token " << j << " is no near-tie";
          }
          ++near_ties;
          break;
        }
        ++compared_tokens;
        EXPECT_NEAR(g.logprobs[j], w.logprobs[j], 1e-4) << "request " << i - 1 << " token " << j;
      }
    }
  }
  std::printf(
      "[ report   ] float weights (%s): %d of %d requests bit-identical to running alone, %d diverged "
      "at a near-tie, %d tokens compared\n",
      GetParam() ? "SwiftKV" : "base", bit_identical, requests_total, near_ties, compared_tokens);
  EXPECT_LE(near_ties, 2) << "near-ties should be rare";
}

INSTANTIATE_TEST_SUITE_P(BaseAndSwiftKV, EngineBatching, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "SwiftKV" : "Base"; });

TEST(Engine, SwiftKVMixedStepSendsOnlyLogitRowsThroughLaterLayers) {
  Model m(quantised(true, 1024));
  ASSERT_TRUE(m.model.swiftkv_active());
  EngineOptions o;
  o.num_kv_blocks = 128;
  o.max_num_batched_tokens = 520;
  Engine e(m.model, nullptr, o);
  const int64_t vocab = m.model.config().vocab_size;
  for (int i = 0; i < 8; ++i) {
    Request r;
    r.prompt = random_ids(5, vocab, 50 + i);
    r.max_tokens = 50;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    e.add(r);
  }
  e.step();  // the 8 prompts
  const int64_t free_before = e.blocks().num_free();
  Request long_req;
  long_req.prompt = random_ids(512, vocab, 7);
  long_req.max_tokens = 4;
  long_req.sampling.temperature = 0;
  e.add(long_req);
  const auto before = e.counters();
  e.step();  // 8 decodes + the whole 512-token prompt, which completes
  const auto after = e.counters();
  EXPECT_EQ(after.early_rows - before.early_rows, 520);
  EXPECT_EQ(after.late_rows - before.late_rows, 9);
  EXPECT_EQ(after.prompt_rows - before.prompt_rows, 512);
  EXPECT_EQ(after.decode_rows - before.decode_rows, 8);
  // Cache: the long prompt holds what it would hold alone (32 blocks of 16), the decodes
  // stayed inside their first block.
  EXPECT_EQ(free_before - e.blocks().num_free(), 32);
  Engine lone(m.model, nullptr, o);
  lone.add(long_req);
  lone.step();
  EXPECT_EQ(o.num_kv_blocks - lone.blocks().num_free(), 32);
}

TEST(Engine, PromptLogprobsAreTheFullForwardOnSwiftKV) {
  Model m(quantised(true));
  const std::vector<int32_t> ids = random_ids(40, m.model.config().vocab_size, 4);
  EngineOptions o;
  o.num_kv_blocks = 64;
  o.max_num_batched_tokens = 16;  // chunked
  Engine e(m.model, nullptr, o);
  Request r;
  r.prompt = ids;
  r.max_tokens = 0;
  r.prompt_logprobs = 3;
  e.add(r);
  std::vector<skv::engine::TokenLogprob> got;
  while (e.has_work())
    for (const Event& ev : e.step()) got.insert(got.end(), ev.prompt_logprobs.begin(), ev.prompt_logprobs.end());
  ASSERT_EQ(got.size(), ids.size() - 1);
  // Reference: every position through every layer in one forward (Logits::All).
  skv::model::ForwardContext ctx(m.model);
  skv::engine::KVCache cache = skv::engine::make_cache(m.model, 64);
  Tensor logits = m.model.forward(ctx, cache, ids.data(), 40, 0, skv::model::Logits::All);
  skv::backend::log_softmax_rows(logits);
  const int64_t vocab = m.model.config().vocab_size;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, ids[i + 1]);
    EXPECT_NEAR(got[i].logprob, logits.as<float>()[i * vocab + ids[i + 1]], 2e-5) << i;
    ASSERT_EQ(got[i].top.size(), 3u);
    EXPECT_GE(got[i].top[0].second, got[i].top[1].second);
  }
}

TEST(Engine, ContinuationLogprobsReuseTheCachedContext) {
  Model m(quantised(true));
  const int64_t vocab = m.model.config().vocab_size;
  const std::vector<int32_t> context = random_ids(40, vocab, 9);
  EngineOptions o;
  o.num_kv_blocks = 64;
  o.max_num_batched_tokens = 24;
  Engine e(m.model, nullptr, o);
  std::vector<std::vector<int32_t>> seqs;
  for (int c = 0; c < 3; ++c) {
    std::vector<int32_t> ids = context;
    const std::vector<int32_t> cont = random_ids(5 + c, vocab, 20 + c);
    ids.insert(ids.end(), cont.begin(), cont.end());
    seqs.push_back(ids);
  }
  std::map<uint64_t, size_t> which;
  std::map<size_t, std::vector<skv::engine::TokenLogprob>> got;
  std::map<size_t, int64_t> cached;
  for (size_t c = 0; c < seqs.size(); ++c) {
    Request r;
    r.prompt = seqs[c];
    r.max_tokens = 0;
    r.prompt_logprobs = 0;
    r.prompt_logprobs_from = 40;
    which[e.add(r)] = c;
    if (c == 0) {  // let the first one fill the cache
      while (e.has_work())
        for (const Event& ev : e.step()) {
          got[0].insert(got[0].end(), ev.prompt_logprobs.begin(), ev.prompt_logprobs.end());
          if (ev.finished) cached[0] = ev.usage.cached_tokens;
        }
    }
  }
  while (e.has_work())
    for (const Event& ev : e.step()) {
      const size_t c = which.at(ev.request);
      got[c].insert(got[c].end(), ev.prompt_logprobs.begin(), ev.prompt_logprobs.end());
      if (ev.finished) cached[c] = ev.usage.cached_tokens;
    }
  EXPECT_EQ(cached[0], 0);
  for (size_t c = 0; c < seqs.size(); ++c) {
    if (c > 0) {
      EXPECT_EQ(cached[c], 32) << "the shared context was recomputed";
    }
    ASSERT_EQ(got[c].size(), seqs[c].size() - 40);
    skv::model::ForwardContext ctx(m.model);
    skv::engine::KVCache cache = skv::engine::make_cache(m.model, 64);
    Tensor logits =
        m.model.forward(ctx, cache, seqs[c].data(), static_cast<int64_t>(seqs[c].size()), 0, skv::model::Logits::All);
    skv::backend::log_softmax_rows(logits);
    for (size_t i = 0; i < got[c].size(); ++i)
      EXPECT_NEAR(got[c][i].logprob, logits.as<float>()[(39 + i) * vocab + seqs[c][40 + i]], 2e-5) << c << " " << i;
  }
}

TEST(Engine, SamplesOfOneRequestShareThePromptAndDiffer) {
  Model m(quantised(false));
  EngineOptions o;
  o.num_kv_blocks = 64;
  Engine e(m.model, nullptr, o);
  Request r;
  r.prompt = random_ids(50, m.model.config().vocab_size, 2);
  r.n = 3;
  r.max_tokens = 10;
  r.ignore_eos = true;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 5;
  r.sampling.has_seed = true;
  e.add(r);
  const Outputs got = run(e);
  ASSERT_EQ(got.size(), 3u);
  std::vector<std::vector<int32_t>> outs;
  for (const auto& [k, o2] : got) {
    outs.push_back(o2.tokens);
    if (k.second > 0) {
      EXPECT_EQ(o2.cached, 48) << "sample " << k.second << " recomputed the prompt";
    }
  }
  EXPECT_TRUE(outs[0] != outs[1] || outs[1] != outs[2]);
}

TEST(Engine, EveryKVDtypeServesAndF32IsUnchanged) {
  skv::testing::TinyShape s;
  s.layers = 3;
  s.hidden = 128;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  s.ffn = 96;
  s.vocab = 96;
  skv::io::ModelFiles f = skv::testing::base_model(s, 4);
  skv::testing::quantize_projections_q8_0(f);
  Model m(std::move(f));
  const std::vector<Request> rs = requests(6, s.vocab, 5, false);
  std::map<DType, Outputs> out;
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::MXFP8}) {
    EngineOptions o;
    o.num_kv_blocks = 64;
    o.kv_dtype = dt;
    Engine e(m.model, nullptr, o);
    EXPECT_EQ(e.kv_bytes_per_token(), 3 * 2 * skv::dtype_row_bytes(dt, 64)) << skv::dtype_name(dt);
    for (const Request& r : rs) e.add(r);
    out[dt] = run(e);
    ASSERT_EQ(out[dt].size(), rs.size()) << skv::dtype_name(dt);
    EXPECT_EQ(e.blocks().num_free(), 64);
  }
  expect_same(alone(m.model, rs), out[DType::F32], "f32 pool");
  // A gross check only: this random model's logits are peaked (typical log-probs near -12), so
  // it amplifies cache rounding far more than a trained one (docs/benchmarks.md measures the
  // real model); reading a pool wrongly moves log-probs by whole units.
  const std::map<DType, float> bound = {
      {DType::F16, 0.6f}, {DType::BF16, 0.6f}, {DType::Q8_0, 1.0f}, {DType::MXFP8, 2.0f}};
  for (const auto& [dt, b] : bound) {
    float worst = 0;
    for (const auto& [k, o] : out[dt]) {
      const Output& ref = out[DType::F32].at(k);
      for (size_t i = 0; i < std::min(o.logprobs.size(), ref.logprobs.size()) && o.tokens[i] == ref.tokens[i]; ++i)
        worst = std::max(worst, std::fabs(o.logprobs[i] - ref.logprobs[i]));
    }
    EXPECT_LT(worst, b) << skv::dtype_name(dt);
    std::printf("KV %-6s: max |log-prob - F32 cache's| %.3g on the random model\n", skv::dtype_name(dt), worst);
  }
  // Head dims that do not fill a block are refused for the block formats.
  EngineOptions bad;
  bad.num_kv_blocks = 8;
  bad.kv_dtype = DType::Q8_0;
  Model small(quantised(false));  // head_dim 16
  EXPECT_THROW(Engine(small.model, nullptr, bad), skv::InputError);
}

TEST(Engine, AbortFreesBlocks) {
  Model m(quantised(false));
  EngineOptions o;
  o.num_kv_blocks = 32;
  Engine e(m.model, nullptr, o);
  Request r;
  r.prompt = random_ids(30, m.model.config().vocab_size, 2);
  r.max_tokens = 100;
  r.ignore_eos = true;
  const auto id = e.add(r);
  Outputs got;
  collect(e.step(), got);
  collect(e.step(), got);
  EXPECT_LT(e.blocks().num_free(), 32);
  e.abort(id);
  while (e.has_work()) collect(e.step(), got);
  EXPECT_EQ(got.begin()->second.finish, "abort");
  EXPECT_EQ(got.begin()->second.tokens.size(), 2u);
  EXPECT_EQ(e.blocks().num_free(), 32);
}

TEST(Engine, RejectsBadRequestsWithClearErrors) {
  Model m(quantised(false, 64));
  EngineOptions o;
  o.num_kv_blocks = 32;
  Engine e(m.model, nullptr, o);
  EXPECT_EQ(e.max_model_len(), 64);
  Request r;
  EXPECT_THROW(e.add(r), skv::InputError);  // empty prompt
  r.prompt = {1, 2, 500};
  EXPECT_THROW(e.add(r), skv::InputError);  // id out of range
  r.prompt = random_ids(64, 96, 1);
  try {
    e.add(r);
    ADD_FAILURE() << "a prompt at the model length was accepted";
  } catch (const skv::InputError& err) {
    EXPECT_NE(std::string(err.what()).find("model length"), std::string::npos) << err.what();
  }
  r.prompt = {1, 2};
  r.n = 0;
  EXPECT_THROW(e.add(r), skv::InputError);
  r.n = 1;
  r.logprobs = 21;
  EXPECT_THROW(e.add(r), skv::InputError);
  r.logprobs = -1;
  r.stop = {"x"};
  EXPECT_THROW(e.add(r), skv::InputError);  // stop strings without a tokenizer
  EXPECT_FALSE(e.has_work());
  // A model length the pool cannot hold.
  EngineOptions big = o;
  big.max_model_len = 10000;
  EXPECT_THROW(Engine(m.model, nullptr, big), skv::ResourceError);
  // The default model length shrinks to what the pool holds.
  EngineOptions tiny = o;
  tiny.num_kv_blocks = 2;
  Engine small(m.model, nullptr, tiny);
  EXPECT_EQ(small.max_model_len(), 32);
}

TEST(EngineLoop, ManyThreadsSubmitAndAbortWhileTheLoopRuns) {
  Model m(quantised(false));
  const std::vector<Request> rs = requests(24, m.model.config().vocab_size, 12, false);
  const std::vector<Output> want = alone(m.model, rs);
  EngineOptions o;
  o.num_kv_blocks = 256;
  o.max_num_batched_tokens = 48;
  Engine e(m.model, nullptr, o);
  std::mutex mu;
  std::map<size_t, Output> got;
  {
    skv::engine::EngineLoop loop(e);
    EXPECT_THROW(loop.submit(Request{}, {}), skv::InputError);  // refused on the caller's thread
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (size_t i = t; i < rs.size(); i += 4) {
          loop.submit(rs[i], [&, i](const Event& ev) {
            std::lock_guard<std::mutex> lock(mu);
            Output& out = got[i];
            out.tokens.insert(out.tokens.end(), ev.tokens.begin(), ev.tokens.end());
            for (const auto& lp : ev.logprobs) out.logprobs.push_back(lp.logprob);
            if (ev.finished) out.finish = ev.finish_reason;
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    // One more that is aborted from another thread while it runs.
    Request endless = rs[0];
    endless.max_tokens = 200;
    std::atomic<bool> aborted{false};
    const auto id = loop.submit(endless, [&](const Event& ev) {
      if (ev.finished) aborted = ev.finish_reason == "abort";
    });
    std::thread([&] { loop.abort(id); }).join();
    loop.drain_and_stop(120);
    EXPECT_TRUE(aborted);
    EXPECT_THROW(loop.submit(rs[0], {}), skv::ResourceError);  // shutting down
  }
  ASSERT_EQ(got.size(), rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << i;
    EXPECT_EQ(got[i].logprobs, want[i].logprobs) << i;
    EXPECT_EQ(got[i].finish, "length") << i;
  }
  EXPECT_EQ(e.blocks().num_free(), 256);
}

}  // namespace
