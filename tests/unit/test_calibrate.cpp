// The least-squares calibration of SwiftKV projections (train/calibrate.h): the moment sums and
// the ridge solver against plain references (direct residual sums, Gaussian elimination in long
// double), and calibrate_swiftkv on tiny random models. The solver against numpy's least squares
// on real activations is tests/oracle/test_calibrate.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "model/swiftkv.h"
#include "model_test_util.h"
#include "train/calibrate.h"

namespace {

using skv::train::MomentSums;

struct Problem {
  int64_t n, in, out;
  std::vector<float> x, y;  // [n, in], [n, out]
};

// y = x W^T + b + noise, with its two halves of columns as two blocks.
Problem make_problem(int64_t n, int64_t in, int64_t out, double noise, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Problem p{n, in, out, std::vector<float>(n * in), std::vector<float>(n * out)};
  std::vector<float> w(out * in), b(out);
  for (float& v : w) v = nd(rng);
  for (float& v : b) v = nd(rng);
  for (float& v : p.x) v = nd(rng) + 0.3f;  // not centred, so the bias column matters
  for (int64_t t = 0; t < n; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o] + noise * nd(rng);
      for (int64_t i = 0; i < in; ++i) s += static_cast<double>(w[o * in + i]) * p.x[t * in + i];
      p.y[t * out + o] = static_cast<float>(s);
    }
  return p;
}

// Column block [c0, c0 + w) of y as a contiguous [n, w] array.
std::vector<float> columns(const Problem& p, int64_t c0, int64_t w) {
  std::vector<float> r(p.n * w);
  for (int64_t t = 0; t < p.n; ++t)
    for (int64_t c = 0; c < w; ++c) r[t * w + c] = p.y[t * p.out + c0 + c];
  return r;
}

MomentSums sums_of(const Problem& p, bool bias, int64_t split_rows) {
  MomentSums s(p.in, p.out, bias);
  const int64_t half = p.out / 2;
  // Added in two row chunks, as calibrate adds one sequence at a time.
  for (int64_t r0 = 0; r0 < p.n; r0 += split_rows) {
    const int64_t rows = std::min(split_rows, p.n - r0);
    Problem part{rows, p.in, p.out, std::vector<float>(p.x.begin() + r0 * p.in, p.x.begin() + (r0 + rows) * p.in),
                 std::vector<float>(p.y.begin() + r0 * p.out, p.y.begin() + (r0 + rows) * p.out)};
    const std::vector<float> a = columns(part, 0, half), b = columns(part, half, p.out - half);
    s.add(part.x.data(), {a.data(), b.data()}, {half, p.out - half}, rows);
  }
  return s;
}

// Plain reference: the normal equations built row by row in long double and solved by Gaussian
// elimination with partial pivoting. Target: the mean of the member column blocks.
std::vector<long double> reference_fit(const Problem& p, bool bias, const std::vector<int64_t>& members, int64_t w,
                                       double ridge) {
  const int64_t a = p.in + (bias ? 1 : 0);
  std::vector<long double> A(a * a, 0.0L), B(a * w, 0.0L);
  for (int64_t t = 0; t < p.n; ++t) {
    std::vector<long double> xt(a, 1.0L);
    for (int64_t i = 0; i < p.in; ++i) xt[i] = p.x[t * p.in + i];
    for (int64_t i = 0; i < a; ++i) {
      for (int64_t j = 0; j < a; ++j) A[i * a + j] += xt[i] * xt[j];
      for (int64_t c = 0; c < w; ++c)
        for (int64_t c0 : members) B[i * w + c] += xt[i] * p.y[t * p.out + c0 + c] / members.size();
    }
  }
  long double diag = 0;
  for (int64_t i = 0; i < p.in; ++i) diag += A[i * a + i];
  for (int64_t i = 0; i < p.in; ++i) A[i * a + i] += ridge * diag / p.in;
  for (int64_t col = 0; col < a; ++col) {
    int64_t piv = col;
    for (int64_t r = col + 1; r < a; ++r)
      if (std::fabs(A[r * a + col]) > std::fabs(A[piv * a + col])) piv = r;
    for (int64_t j = 0; j < a; ++j) std::swap(A[col * a + j], A[piv * a + j]);
    for (int64_t c = 0; c < w; ++c) std::swap(B[col * w + c], B[piv * w + c]);
    for (int64_t r = 0; r < a; ++r) {
      if (r == col) continue;
      const long double f = A[r * a + col] / A[col * a + col];
      for (int64_t j = 0; j < a; ++j) A[r * a + j] -= f * A[col * a + j];
      for (int64_t c = 0; c < w; ++c) B[r * w + c] -= f * B[col * w + c];
    }
  }
  for (int64_t r = 0; r < a; ++r)
    for (int64_t c = 0; c < w; ++c) B[r * w + c] /= A[r * a + r];
  return B;
}

