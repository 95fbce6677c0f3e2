// A warmed-up decode step allocates nothing on the heap: the model is const, and everything a
// forward pass needs lives in a ForwardContext (and the CPU backend's per-thread buffers) that
// grows to the largest batch seen and is then reused. Counted by replacing operator new in this
// test binary (every std::vector, std::shared_ptr control block and Tensor::empty goes through it).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "io/model_files.h"
#include "model/llama.h"
#include "model/swiftkv.h"
#include "model_test_util.h"

// The replacements below pair malloc with free consistently; GCC cannot see that through inlined
// library code and warns about a mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t al = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace skv {
namespace {

const auto fixture = testing::model_fixture;

struct Counting {
  Counting() {
    g_allocations = 0;
    g_counting = true;
  }
  ~Counting() { g_counting = false; }
  long count() const { return g_allocations.load(); }
};

TEST(ForwardAllocations, CounterSeesAllocations) {
  // The counter must be able to fail the tests below.
  Counting c;
  std::vector<int>* v = new std::vector<int>(100);
  delete v;
  EXPECT_GE(c.count(), 2);
}

class DecodeStep : public ::testing::TestWithParam<int64_t> {};  // param: SwiftKV M (0 = plain)

TEST_P(DecodeStep, AllocatesNothingOnceWarm) {
  io::ModelFiles f = io::open_model_files(fixture("llama_gqa"));
  if (GetParam() > 0) model::add_swiftkv_tensors(f, GetParam(), 1);
  const model::LlamaModel model(std::move(f));
  engine::KVCache a = engine::make_cache(model, 64), b = engine::make_cache(model, 64);
  model::ForwardContext ctx(model);
  const std::vector<int32_t> ids = testing::random_ids(40, model.config().vocab_size, 5);
  // Warm-up: prefill two sequences and a few single and batched decode steps.
  model.forward(ctx, a, ids.data(), 20, 0, model::Logits::Last);
  model.forward(ctx, b, ids.data() + 5, 20, 0, model::Logits::Last);
  std::vector<model::SeqChunk> both(2);
  int64_t pos = 20;
  auto batched_step = [&] {
    both[0] = {.kv = a.view(), .ids = &ids[pos], .n = 1, .n_past = pos, .which = model::Logits::Last};
    both[1] = {.kv = b.view(), .ids = &ids[pos + 1], .n = 1, .n_past = pos, .which = model::Logits::Last};
    model.forward_batch(ctx, both);
    ++pos;
  };
  for (int i = 0; i < 3; ++i) batched_step();
  for (int i = 0; i < 3; ++i, ++pos) {
    model.forward(ctx, a, &ids[pos], 1, pos, model::Logits::Last);
    model.forward(ctx, b, &ids[pos], 1, pos, model::Logits::Last);
  }
  long single = 0, batched = 0;
  {
    Counting c;
    for (int i = 0; i < 5; ++i, ++pos) {
      const Tensor logits = model.forward(ctx, a, &ids[pos], 1, pos, model::Logits::Last);
      EXPECT_TRUE(logits.defined());
      model.forward(ctx, b, &ids[pos], 1, pos, model::Logits::Last);
    }
    single = c.count();
  }
  {
    Counting c;
    for (int i = 0; i < 5; ++i) batched_step();
    batched = c.count();
  }
  EXPECT_EQ(single, 0) << "heap allocations in 10 single-sequence decode steps";
  EXPECT_EQ(batched, 0) << "heap allocations in 5 two-sequence decode steps";
}

INSTANTIATE_TEST_SUITE_P(Paths, DecodeStep, ::testing::Values(0, 1, 2));

}  // namespace
}  // namespace skv
