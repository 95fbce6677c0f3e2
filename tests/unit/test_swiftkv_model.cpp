// SwiftKV inference: the skipping path (prompt rows stop at layer M) must give exactly the
// logits of the SwiftKV model's full forward, the teacher path must be the base model, and
// the KV cache / FLOP accounting must follow the layout. Models are random, built in memory.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/ops.h"
#include "core/error.h"
#include "engine/kv_cache.h"
#include "model/llama.h"
#include "model/swiftkv.h"
#include "model_test_util.h"

namespace {

using skv::DType;
using skv::Tensor;
using skv::model::Logits;

using skv::testing::base_model;
using skv::testing::randn;
using skv::testing::swiftkv_model;
using Shape = skv::testing::TinyShape;

using skv::testing::random_ids;

float max_abs_diff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

struct Case {
  Shape shape;
  int64_t m, g;
};

// forward() with a context of its own and the logits copied out of it, so that several
// results can be kept and compared.
Tensor fwd(const skv::model::LlamaModel& m, skv::engine::KVCache& cache, const int32_t* ids, int64_t n, int64_t n_past,
           Logits which) {
  skv::model::ForwardContext ctx(m);
  Tensor t = m.forward(ctx, cache, ids, n, n_past, which);
  return t.defined() ? skv::backend::clone(t) : t;
}

class SwiftKVModel : public ::testing::TestWithParam<Case> {};

TEST_P(SwiftKVModel, SkippingEqualsFullForward) {
  const Case c = GetParam();
  skv::model::LlamaModel model(swiftkv_model(c.shape, c.m, c.g, 7));
  ASSERT_TRUE(model.swiftkv_active());
  EXPECT_EQ(model.kv_layout().cache_layers(), c.m + (c.shape.layers - c.m) / c.g);
  const int64_t n = 37, vocab = c.shape.vocab;
  const std::vector<int32_t> ids = random_ids(n + 3, vocab, 11);

  skv::engine::KVCache full_cache = skv::engine::make_cache(model, 64);
  Tensor all = fwd(model, full_cache, ids.data(), n, 0, Logits::All);
  skv::engine::KVCache cache = skv::engine::make_cache(model, 64);
  Tensor last = fwd(model, cache, ids.data(), n, 0, Logits::Last);
  EXPECT_LT(max_abs_diff(last.as<float>(), all.as<float>() + (n - 1) * vocab, vocab), 1e-4f);

  // Every cache layer holds the same K/V whichever rows went on to the later layers.
  for (int64_t l = 0; l < cache.num_layers(); ++l) {
    EXPECT_LT(max_abs_diff(cache.k[l].as<float>(), full_cache.k[l].as<float>(), n * cache.row), 1e-5f) << l;
    EXPECT_LT(max_abs_diff(cache.v[l].as<float>(), full_cache.v[l].as<float>(), n * cache.row), 1e-5f) << l;
  }

  // Chunked prefill (rows that return nothing skip layers >= M entirely), then decode steps,
  // against the full forward of the whole sequence.
  skv::engine::KVCache chunked = skv::engine::make_cache(model, 64);
  EXPECT_FALSE(fwd(model, chunked, ids.data(), 10, 0, Logits::None).defined());
  Tensor prev = fwd(model, chunked, ids.data() + 10, n - 10, 10, Logits::Last);
  EXPECT_LT(max_abs_diff(prev.as<float>(), last.as<float>(), vocab), 1e-4f);
  skv::engine::KVCache ref_cache = skv::engine::make_cache(model, 64);
  Tensor ref = fwd(model, ref_cache, ids.data(), n + 3, 0, Logits::All);
  for (int64_t i = n; i < n + 3; ++i) {
    Tensor step = fwd(model, chunked, &ids[i], 1, i, Logits::Last);
    EXPECT_LT(max_abs_diff(step.as<float>(), ref.as<float>() + i * vocab, vocab), 1e-4f) << "decode step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, SwiftKVModel,
                         ::testing::Values(Case{Shape{}, 4, 1}, Case{Shape{}, 3, 2}, Case{Shape{}, 1, 4},
                                           Case{Shape{}, 1, 1}, Case{Shape{.kv_heads = 4}, 3, 1},       // MHA
                                           Case{Shape{.kv_heads = 1, .tied = true}, 1, 2},              // MQA, tied
                                           Case{Shape{.heads = 6, .kv_heads = 3, .bias = true}, 2, 3},  // biases, G = 3
                                           Case{Shape{.arch = skv::model::Arch::Qwen2}, 3, 2},
                                           // Qwen3: q/k norms, head_dim 12 != 32 / 4, tied
                                           Case{Shape{.head_dim = 12, .tied = true, .arch = skv::model::Arch::Qwen3}, 1,
                                                2},
                                           Case{Shape{.head_dim = 12, .arch = skv::model::Arch::Qwen3}, 3, 1},
                                           // Mistral: a window shorter than the 37 + 3 tokens
                                           Case{Shape{.arch = skv::model::Arch::Mistral, .window = 6}, 2, 1},
                                           Case{Shape{.arch = skv::model::Arch::Mistral, .window = 1}, 1, 2}));

TEST(SwiftKVModel, PathsDifferAndTeacherIsTheBase) {
  const Shape s;
  skv::model::LlamaModel skv_path(swiftkv_model(s, 2, 1, 3));
  skv::model::LlamaModel teacher(swiftkv_model(s, 2, 1, 3), skv::model::ModelOptions{.swiftkv = false});
  skv::model::LlamaModel base(base_model(s, 3));
  EXPECT_FALSE(teacher.swiftkv_active());
  EXPECT_EQ(teacher.kv_layout().cache_layers(), s.layers);
  const std::vector<int32_t> ids = random_ids(20, s.vocab, 5);
  auto run = [&](skv::model::LlamaModel& m) {
    skv::engine::KVCache cache = skv::engine::make_cache(m, 32);
    return fwd(m, cache, ids.data(), 20, 0, Logits::All);
  };
  Tensor a = run(skv_path), t = run(teacher), b = run(base);
  EXPECT_EQ(max_abs_diff(t.as<float>(), b.as<float>(), 20 * s.vocab), 0.0f);  // same weights, same code
  EXPECT_GT(max_abs_diff(a.as<float>(), b.as<float>(), 20 * s.vocab), 0.1f);
}

TEST(SwiftKVModel, ConvertedInitEqualsTeacherUpToLayerM) {
  // With the conversion's own init and M = L - 1, G = 1, layer M's K/V source is exactly the
  // teacher's (norm_swiftkv = its input norm, k/v/q copies), so the two paths agree.
  const Shape s;
  skv::io::ModelFiles f = base_model(s, 9);
  skv::model::add_swiftkv_tensors(f, s.layers - 1, 1);
  skv::model::LlamaModel converted(std::move(f));
  skv::model::LlamaModel base(base_model(s, 9));
  const std::vector<int32_t> ids = random_ids(15, s.vocab, 2);
  skv::engine::KVCache c1 = skv::engine::make_cache(converted, 16), c2 = skv::engine::make_cache(base, 16);
  Tensor a = fwd(converted, c1, ids.data(), 15, 0, Logits::All);
  Tensor b = fwd(base, c2, ids.data(), 15, 0, Logits::All);
  EXPECT_LT(max_abs_diff(a.as<float>(), b.as<float>(), 15 * s.vocab), 1e-4f);
}

TEST(SwiftKVModel, UnusedWeightsAreDropped) {
  const Shape s;
  skv::model::LlamaModel m(swiftkv_model(s, 2, 3, 1));
  for (const auto& [name, t] : m.tensors_in_use()) {
    for (int64_t i = 2; i < s.layers; ++i)
      for (const char* p : {"q_proj.", "k_proj.", "v_proj."})
        EXPECT_EQ(name.find("layers." + std::to_string(i) + ".self_attn." + p), std::string::npos) << name;
    EXPECT_EQ(name.find("k_proj_swiftkv"), std::string::npos) << name;  // lives on in the stacked matrix
  }
  skv::model::LlamaModel t(swiftkv_model(s, 2, 3, 1), skv::model::ModelOptions{.swiftkv = false});
  for (const auto& [name, tensor] : t.tensors_in_use()) EXPECT_EQ(name.find("swiftkv"), std::string::npos) << name;
  // Three later layers share one K/V: two layers' k/v weights fewer, plus norm_swiftkv.
  const size_t kv_weight = s.kv_heads * s.head_dim * s.hidden * sizeof(float);
  EXPECT_EQ(m.weight_bytes() + 2 * 2 * kv_weight, t.weight_bytes() + s.hidden * sizeof(float));
}

TEST(SwiftKVModel, FlopsFollowTheFormula) {
  const Shape s;
  const int64_t m = 2, n = 24;
  skv::model::LlamaModel model(swiftkv_model(s, m, 1, 4));
  skv::model::LlamaModel teacher(swiftkv_model(s, m, 1, 4), skv::model::ModelOptions{.swiftkv = false});
  const std::vector<int32_t> ids = random_ids(n, s.vocab, 1);
  skv::engine::KVCache c1 = skv::engine::make_cache(model, n), c2 = skv::engine::make_cache(teacher, n);
  skv::model::ForwardContext x1(model), x2(teacher);
  model.forward(x1, c1, ids.data(), n, 0, Logits::None);
  teacher.forward(x2, c2, ids.data(), n, 0, Logits::None);
  const double d = s.hidden, qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim, f = s.ffn;
  const double per_layer = 2.0 * n * (d * qd * 2 + 2 * d * kvd + 3 * d * f);
  const double attn_per_layer = 4.0 * s.heads * s.head_dim * (n * (n + 1) / 2.0);
  EXPECT_DOUBLE_EQ(x2.flops().linear, s.layers * per_layer);
  EXPECT_DOUBLE_EQ(x2.flops().attention, s.layers * attn_per_layer);
  EXPECT_DOUBLE_EQ(x1.flops().linear, m * per_layer + 2.0 * n * d * 2 * kvd * (s.layers - m));
  EXPECT_DOUBLE_EQ(x1.flops().attention, m * attn_per_layer);
}

// The window is honoured on both paths: wide enough, Mistral is Llama; shorter, it differs and
// the attention FLOPs count only the visible keys.
TEST(SwiftKVModel, SlidingWindowOnBothPaths) {
  const int64_t n = 30;
  const std::vector<int32_t> ids = random_ids(n, 64, 8);
  for (const bool skv_path : {true, false}) {
    SCOPED_TRACE(skv_path ? "swiftkv" : "teacher");
    const skv::model::ModelOptions opts{.swiftkv = skv_path};
    auto run = [&](int64_t window, skv::model::Arch arch, skv::model::FlopCount* flops = nullptr) {
      skv::model::LlamaModel m(swiftkv_model(Shape{.arch = arch, .window = window}, 2, 1, 6), opts);
      skv::engine::KVCache cache = skv::engine::make_cache(m, n);
      skv::model::ForwardContext ctx(m);
      Tensor out = skv::backend::clone(m.forward(ctx, cache, ids.data(), n, 0, Logits::All));
      if (flops) *flops = ctx.flops();
      return out;
    };
    skv::model::FlopCount wide_flops, narrow_flops;
    const Tensor llama = run(0, skv::model::Arch::Llama);
    const Tensor wide = run(n, skv::model::Arch::Mistral, &wide_flops);
    const Tensor narrow = run(4, skv::model::Arch::Mistral, &narrow_flops);
    EXPECT_EQ(max_abs_diff(wide.as<float>(), llama.as<float>(), wide.numel()), 0.0f);
    // The first 4 positions see the same keys either way; later ones do not.
    EXPECT_EQ(max_abs_diff(narrow.as<float>(), llama.as<float>(), 4 * 64), 0.0f);
    EXPECT_GT(max_abs_diff(narrow.as<float>() + 4 * 64, llama.as<float>() + 4 * 64, (n - 4) * 64), 1e-3f);
    const double per_key = 4.0 * 4 * 8, layers = 5;  // Logits::All: every row runs every layer
    EXPECT_DOUBLE_EQ(wide_flops.attention, layers * per_key * n * (n + 1) / 2.0);
    EXPECT_DOUBLE_EQ(narrow_flops.attention, layers * per_key * (1 + 2 + 3 + 4.0 * (n - 3)));
  }
}

TEST(SwiftKVModel, Settings) {
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(32, 0.5), 16);
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(32, 0.25), 24);
  EXPECT_EQ(skv::model::num_key_value_layers_for_fraction(30, 0.5), 15);
  EXPECT_THROW(skv::model::num_key_value_layers_for_fraction(30, 1.0), skv::Error);
  EXPECT_THROW(skv::model::num_key_value_layers_for_fraction(30, 0.0), skv::Error);
  EXPECT_THROW(skv::model::num_key_value_layers_for_fraction(4, 0.01), skv::Error);  // rounds to M = L
  EXPECT_NO_THROW(skv::model::check_swiftkv_settings(30, 15, 5));
  EXPECT_THROW(skv::model::check_swiftkv_settings(30, 30, 1), skv::Error);
  EXPECT_THROW(skv::model::check_swiftkv_settings(30, 0, 1), skv::Error);
  EXPECT_THROW(skv::model::check_swiftkv_settings(30, 15, 0), skv::Error);
  EXPECT_THROW(skv::model::check_swiftkv_settings(30, 15, 4), skv::Error);
}