double max_rel_diff(const std::vector<double>& got, const std::vector<long double>& want) {
  long double scale = 0, diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    diff = std::max(diff, std::fabs(got[i] - want[i]));
  }
  return static_cast<double>(diff / scale);
}

TEST(Calibrate, MomentSumsEqualDirectSums) {
  const Problem p = make_problem(97, 5, 6, 0.1, 1);
  for (bool bias : {false, true}) {
    const MomentSums s = sums_of(p, bias, 40);
    const int64_t a = p.in + (bias ? 1 : 0);
    ASSERT_EQ(s.aug(), a);
    EXPECT_EQ(s.rows(), p.n);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < a; ++j) {
        double want = 0;
        for (int64_t t = 0; t < p.n; ++t)
          want += (i < p.in ? p.x[t * p.in + i] : 1.0) * (j < p.in ? p.x[t * p.in + j] : 1.0);
        EXPECT_NEAR(s.xx()[i * a + j], want, 1e-9 * (1 + std::fabs(want)));
      }
    for (int64_t i = 0; i < a; ++i)
      for (int64_t o = 0; o < p.out; ++o) {
        double want = 0;
        for (int64_t t = 0; t < p.n; ++t) want += (i < p.in ? p.x[t * p.in + i] : 1.0) * p.y[t * p.out + o];
        EXPECT_NEAR(s.xy()[i * p.out + o], want, 1e-9 * (1 + std::fabs(want)));
      }
    for (int64_t o = 0; o < p.out; ++o) {
      double want = 0;
      for (int64_t t = 0; t < p.n; ++t) want += static_cast<double>(p.y[t * p.out + o]) * p.y[t * p.out + o];
      EXPECT_NEAR(s.yy()[o], want, 1e-9 * want);
    }
  }
}

TEST(Calibrate, RidgeSolveMatchesGaussianElimination) {
  for (uint32_t seed : {2u, 3u}) {
    const Problem p = make_problem(131, 7, 6, 0.5, seed);
    for (bool bias : {false, true})
      for (double ridge : {0.0, 1e-3, 0.3}) {
        const MomentSums s = sums_of(p, bias, 50);
        // One block alone, and both blocks fitted together as one projection (a group).
        for (const std::vector<int64_t>& members :
             {std::vector<int64_t>{0}, std::vector<int64_t>{3}, std::vector<int64_t>{0, 3}}) {
          const std::vector<double> got = skv::train::ridge_solve(s, members, 3, ridge);
          EXPECT_LT(max_rel_diff(got, reference_fit(p, bias, members, 3, ridge)), 1e-9)
              << "bias " << bias << " ridge " << ridge << " members " << members.size();
        }
      }
  }
}

TEST(Calibrate, ExactDataIsRecovered) {
  // Noise-free y = W x + b: with the bias column and no ridge the fit reproduces it, so the
  // residual the moments give is zero up to rounding.
  const Problem p = make_problem(60, 4, 4, 0.0, 4);
  const MomentSums s = sums_of(p, true, 60);
  const std::vector<double> X = skv::train::ridge_solve(s, {0}, 2, 0.0);
  EXPECT_LT(skv::train::moment_sse(s, X, 0, 2) / skv::train::moment_ssy(s, 0, 2), 1e-10);
}

TEST(Calibrate, MomentSseEqualsDirectResidual) {
  const Problem p = make_problem(83, 6, 4, 0.7, 5);
  std::mt19937 rng(6);
  std::normal_distribution<double> nd;
  for (bool bias : {false, true}) {
    const MomentSums s = sums_of(p, bias, 83);
    const int64_t a = s.aug();
    std::vector<double> X(a * 2);
    for (double& v : X) v = nd(rng);
    for (int64_t c0 : {0, 2}) {
      double want = 0;
      for (int64_t t = 0; t < p.n; ++t)
        for (int64_t c = 0; c < 2; ++c) {
          double f = bias ? X[p.in * 2 + c] : 0.0;
          for (int64_t i = 0; i < p.in; ++i) f += X[i * 2 + c] * p.x[t * p.in + i];
          want += (f - p.y[t * p.out + c0 + c]) * (f - p.y[t * p.out + c0 + c]);
        }
      EXPECT_NEAR(skv::train::moment_sse(s, X, c0, 2), want, 1e-9 * want);
    }
  }
}

