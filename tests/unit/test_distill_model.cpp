// The distillation step against PyTorch autograd (fixtures made by scripts/make_distill_fixture.py:
// float64 loss and gradients of every trainable tensor for tiny random SwiftKV checkpoints and
// one packed batch), plus invariants that need no oracle.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/model_files.h"
#include "train/distill_model.h"
#include "train/teacher_cache.h"

namespace skv::train {
namespace {

std::string fixture(const std::string& name) { return std::string(SKV_SOURCE_DIR) + "/tests/fixtures/distill/" + name; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

struct Batch {
  std::vector<int32_t> ids, positions, doc_start;
  LossWeights w;
};

Batch read_batch(const std::string& dir) {
  const nlohmann::json j = read_json(dir + "/batch.json");
  Batch b;
  b.ids = j["ids"].get<std::vector<int32_t>>();
  b.positions = j["positions"].get<std::vector<int32_t>>();
  b.doc_start = j["doc_start"].get<std::vector<int32_t>>();
  b.w.temperature = j["temperature"];
  b.w.kl_scale = j["kl_scale"];
  b.w.mse_scale = j["mse_scale"];
  return b;
}

class DistillFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(DistillFixture, LossAndGradientsMatchAutograd) {
  const std::string dir = fixture(GetParam());
  DistillModel model(io::open_model_files(dir + "/model"));
  const Batch b = read_batch(dir);
  const nlohmann::json want = read_json(dir + "/expected.json");
  const StepStats st = model.accumulate(b.ids.data(), b.positions.data(), b.doc_start.data(), b.ids.size(), b.w);
  EXPECT_NEAR(st.kl, want["kl"].get<double>(), 2e-5 * std::abs(want["kl"].get<double>()));
  EXPECT_NEAR(st.mse, want["mse"].get<double>(), 2e-5 * std::abs(want["mse"].get<double>()));
  ASSERT_EQ(model.slots().size(), want["grads"].size());
  for (const ParamSlot& s : model.slots()) {
    SCOPED_TRACE(s.name);
    ASSERT_TRUE(want["grads"].contains(s.name));
    const std::vector<double> g = want["grads"][s.name].get<std::vector<double>>();
    ASSERT_EQ(static_cast<int64_t>(g.size()), s.numel);
    double max_ref = 0, max_err = 0;
    for (int64_t i = 0; i < s.numel; ++i) {
      max_ref = std::max(max_ref, std::abs(g[i]));
      max_err = std::max(max_err, std::abs(g[i] - model.grads()[s.offset + i]));
    }
    EXPECT_GT(max_ref, 0.0);
    // float32 against float64: relative to the tensor's largest gradient entry.
    EXPECT_LT(max_err, 1e-4 * max_ref) << "max |grad| " << max_ref;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DistillFixture,
                         ::testing::Values("m2g1_gqa", "m1g2_bias_untied", "m1g2_qwen3", "m2g1_mistral_window"));

TEST(DistillModel, DocumentsInOneRowBlockAreIndependent) {
  // Packing must not leak anything between documents: the packed block's loss and gradients
  // are the sums of each document run alone.
  const std::string dir = fixture("m2g1_gqa");
  DistillModel packed(io::open_model_files(dir + "/model"));
  DistillModel alone(io::open_model_files(dir + "/model"));
  const Batch b = read_batch(dir);
  const StepStats all = packed.accumulate(b.ids.data(), b.positions.data(), b.doc_start.data(), b.ids.size(), b.w);
  StepStats sum;
  for (size_t start = 0; start < b.ids.size();) {
    size_t end = start + 1;
    while (end < b.ids.size() && b.doc_start[end] == static_cast<int32_t>(start)) ++end;
    std::vector<int32_t> ds(end - start, 0);
    const StepStats s = alone.accumulate(b.ids.data() + start, b.positions.data() + start, ds.data(), end - start, b.w);
    sum.kl += s.kl;
    sum.mse += s.mse;
    start = end;
  }
  EXPECT_NEAR(all.kl, sum.kl, 1e-5 * std::abs(sum.kl));
  EXPECT_NEAR(all.mse, sum.mse, 1e-5 * std::abs(sum.mse));
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < packed.grads().size(); ++i) {
    max_ref = std::max(max_ref, static_cast<double>(std::abs(alone.grads()[i])));
    max_err = std::max(max_err, static_cast<double>(std::abs(alone.grads()[i] - packed.grads()[i])));
  }
  EXPECT_LT(max_err, 1e-5 * max_ref);
}

TEST(DistillModel, EvaluateGivesTheLossWithoutGradients) {
  const std::string dir = fixture("m1g2_bias_untied");
  DistillModel model(io::open_model_files(dir + "/model"));
  const Batch b = read_batch(dir);
  const StepStats e = model.evaluate(b.ids.data(), b.positions.data(), b.doc_start.data(), b.ids.size(), b.w);
  for (float g : model.grads()) ASSERT_EQ(g, 0.0f);
  const StepStats a = model.accumulate(b.ids.data(), b.positions.data(), b.doc_start.data(), b.ids.size(), b.w);
  EXPECT_DOUBLE_EQ(e.kl, a.kl);
  EXPECT_DOUBLE_EQ(e.mse, a.mse);
  // Gradients accumulate across calls until zeroed.
  const std::vector<float> once = model.grads();
  model.accumulate(b.ids.data(), b.positions.data(), b.doc_start.data(), b.ids.size(), b.w);
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(model.grads()[i], 2 * once[i], 1e-6 + 1e-5 * std::abs(once[i]));
  model.zero_grads();
  for (float g : model.grads()) ASSERT_EQ(g, 0.0f);
}

// max |a - b| / max |b| over the gradients of two models.
double grad_rel_err(DistillModel& a, DistillModel& b) {
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < b.grads().size(); ++i) {
    max_ref = std::max(max_ref, static_cast<double>(std::abs(b.grads()[i])));
    max_err = std::max(max_err, static_cast<double>(std::abs(a.grads()[i] - b.grads()[i])));
  }
  return max_err / max_ref;
}

class CachedTargets : public ::testing::TestWithParam<const char*> {};

TEST_P(CachedTargets, FinalHiddenStateGivesTheLiveLossAndGradients) {
  // k = 0: the cached final hidden state is bf16, so the KL and its gradient move by that
  // rounding only; the MSE target is bf16 as well.
  const std::string dir = fixture(GetParam());
  DistillModel live(io::open_model_files(dir + "/model"));
  DistillModel cached(io::open_model_files(dir + "/model"));
  const Batch b = read_batch(dir);
  const int64_t n = b.ids.size();
  const StepStats a = live.accumulate(b.ids.data(), b.positions.data(), b.doc_start.data(), n, b.w);
  const TeacherTargetBuffers t =
      cached.teacher_targets(b.ids.data(), b.positions.data(), b.doc_start.data(), n, b.w.temperature, 0);
  EXPECT_TRUE(t.top_ids.empty());
  ASSERT_EQ(static_cast<int64_t>(t.fn.size()), n * live.config().hidden_size);
  const StepStats c = cached.accumulate_cached(t.view(), b.positions.data(), b.doc_start.data(), n, b.w);
  EXPECT_NEAR(c.kl, a.kl, 1e-2 * a.kl);
  EXPECT_NEAR(c.mse, a.mse, 1e-2 * a.mse);
  EXPECT_LT(grad_rel_err(cached, live), 2e-2);
}

TEST_P(CachedTargets, TopKOfTheWholeVocabularyGivesTheLiveKl) {
  const std::string dir = fixture(GetParam());
  DistillModel live(io::open_model_files(dir + "/model"));
  DistillModel cached(io::open_model_files(dir + "/model"));
  Batch b = read_batch(dir);
  b.w.mse_scale = 0;  // the bf16 MSE target is checked above; here the KL alone, exactly
  const int64_t n = b.ids.size(), V = live.config().vocab_size;
  const StepStats a = live.accumulate(b.ids.data(), b.positions.data(), b.doc_start.data(), n, b.w);
  const TeacherTargetBuffers t =
      cached.teacher_targets(b.ids.data(), b.positions.data(), b.doc_start.data(), n, b.w.temperature, V);
  for (float r : t.rest) EXPECT_EQ(r, 0.0f);
  const StepStats c = cached.accumulate_cached(t.view(), b.positions.data(), b.doc_start.data(), n, b.w);
  EXPECT_NEAR(c.kl, a.kl, 1e-5 * a.kl);
  EXPECT_LT(grad_rel_err(cached, live), 1e-4);
  // Fewer classes: a lower bound of the full KL, above zero.
  DistillModel few(io::open_model_files(dir + "/model"));
  const TeacherTargetBuffers t2 =
      few.teacher_targets(b.ids.data(), b.positions.data(), b.doc_start.data(), n, b.w.temperature, 2);
  const StepStats e = few.evaluate_cached(t2.view(), b.positions.data(), b.doc_start.data(), n, b.w);
  EXPECT_GT(e.kl, 0.0);
  EXPECT_LT(e.kl, a.kl);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CachedTargets, ::testing::Values("m2g1_gqa", "m1g2_bias_untied", "m1g2_qwen3"));

TEST(TeacherCache, RecordsReadBackAndMismatchesAreRefused) {
  namespace fs = std::filesystem;
  const std::string dir = fixture("m2g1_gqa");
  DistillModel model(io::open_model_files(dir + "/model"));
  const Batch b = read_batch(dir);
  const int64_t n = b.ids.size(), d = model.config().hidden_size;
  const fs::path tmp = fs::temp_directory_path() / ("skv_tc_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  for (int64_t k : {0, 3}) {
    const std::string cdir = (tmp / ("k" + std::to_string(k))).string();
    TeacherCacheSpec spec{d, k, b.w.temperature, "model-a", "data-a", {n, n}};
    TeacherCache::prepare(cdir, spec);
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(cdir + "/teacher.bin")), TeacherCache::total_bytes(spec));
    const TeacherTargetBuffers t =
        model.teacher_targets(b.ids.data(), b.positions.data(), b.doc_start.data(), n, b.w.temperature, k);
    {
      TeacherCache c(cdir, spec, true);
      EXPECT_EQ(c.complete(), 0);
      c.write(1, t);
      c.write(0, t);
      c.sync();
      c.commit(2, true);
    }
    TeacherCache r(cdir, spec, false);  // reopened: meta.json says both are complete
    ASSERT_EQ(r.complete(), 2);
    for (int64_t seq : {0, 1}) {
      const TeacherTargets g = r.get(seq);
      ASSERT_EQ(g.k, k);
      EXPECT_EQ(std::memcmp(g.x_m, t.x_m.data(), n * d * 4), 0);
      EXPECT_EQ(std::memcmp(g.h_last, t.h_last.data(), n * d * 2), 0);
      if (k == 0) {
        EXPECT_EQ(std::memcmp(g.fn, t.fn.data(), n * d * 2), 0);
      } else {
        EXPECT_EQ(std::memcmp(g.top_ids, t.top_ids.data(), n * k * 4), 0);
        EXPECT_EQ(std::memcmp(g.top_logp, t.top_logp.data(), n * k * 4), 0);
        EXPECT_EQ(std::memcmp(g.rest, t.rest.data(), n * 4), 0);
      }
    }
    // Another model, other data, another k or temperature, other sequence lengths: refused.
    std::vector<TeacherCacheSpec> others(5, spec);
    others[0].model_fingerprint = "model-b";
    others[1].data_fingerprint = "data-b";
    others[2].k = k + 1;
    others[3].temperature = 1.0;
    others[4].lengths = {n, n - 1};
    for (const TeacherCacheSpec& other : others) {
      EXPECT_THROW(TeacherCache::prepare(cdir, other), Error);
      EXPECT_THROW(TeacherCache(cdir, other, false), Error);
    }
    TeacherCache::prepare(cdir, spec);  // the same spec: accepted as it is
    EXPECT_EQ(TeacherCache(cdir, spec, false).complete(), 2);
  }
  fs::remove_all(tmp);
}