// forward_batch: sequences of different lengths, histories and logits kinds in one row block
// give what each gives alone through forward(), for a plain model and SwiftKV layouts.
struct BatchCase {
  const char* name;
  int64_t m, g;  // m = 0: a plain model
};

void PrintTo(const BatchCase& c, std::ostream* os) { *os << c.name; }

class ForwardBatch : public ::testing::TestWithParam<BatchCase> {};

TEST_P(ForwardBatch, EqualsEachChunkAlone) {
  const BatchCase bc = GetParam();
  const Shape s;
  skv::model::LlamaModel model(bc.m == 0 ? base_model(s, 21) : swiftkv_model(s, bc.m, bc.g, 21));
  ASSERT_EQ(model.swiftkv_active(), bc.m > 0);
  const int64_t vocab = s.vocab;
  struct Seq {
    int64_t n_past, n;
    Logits which;
  };
  const std::vector<Seq> seqs = {{0, 7, Logits::All}, {5, 4, Logits::Last}, {12, 9, Logits::None}, {3, 1, Logits::All}};
  std::vector<std::vector<int32_t>> ids;
  for (size_t i = 0; i < seqs.size(); ++i)
    ids.push_back(random_ids(seqs[i].n_past + seqs[i].n, vocab, 100 + static_cast<uint32_t>(i)));
  // Each sequence's history goes into both its caches the same way.
  std::vector<skv::engine::KVCache> alone, batched;
  for (size_t i = 0; i < seqs.size(); ++i) {
    alone.push_back(skv::engine::make_cache(model, 24));
    batched.push_back(skv::engine::make_cache(model, 24));
    if (seqs[i].n_past == 0) continue;
    fwd(model, alone.back(), ids[i].data(), seqs[i].n_past, 0, Logits::None);
    fwd(model, batched.back(), ids[i].data(), seqs[i].n_past, 0, Logits::None);
  }
  skv::model::ForwardContext ctx(model);
  std::vector<Tensor> want;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Tensor t = model.forward(ctx, alone[i], ids[i].data() + seqs[i].n_past, seqs[i].n, seqs[i].n_past, seqs[i].which);
    want.push_back(t.defined() ? skv::backend::clone(t) : t);
  }
  const skv::model::FlopCount f1 = ctx.flops();
  skv::model::ForwardContext bctx(model);
  std::vector<skv::model::SeqChunk> chunks;
  for (size_t i = 0; i < seqs.size(); ++i)
    chunks.push_back({.kv = batched[i].view(),
                      .ids = ids[i].data() + seqs[i].n_past,
                      .n = seqs[i].n,
                      .n_past = seqs[i].n_past,
                      .which = seqs[i].which});
  model.forward_batch(bctx, chunks);
  const skv::model::FlopCount f2 = bctx.flops();
  EXPECT_DOUBLE_EQ(f2.linear, f1.linear);
  EXPECT_DOUBLE_EQ(f2.attention, f1.attention);

  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(chunks[i].logits.defined(), want[i].defined()) << i;
    if (want[i].defined()) {
      ASSERT_EQ(chunks[i].logits.shape, want[i].shape) << i;
      EXPECT_LT(max_abs_diff(chunks[i].logits.as<float>(), want[i].as<float>(), want[i].numel()), 1e-5f) << i;
    }
    const int64_t filled = (seqs[i].n_past + seqs[i].n) * alone[i].row;
    for (int64_t l = 0; l < alone[i].num_layers(); ++l) {
      EXPECT_LT(max_abs_diff(batched[i].k[l].as<float>(), alone[i].k[l].as<float>(), filled), 1e-5f) << i << " " << l;
      EXPECT_LT(max_abs_diff(batched[i].v[l].as<float>(), alone[i].v[l].as<float>(), filled), 1e-5f) << i << " " << l;
    }
  }

  // Decoding on from the batched caches continues each sequence as from its own.
  std::vector<skv::model::SeqChunk> step;
  std::vector<int32_t> next = {1, 2, 3, 4};
  for (size_t i = 0; i < seqs.size(); ++i)
    step.push_back({.kv = batched[i].view(),
                    .ids = &next[i],
                    .n = 1,
                    .n_past = seqs[i].n_past + seqs[i].n,
                    .which = Logits::Last});
  model.forward_batch(bctx, step);
  for (size_t i = 0; i < seqs.size(); ++i) {
    Tensor ref = fwd(model, alone[i], &next[i], 1, seqs[i].n_past + seqs[i].n, Logits::Last);
    EXPECT_LT(max_abs_diff(step[i].logits.as<float>(), ref.as<float>(), vocab), 1e-5f) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardBatch,
                         ::testing::Values(BatchCase{"plain", 0, 1}, BatchCase{"swiftkv_g1", 3, 1},
                                           BatchCase{"swiftkv_g2", 1, 2}),
                         [](const ::testing::TestParamInfo<BatchCase>& info) { return std::string(info.param.name); });