TEST(Calibrate, SingularSystemIsAClearError) {
  Problem p = make_problem(40, 4, 2, 0.1, 7);
  for (int64_t t = 0; t < p.n; ++t) p.x[t * p.in + 2] = 0.0f;  // a feature that never fires
  const MomentSums s = sums_of(p, false, 40);
  try {
    skv::train::ridge_solve(s, {0}, 1, 0.0);
    FAIL() << "expected an error";
  } catch (const skv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("singular"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(skv::train::ridge_solve(s, {0}, 1, 1e-3));          // the ridge makes it solvable
  EXPECT_THROW(skv::train::ridge_solve(s, {1}, 2, 0.0), skv::Error);  // columns out of range
}

std::vector<skv::train::PackedSequence> random_sequences(int64_t count, int64_t len, int64_t vocab, uint32_t seed) {
  std::vector<skv::train::Document> docs;
  for (int64_t i = 0; i < count; ++i) docs.push_back({skv::testing::random_ids(len, vocab, seed + i), "test"});
  return skv::train::pack_documents(docs, len);
}

// The 6-layer tiny model of the tests below, converted with M = 2 and group size g.
skv::testing::TinyShape six_layers(bool bias) {
  skv::testing::TinyShape shape;
  shape.layers = 6;
  shape.bias = bias;
  return shape;
}

skv::io::ModelFiles converted(const skv::testing::TinyShape& shape, int64_t g, uint32_t seed) {
  skv::io::ModelFiles f = skv::testing::base_model(shape, seed);
  skv::model::add_swiftkv_tensors(f, 2, g);
  return f;
}

TEST(Calibrate, SwiftKVModelFitIsNeverWorseThanTheInitialisation) {
  for (bool bias : {false, true})
    for (int64_t g : {1, 2}) {
      const skv::testing::TinyShape shape = six_layers(bias);
      skv::io::ModelFiles f = converted(shape, g, 11);
      const auto seqs = random_sequences(6, 40, shape.vocab, 100);
      int64_t calls = 0;
      skv::train::CalibrationOptions opt;
      opt.on_sequence = [&](int64_t done, int64_t total, int64_t) {
        ++calls;
        EXPECT_EQ(total, 6);
        EXPECT_EQ(done, calls);
      };
      const skv::train::CalibrationResult r = skv::train::calibrate_swiftkv(f, seqs, opt);
      EXPECT_EQ(calls, 6);
      EXPECT_EQ(r.tokens, 240);
      ASSERT_EQ(r.layers.size(), 4u);
      // The fit minimises a group's summed error, so with G = 1 no layer gets worse, and with
      // G > 1 no group has every member worse.
      for (size_t first = 0; first < r.layers.size(); first += static_cast<size_t>(g)) {
        double k_gain = -1e300, v_gain = -1e300;
        for (size_t j = first; j < first + static_cast<size_t>(g); ++j) {
          k_gain = std::max(k_gain, r.layers[j].k_before - r.layers[j].k_after);
          v_gain = std::max(v_gain, r.layers[j].v_before - r.layers[j].v_after);
        }
        EXPECT_GE(k_gain, -1e-12) << "group from layer " << r.layers[first].layer;
        EXPECT_GE(v_gain, -1e-12) << "group from layer " << r.layers[first].layer;
      }
      // Layer M's own projection, reached from its own input, is the initialisation when G = 1:
      // exact, so it is kept.
      if (g == 1) {
        EXPECT_LT(r.layers[0].k_before, 1e-5);
        EXPECT_EQ(r.layers[0].k_after, r.layers[0].k_before);
      }
      // Later layers really improve (their keys come from x_M, not their own inputs).
      EXPECT_LT(r.layers.back().k_after, 0.95 * r.layers.back().k_before);
      EXPECT_LT(r.layers.back().v_after, r.layers.back().v_before);
      // The fitted tensors are in the model, with the shapes its loader checks.
      const int64_t kvd = shape.kv_heads * shape.head_dim;
      for (int64_t leader = 2 + g; leader < shape.layers; leader += g) {
        const skv::Tensor& w = f.get(skv::model::swiftkv_tensor_name(leader, "v", "weight"), {kvd, shape.hidden});
        EXPECT_EQ(w.dtype, skv::DType::F32);
        if (bias) {
          EXPECT_TRUE(f.find(skv::model::swiftkv_tensor_name(leader, "v", "bias")));
        }
      }
    }
}

TEST(Calibrate, QueryFitFollowsTheStudentLayerByLayer) {
  for (bool bias : {false, true})
    for (int64_t g : {1, 2}) {
      const skv::testing::TinyShape shape = six_layers(bias);
      skv::io::ModelFiles kv_only = converted(shape, g, 12);
      skv::io::ModelFiles with_q = converted(shape, g, 12);
      const auto seqs = random_sequences(5, 48, shape.vocab, 200);
      skv::train::CalibrationOptions opt;
      int64_t calls = 0, total = 0;
      opt.on_sequence = [&](int64_t done, int64_t t, int64_t) {
        EXPECT_EQ(done, ++calls);
        total = t;
      };
      const auto r_kv = skv::train::calibrate_swiftkv(kv_only, seqs);
      opt.fit_q = true;
      const auto r_q = skv::train::calibrate_swiftkv(with_q, seqs, opt);
      EXPECT_EQ(calls, total);
      EXPECT_EQ(total, 5 * 4);  // the K/V pass, then the student advanced through 3 of the 4 later layers
      ASSERT_EQ(r_q.layers.size(), 4u);
      for (size_t j = 0; j < 4; ++j) {
        // The K/V fit is the same with or without the query fit after it.
        EXPECT_EQ(r_q.layers[j].k_after, r_kv.layers[j].k_after);
        EXPECT_EQ(r_kv.layers[j].q_before, -1.0);
        EXPECT_GE(r_q.layers[j].q_before, 0.0);
        EXPECT_LE(r_q.layers[j].q_after, r_q.layers[j].q_before);
      }
      // At layer M the student's input is the teacher's, so q_proj (the initialisation) is exact.
      EXPECT_LT(r_q.layers[0].q_before, 1e-5);
      EXPECT_LT(r_q.layers.back().q_after, r_q.layers.back().q_before);
      const int64_t qd = shape.heads * shape.head_dim;
      const skv::Tensor& wq = with_q.get(skv::model::swiftkv_tensor_name(5, "q", "weight"), {qd, shape.hidden});
      EXPECT_EQ(wq.dtype, skv::DType::F32);
      // Without the query fit the model keeps q_proj_swiftkv = q_proj.
      const skv::Tensor& q0 = kv_only.get(skv::model::swiftkv_tensor_name(5, "q", "weight"));
      const skv::Tensor& qp = kv_only.get("model.layers.5.self_attn.q_proj.weight");
      EXPECT_EQ(0, std::memcmp(q0.data, qp.data, q0.nbytes()));
    }
}

TEST(Calibrate, CalibrationSequencesTakeTheFirstTokens) {
  std::vector<skv::train::Document> docs = {
      {std::vector<int32_t>(50, 1), "a"}, {std::vector<int32_t>(30, 2), "b"}, {std::vector<int32_t>(30, 3), "c"}};
  const auto seqs = skv::train::calibration_sequences(docs, 70, 32);
  EXPECT_EQ(skv::train::count_tokens(seqs), 70);
  EXPECT_EQ(seqs.back().ids.back(), 2);
  EXPECT_THROW(skv::train::calibration_sequences(docs, 0, 32), skv::Error);
  // The model must be a SwiftKV model, and the data must hold tokens.
  skv::io::ModelFiles base = skv::testing::base_model({}, 1);
  EXPECT_THROW(skv::train::calibrate_swiftkv(base, random_sequences(1, 8, 64, 1)), skv::Error);
  skv::io::ModelFiles skv_model = skv::testing::base_model({}, 1);
  skv::model::add_swiftkv_tensors(skv_model, 3, 1);
  EXPECT_THROW(skv::train::calibrate_swiftkv(skv_model, {}), skv::Error);
}

}  // namespace