TEST(DistillModel, ExportedFilesReplaceOnlyTheTrainableTensors) {
  const std::string dir = fixture("m2g1_gqa");
  DistillModel model(io::open_model_files(dir + "/model"));
  for (float& p : model.params()) p += 1.0f;
  const io::ModelFiles out = model.files_with_params();
  const io::ModelFiles orig = io::open_model_files(dir + "/model");
  ASSERT_EQ(out.tensors.size(), orig.tensors.size());
  std::set<std::string> trainable;
  for (const ParamSlot& s : model.slots()) trainable.insert(s.name);
  for (const auto& [name, t] : orig.tensors) {
    const Tensor& o = out.tensors.at(name);
    ASSERT_EQ(o.shape, t.shape) << name;
    const bool same = std::memcmp(o.data, t.data, t.nbytes()) == 0;
    EXPECT_EQ(same, trainable.count(name) == 0) << name;
  }
}

TEST(DistillModel, RejectsAPlainModel) {
  // The teacher fixture of the engine tests is a plain Llama: distillation needs SwiftKV tensors.
  const std::string dir = fixture("m2g1_gqa") + "/model";
  io::ModelFiles f = io::open_model_files(dir);
  f.config.swiftkv_checkpoint = false;
  f.config.swiftkv = false;
  EXPECT_THROW(DistillModel{std::move(f)}, std::exception);
}

}  // namespace
}  // namespace skv::train