TEST(ForwardBatch, RejectsTwoWritersOfOneBlockAndOverflow) {
  const Shape s;
  skv::model::LlamaModel model(base_model(s, 2));
  const std::vector<int32_t> ids = random_ids(8, s.vocab, 3);
  skv::engine::KVCache a = skv::engine::make_cache(model, 8), b = skv::engine::make_cache(model, 8);
  skv::model::ForwardContext ctx(model);
  std::vector<skv::model::SeqChunk> shared = {{.kv = a.view(), .ids = ids.data(), .n = 2, .n_past = 0},
                                              {.kv = b.view(), .ids = ids.data(), .n = 2, .n_past = 0},
                                              {.kv = a.view(), .ids = ids.data(), .n = 2, .n_past = 2}};
  try {
    model.forward_batch(ctx, shared);
    FAIL() << "two chunks writing one block were accepted";
  } catch (const skv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("write the same KV block"), std::string::npos) << e.what();
  }
  std::vector<skv::model::SeqChunk> overflow = {{.kv = a.view(), .ids = ids.data(), .n = 2, .n_past = 0},
                                                {.kv = b.view(), .ids = ids.data(), .n = 4, .n_past = 6}};
  EXPECT_THROW(model.forward_batch(ctx, overflow), skv::Error);
  std::vector<skv::model::SeqChunk> none;
  EXPECT_THROW(model.forward_batch(ctx, none), skv::Error);
}

TEST(KVCache, CopyPrefixAndSlice) {
  const Shape s;
  skv::model::LlamaModel model(base_model(s, 2));
  const std::vector<int32_t> ids = random_ids(10, s.vocab, 4);
  skv::engine::KVCache src = skv::engine::make_cache(model, 10);
  fwd(model, src, ids.data(), 10, 0, Logits::None);
  skv::engine::KVCache arena = skv::engine::make_cache(model, 20);
  skv::engine::KVCache part = arena.slice(8, 6);
  EXPECT_EQ(part.capacity, 6);
  part.copy_prefix_from(src, 6);
  for (int64_t l = 0; l < src.num_layers(); ++l) {
    EXPECT_EQ(max_abs_diff(arena.k[l].as<float>() + 8 * src.row, src.k[l].as<float>(), 6 * src.row), 0.0f);
    EXPECT_EQ(max_abs_diff(arena.v[l].as<float>() + 8 * src.row, src.v[l].as<float>(), 6 * src.row), 0.0f);
  }
  // The continuation from a copied prefix is the continuation from the original.
  Tensor from_copy = fwd(model, part, ids.data() + 5, 1, 5, Logits::Last);
  skv::engine::KVCache ref = skv::engine::make_cache(model, 10);
  Tensor want = fwd(model, ref, ids.data(), 6, 0, Logits::Last);
  EXPECT_LT(max_abs_diff(from_copy.as<float>(), want.as<float>(), s.vocab), 1e-5f);
  EXPECT_THROW(part.copy_prefix_from(src, 7), skv::Error);  // past the slice
  EXPECT_THROW(arena.slice(15, 6), skv::Error);
  skv::engine::KVCache other(skv::model::KVSpec{src.num_layers(), src.row + 1}, 10);
  EXPECT_THROW(other.copy_prefix_from(src, 2), skv::Error);
}

}  // namespace
