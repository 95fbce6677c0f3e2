// train/grad_ops: every backward against central finite differences of the double
// instantiation; forwards against naive loops written here; float against double; RoPE against
// the inference RoPE; and sizes large enough that the OpenMP / GEMM-panel paths split the work.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/ops.h"
#include "core/error.h"
#include "core/tensor.h"
#include "train/grad_ops.h"

using namespace skv;
using namespace skv::train;

namespace {

using Vec = std::vector<double>;
using VecF = std::vector<float>;

Vec randv(size_t n, std::mt19937& rng, double sd = 1.0) {
  std::normal_distribution<double> nd(0.0, sd);
  Vec v(n);
  for (double& x : v) x = nd(rng);
  return v;
}

VecF to_f(const Vec& v) { return VecF(v.begin(), v.end()); }
// Double copy of float values, so that both instantiations see identical inputs.
Vec to_d(const VecF& v) { return Vec(v.begin(), v.end()); }
Vec rounded(const Vec& v) { return to_d(to_f(v)); }

double dot(const Vec& a, const Vec& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// max |a - b| / max |b|: a norm-wise relative error that ignores the noise on entries near 0.
// `floor` bounds the denominator for arrays that are exactly 0 in exact arithmetic.
template <class A>
double rel_err(const A& a, const Vec& b, double floor = 1e-30) {
  double num = 0.0, den = floor;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return num / den;
}

constexpr double kH = 1e-6;       // central-difference step
constexpr double kFdTol = 1e-6;   // |analytic - fd| / max(1, |fd|)
constexpr double kF32Tol = 1e-5;  // float against double, norm-wise

// Central differences of `objective` with respect to every entry of x, against `analytic`.
// Returns the largest |analytic - fd| / max(1, |fd|).
double fd_check(Vec& x, const Vec& analytic, const std::function<double()>& objective, const std::string& what) {
  EXPECT_EQ(x.size(), analytic.size()) << what;
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + kH;
    const double lp = objective();
    x[i] = x0 - kH;
    const double lm = objective();
    x[i] = x0;
    const double fd = (lp - lm) / (2 * kH);
    const double err = std::fabs(analytic[i] - fd) / std::max(1.0, std::fabs(fd));
    worst = std::max(worst, err);
    EXPECT_LT(err, kFdTol) << what << "[" << i << "]: analytic " << analytic[i] << " fd " << fd;
  }
  return worst;
}

void report(const char* name, double worst) { std::printf("[   fd     ] %-28s max rel err %.2e\n", name, worst); }

// Runs a test body at a given thread count and restores the previous one.
struct ThreadCount {
  int saved = backend::cpu::num_threads();
  explicit ThreadCount(int n) { backend::cpu::set_num_threads(n); }
  ~ThreadCount() { backend::cpu::set_num_threads(saved); }
};

// ---- naive references (double)

Vec naive_linear(const Vec& x, const Vec& w, const Vec* b, int64_t n, int64_t in, int64_t out) {
  Vec y(n * out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (int64_t j = 0; j < in; ++j) s += x[i * in + j] * w[o * in + j];
      y[i * out + o] = s;
    }
  return y;
}

Vec naive_rms_norm(const Vec& x, const Vec& w, double eps, int64_t n, int64_t d) {
  Vec y(n * d);
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0.0;
    for (int64_t j = 0; j < d; ++j) ss += x[i * d + j] * x[i * d + j];
    const double r = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) y[i * d + j] = x[i * d + j] * r * w[j];
  }
  return y;
}

struct Attn {
  int64_t n, H, KV, D;
  std::vector<int32_t> doc_start;
  int64_t window = 0;  // sliding window (0: none)
  int64_t first_key(int64_t i) const {
    return window > 0 ? std::max<int64_t>(doc_start[i], i - window + 1) : doc_start[i];
  }
  double scale() const { return 1.0 / std::sqrt(static_cast<double>(D)); }
};

// doc_start for consecutive documents of the given lengths.
std::vector<int32_t> docs(std::initializer_list<int> lengths) {
  std::vector<int32_t> ds;
  for (int len : lengths) {
    const int32_t start = static_cast<int32_t>(ds.size());
    for (int i = 0; i < len; ++i) ds.push_back(start);
  }
  return ds;
}

Attn make_attn(int64_t H, int64_t KV, int64_t D, std::vector<int32_t> ds, int64_t window = 0) {
  return Attn{static_cast<int64_t>(ds.size()), H, KV, D, std::move(ds), window};
}

// Softmax attention written per (row, head) over the row's document: out and lse.
void naive_attention(const Attn& a, const Vec& q, const Vec& k, const Vec& v, Vec& out, Vec& lse) {
  const int64_t qs = a.H * a.D, ks = a.KV * a.D, G = a.H / a.KV;
  out.assign(a.n * qs, 0.0);
  lse.assign(a.n * a.H, 0.0);
  for (int64_t i = 0; i < a.n; ++i)
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t g = h / G, j0 = a.first_key(i);
      Vec s;
      for (int64_t j = j0; j <= i; ++j) {
        double d = 0.0;
        for (int64_t e = 0; e < a.D; ++e) d += q[i * qs + h * a.D + e] * k[j * ks + g * a.D + e];
        s.push_back(d * a.scale());
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0.0;
      for (double x : s) sum += std::exp(x - mx);
      lse[i * a.H + h] = mx + std::log(sum);
      for (int64_t j = j0; j <= i; ++j) {
        const double p = std::exp(s[j - j0] - mx) / sum;
        for (int64_t e = 0; e < a.D; ++e) out[i * qs + h * a.D + e] += p * v[j * ks + g * a.D + e];
      }
    }
}

// The textbook softmax backward with explicit probabilities (no lse, no blocks).
void naive_attention_backward(const Attn& a, const Vec& dout, const Vec& q, const Vec& k, const Vec& v, Vec& dq,
                              Vec& dk, Vec& dv) {
  const int64_t qs = a.H * a.D, ks = a.KV * a.D, G = a.H / a.KV, D = a.D;
  dq.assign(a.n * qs, 0.0);
  dk.assign(a.n * ks, 0.0);
  dv.assign(a.n * ks, 0.0);
  for (int64_t i = 0; i < a.n; ++i)
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t g = h / G, j0 = a.first_key(i), L = i - j0 + 1;
      Vec p(L), dp(L);
      double mx = -1e300, sum = 0.0, pdp = 0.0;
      for (int64_t j = 0; j < L; ++j) {
        double d = 0.0, e2 = 0.0;
        for (int64_t e = 0; e < D; ++e) {
          d += q[i * qs + h * D + e] * k[(j0 + j) * ks + g * D + e];
          e2 += dout[i * qs + h * D + e] * v[(j0 + j) * ks + g * D + e];
        }
        p[j] = d * a.scale();
        dp[j] = e2;
        mx = std::max(mx, p[j]);
      }
      for (double& x : p) sum += (x = std::exp(x - mx));
      for (int64_t j = 0; j < L; ++j) pdp += (p[j] /= sum) * dp[j];
      for (int64_t j = 0; j < L; ++j) {
        const double ds = p[j] * (dp[j] - pdp) * a.scale();
        for (int64_t e = 0; e < D; ++e) {
          dq[i * qs + h * D + e] += ds * k[(j0 + j) * ks + g * D + e];
          dk[(j0 + j) * ks + g * D + e] += ds * q[i * qs + h * D + e];
          dv[(j0 + j) * ks + g * D + e] += p[j] * dout[i * qs + h * D + e];
        }
      }
    }
}

// KL(softmax(zt / tau) || softmax(zs / tau)) per row from log-softmaxes, times scale.
double naive_kl(const Vec& zt, const Vec& zs, int64_t n, int64_t V, double tau, double scale) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    auto lse = [&](const Vec& z) {
      double mx = -1e300, s = 0.0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, z[i * V + v] / tau);
      for (int64_t v = 0; v < V; ++v) s += std::exp(z[i * V + v] / tau - mx);
      return mx + std::log(s);
    };
    const double lt = lse(zt), ls = lse(zs);
    for (int64_t v = 0; v < V; ++v) {
      const double lpt = zt[i * V + v] / tau - lt, lps = zs[i * V + v] / tau - ls;
      total += std::exp(lpt) * (lpt - lps);
    }
  }
  return scale * total;
}

std::vector<float> inv_freqs(int64_t D, double base = 10000.0) {
  std::vector<float> f;
  for (int64_t j = 0; j < D / 2; ++j) f.push_back(static_cast<float>(1.0 / std::pow(base, 2.0 * j / D)));
  return f;
}

}  // namespace

// ---------------------------------------------------------------- linear

TEST(TrainLinear, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(1);
  double worst = 0.0;
  struct Shape {
    int64_t n, in, out;
  };
  for (Shape s : {Shape{1, 1, 1}, Shape{3, 5, 7}, Shape{7, 3, 2}, Shape{1, 9, 4}})
    for (bool bias : {true, false})
      for (bool acc : {false, true}) {
        Vec x = randv(s.n * s.in, rng), w = randv(s.out * s.in, rng), b = randv(s.out, rng);
        const Vec R = randv(s.n * s.out, rng);
        // Parameter gradients accumulate, and dx does when asked: start them all non-zero.
        const Vec dx0 = randv(x.size(), rng), dw0 = randv(w.size(), rng), db0 = randv(b.size(), rng);
        Vec dx = acc ? dx0 : Vec(x.size(), 123.0), dw = dw0, db = db0;
        linear_backward<double>(R.data(), x.data(), w.data(), dx.data(), dw.data(), bias ? db.data() : nullptr, s.n,
                                s.in, s.out, acc);
        for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];
        for (size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];
        if (acc)
          for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
        auto L = [&] {
          Vec y(s.n * s.out);
          linear_forward<double>(x.data(), w.data(), bias ? b.data() : nullptr, y.data(), s.n, s.in, s.out);
          return dot(y, R);
        };
        worst = std::max(worst, fd_check(x, dx, L, "dx"));
        worst = std::max(worst, fd_check(w, dw, L, "dw"));
        if (bias)
          worst = std::max(worst, fd_check(b, db, L, "db"));
        else
          EXPECT_EQ(db, Vec(db.size(), 0.0));  // db == nullptr leaves db0 untouched
      }
  report("linear", worst);
}

TEST(TrainLinear, NullGradientsAreSkipped) {
  std::mt19937 rng(2);
  const int64_t n = 3, in = 4, out = 5;
  const Vec x = randv(n * in, rng), w = randv(out * in, rng), dy = randv(n * out, rng);
  Vec dx(n * in), dw(out * in, 0.0), dw2(out * in, 0.0);
  linear_backward<double>(dy.data(), x.data(), w.data(), dx.data(), dw.data(), nullptr, n, in, out);
  linear_backward<double>(dy.data(), x.data(), w.data(), nullptr, dw2.data(), nullptr, n, in, out);
  EXPECT_EQ(dw, dw2);
  Vec dx2(n * in);
  linear_backward<double>(dy.data(), x.data(), w.data(), dx2.data(), nullptr, nullptr, n, in, out);
  EXPECT_EQ(dx, dx2);
}

TEST(TrainLinear, ForwardMatchesNaiveAndFloatMatchesDouble) {
  std::mt19937 rng(3);
  const int64_t n = 7, in = 13, out = 9;
  const Vec x = rounded(randv(n * in, rng)), w = rounded(randv(out * in, rng)), b = rounded(randv(out, rng));
  const Vec dy = rounded(randv(n * out, rng));
  Vec y(n * out);
  linear_forward<double>(x.data(), w.data(), b.data(), y.data(), n, in, out);
  EXPECT_LT(rel_err(y, naive_linear(x, w, &b, n, in, out)), 1e-14);

  VecF xf = to_f(x), wf = to_f(w), bf = to_f(b), dyf = to_f(dy), yf(n * out);
  linear_forward<float>(xf.data(), wf.data(), bf.data(), yf.data(), n, in, out);
  EXPECT_LT(rel_err(yf, y), kF32Tol);

  Vec dx(n * in), dw(out * in, 0.0), db(out, 0.0);
  VecF dxf(n * in), dwf(out * in, 0.0f), dbf(out, 0.0f);
  linear_backward<double>(dy.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), n, in, out);
  linear_backward<float>(dyf.data(), xf.data(), wf.data(), dxf.data(), dwf.data(), dbf.data(), n, in, out);
  EXPECT_LT(rel_err(dxf, dx), kF32Tol);
  EXPECT_LT(rel_err(dwf, dw), kF32Tol);
  EXPECT_LT(rel_err(dbf, db), kF32Tol);
}

// ---------------------------------------------------------------- rms_norm

TEST(TrainRmsNorm, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(4);
  double worst = 0.0;
  for (int64_t n : {1, 3, 7})
    for (int64_t d : {1, 5, 16})
      for (bool acc : {false, true}) {
        Vec x = randv(n * d, rng), w = randv(d, rng, 0.5);
        for (double& v : w) v += 1.0;
        const Vec R = randv(n * d, rng);
        const double eps = 1e-5;
        Vec y(n * d), rstd(n);
        rms_norm_forward<double>(x.data(), w.data(), eps, y.data(), rstd.data(), n, d);
        EXPECT_LT(rel_err(y, naive_rms_norm(x, w, eps, n, d)), 1e-14);
        const Vec dx0 = randv(x.size(), rng), dw0 = randv(d, rng);
        Vec dx = acc ? dx0 : Vec(x.size(), -7.0), dw = dw0;
        rms_norm_backward<double>(R.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), n, d, acc);
        for (int64_t j = 0; j < d; ++j) dw[j] -= dw0[j];
        if (acc)
          for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
        auto L = [&] {
          Vec yy(n * d), rr(n);
          rms_norm_forward<double>(x.data(), w.data(), eps, yy.data(), rr.data(), n, d);
          return dot(yy, R);
        };
        worst = std::max(worst, fd_check(x, dx, L, "dx"));
        worst = std::max(worst, fd_check(w, dw, L, "dw"));
      }
  report("rms_norm", worst);
}

TEST(TrainRmsNorm, FloatMatchesDouble) {
  std::mt19937 rng(5);
  const int64_t n = 5, d = 24;
  const Vec x = rounded(randv(n * d, rng)), w = rounded(randv(d, rng)), dy = rounded(randv(n * d, rng));
  Vec y(n * d), r(n), dx(n * d), dw(d, 0.0);
  rms_norm_forward<double>(x.data(), w.data(), 1e-6, y.data(), r.data(), n, d);
  rms_norm_backward<double>(dy.data(), x.data(), w.data(), r.data(), dx.data(), dw.data(), n, d);
  VecF xf = to_f(x), wf = to_f(w), dyf = to_f(dy), yf(n * d), rf(n), dxf(n * d), dwf(d, 0.0f);
  rms_norm_forward<float>(xf.data(), wf.data(), 1e-6f, yf.data(), rf.data(), n, d);
  rms_norm_backward<float>(dyf.data(), xf.data(), wf.data(), rf.data(), dxf.data(), dwf.data(), n, d);
  EXPECT_LT(rel_err(yf, y), kF32Tol);
  EXPECT_LT(rel_err(rf, r), kF32Tol);
  EXPECT_LT(rel_err(dxf, dx), kF32Tol);
  EXPECT_LT(rel_err(dwf, dw), kF32Tol);
}

// ---------------------------------------------------------------- rope

TEST(TrainRope, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(6);
  double worst = 0.0;
  for (bool interleaved : {false, true})
    for (int64_t D : {2, 6, 8}) {
      const int64_t n = 3, heads = 2;
      const std::vector<float> inv = inv_freqs(D);
      const std::vector<int32_t> pos = {0, 5, 1000};
      Vec x = randv(n * heads * D, rng);
      const Vec R = randv(x.size(), rng);
      Vec dx = R;
      rope_backward<double>(dx.data(), n, heads, D, pos.data(), inv.data(), interleaved);
      auto L = [&] {
        Vec y = x;
        rope_forward<double>(y.data(), n, heads, D, pos.data(), inv.data(), interleaved);
        return dot(y, R);
      };
      worst = std::max(worst, fd_check(x, dx, L, interleaved ? "dx (interleaved)" : "dx"));
      // Rotations are orthogonal: the backward undoes the forward.
      Vec y = x;
      rope_forward<double>(y.data(), n, heads, D, pos.data(), inv.data(), interleaved);
      rope_backward<double>(y.data(), n, heads, D, pos.data(), inv.data(), interleaved);
      EXPECT_LT(rel_err(y, x), 1e-14);
    }
  report("rope", worst);
}

TEST(TrainRope, ForwardMatchesInferenceRope) {
  std::mt19937 rng(7);
  for (bool interleaved : {false, true})
    for (int64_t D : {64, 6}) {
      const int64_t heads = 3;
      const std::vector<int32_t> pos = {0, 1, 2, 17, 511, 2047, 4095, 8191, 100000};
      const int64_t n = static_cast<int64_t>(pos.size());
      backend::Rope rp;
      rp.head_dim = D;
      rp.interleaved = interleaved;
      rp.inv_freq = inv_freqs(D, 100000.0);
      const Vec x = rounded(randv(n * heads * D, rng));
      Tensor t = Tensor::empty(DType::F32, {n, heads * D});
      std::copy(x.begin(), x.end(), t.as<float>());
      backend::rope(t, heads, backend::host_i32(pos.data(), n), rp);
      VecF xf = to_f(x);
      rope_forward<float>(xf.data(), n, heads, D, pos.data(), rp.inv_freq.data(), interleaved);
      Vec xd = x;
      rope_forward<double>(xd.data(), n, heads, D, pos.data(), rp.inv_freq.data(), interleaved);
      for (int64_t i = 0; i < n * heads * D; ++i) {
        const double ref = t.as<float>()[i];
        ASSERT_NEAR(xf[i], ref, 1e-6 * (1.0 + std::fabs(ref))) << "interleaved " << interleaved << " at " << i;
        ASSERT_NEAR(xd[i], ref, 1e-6 * (1.0 + std::fabs(ref))) << "interleaved " << interleaved << " at " << i;
      }
    }
}

// ---------------------------------------------------------------- attention

namespace {

struct AttnOut {
  Vec out, lse, dq, dk, dv;
};

AttnOut run_attention(const Attn& a, const Vec& q, const Vec& k, const Vec& v, const Vec& dout) {
  AttnOut r;
  r.out.resize(a.n * a.H * a.D);
  r.lse.resize(a.n * a.H);
  attention_forward<double>(q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), a.n, a.H, a.KV, a.D, a.scale(),
                            a.doc_start.data(), a.window);
  r.dq.assign(q.size(), 99.0);  // written, not accumulated
  r.dk.assign(k.size(), 99.0);
  r.dv.assign(v.size(), 99.0);
  attention_backward<double>(dout.data(), q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), r.dq.data(),
                             r.dk.data(), r.dv.data(), a.n, a.H, a.KV, a.D, a.scale(), a.doc_start.data(), a.window);
  return r;
}

struct AttnOutF {
  VecF out, lse, dq, dk, dv;
};

AttnOutF run_attention_f(const Attn& a, const Vec& q, const Vec& k, const Vec& v, const Vec& dout) {
  AttnOutF r;
  const VecF qf = to_f(q), kf = to_f(k), vf = to_f(v), df = to_f(dout);
  r.out.resize(a.n * a.H * a.D);
  r.lse.resize(a.n * a.H);
  const float sc = static_cast<float>(a.scale());
  attention_forward<float>(qf.data(), kf.data(), vf.data(), r.out.data(), r.lse.data(), a.n, a.H, a.KV, a.D, sc,
                           a.doc_start.data(), a.window);
  r.dq.resize(q.size());
  r.dk.resize(k.size());
  r.dv.resize(v.size());
  attention_backward<float>(df.data(), qf.data(), kf.data(), vf.data(), r.out.data(), r.lse.data(), r.dq.data(),
                            r.dk.data(), r.dv.data(), a.n, a.H, a.KV, a.D, sc, a.doc_start.data(), a.window);
  return r;
}

std::vector<Attn> attention_cases() {
  return {
      make_attn(6, 2, 4, docs({3, 1, 4, 1})),     // GQA, several documents, two of length 1
      make_attn(3, 3, 5, docs({7})),              // MHA, odd head_dim
      make_attn(4, 1, 3, docs({2, 5})),           // MQA
      make_attn(2, 1, 4, docs({1})),              // one row
      make_attn(6, 2, 2, docs({1, 1, 1})),        // every row its own document
      make_attn(6, 2, 4, docs({3, 1, 6, 1}), 2),  // sliding window shorter than a document
      make_attn(3, 3, 5, docs({7}), 3),
      make_attn(4, 1, 3, docs({2, 5}), 1),  // each row sees only itself
  };
}

}  // namespace

TEST(TrainAttention, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(8);
  double worst = 0.0;
  for (const Attn& a : attention_cases()) {
    Vec q = randv(a.n * a.H * a.D, rng), k = randv(a.n * a.KV * a.D, rng), v = randv(a.n * a.KV * a.D, rng);
    const Vec R = randv(q.size(), rng);
    const AttnOut g = run_attention(a, q, k, v, R);
    auto L = [&] {
      Vec out(a.n * a.H * a.D), lse(a.n * a.H);
      attention_forward<double>(q.data(), k.data(), v.data(), out.data(), lse.data(), a.n, a.H, a.KV, a.D, a.scale(),
                                a.doc_start.data(), a.window);
      return dot(out, R);
    };
    std::ostringstream tag_stream;
    tag_stream << "H" << a.H << " KV" << a.KV << " n" << a.n << " W" << a.window;
    const std::string tag = tag_stream.str();
    worst = std::max(worst, fd_check(q, g.dq, L, "dq " + tag));
    worst = std::max(worst, fd_check(k, g.dk, L, "dk " + tag));
    worst = std::max(worst, fd_check(v, g.dv, L, "dv " + tag));
  }
  report("attention", worst);
}

TEST(TrainAttention, MatchesNaiveAndFloatMatchesDouble) {
  std::mt19937 rng(9);
  for (const Attn& a : attention_cases()) {
    SCOPED_TRACE(testing::Message() << "H " << a.H << " KV " << a.KV << " D " << a.D << " n " << a.n << " W "
                                    << a.window);
    const Vec q = rounded(randv(a.n * a.H * a.D, rng)), k = rounded(randv(a.n * a.KV * a.D, rng));
    const Vec v = rounded(randv(a.n * a.KV * a.D, rng)), dout = rounded(randv(q.size(), rng));
    const AttnOut d = run_attention(a, q, k, v, dout);
    Vec out, lse, dq, dk, dv;
    naive_attention(a, q, k, v, out, lse);
    naive_attention_backward(a, dout, q, k, v, dq, dk, dv);
    EXPECT_LT(rel_err(d.out, out), 1e-13);
    EXPECT_LT(rel_err(d.lse, lse), 1e-13);
    EXPECT_LT(rel_err(d.dq, dq), 1e-13);
    EXPECT_LT(rel_err(d.dk, dk), 1e-13);
    EXPECT_LT(rel_err(d.dv, dv), 1e-13);
    const AttnOutF f = run_attention_f(a, q, k, v, dout);
    EXPECT_LT(rel_err(f.out, d.out), kF32Tol);
    EXPECT_LT(rel_err(f.lse, d.lse), kF32Tol);
    // A row alone in its document has dq = 0 and its key dk = 0 (softmax over one score).
    EXPECT_LT(rel_err(f.dq, d.dq, 0.1), kF32Tol);
    EXPECT_LT(rel_err(f.dk, d.dk, 0.1), kF32Tol);
    EXPECT_LT(rel_err(f.dv, d.dv), kF32Tol);
  }
}

// Documents packed into one row block give what each document gives alone.
// Windows against documents longer than the 64-row blocks: blocks whose first keys are cut by
// the window, and key blocks whose later queries no longer see them.
TEST(TrainAttention, SlidingWindowAcrossBlocksMatchesNaive) {
  std::mt19937 rng(10);
  for (int64_t window : {1, 20, 64, 65, 100, 500})
    for (const std::vector<int32_t>& ds : {docs({150}), docs({70, 3, 90})}) {
      const Attn a = make_attn(4, 2, 4, ds, window);
      SCOPED_TRACE(testing::Message() << "window " << window << " n " << a.n);
      const Vec q = randv(a.n * a.H * a.D, rng), k = randv(a.n * a.KV * a.D, rng);
      const Vec v = randv(a.n * a.KV * a.D, rng), dout = randv(q.size(), rng);
      const AttnOut d = run_attention(a, q, k, v, dout);
      Vec out, lse, dq, dk, dv;
      naive_attention(a, q, k, v, out, lse);
      naive_attention_backward(a, dout, q, k, v, dq, dk, dv);
      EXPECT_LT(rel_err(d.out, out), 1e-12);
      EXPECT_LT(rel_err(d.lse, lse), 1e-12);
      // Window 1: every softmax has one score, so dq = dk = 0 up to the rounding of O(1) terms
      // that cancel, whose size depends on the BLAS kernels' summation order (1.3e-15 with
      // OpenBLAS's SkylakeX kernels): measured against a scale of 1 there, not 1e-3.
      const double grad_floor = window == 1 ? 1.0 : 1e-3;
      EXPECT_LT(rel_err(d.dq, dq, grad_floor), 1e-12);
      EXPECT_LT(rel_err(d.dk, dk, grad_floor), 1e-12);
      EXPECT_LT(rel_err(d.dv, dv), 1e-12);
    }
}

TEST(TrainAttention, PackedDocumentsEqualSeparateRuns) {
  std::mt19937 rng(10);
  const int64_t H = 6, KV = 2, D = 8;
  const int la = 5, lb = 3;
  const Attn packed = make_attn(H, KV, D, docs({la, lb}));
  const Vec q = randv(packed.n * H * D, rng), k = randv(packed.n * KV * D, rng), v = randv(packed.n * KV * D, rng);
  const Vec dout = randv(q.size(), rng);
  const AttnOut p = run_attention(packed, q, k, v, dout);
  int64_t row0 = 0;
  for (int len : {la, lb}) {
    const Attn one = make_attn(H, KV, D, docs({len}));
    auto rows = [&](const Vec& x, int64_t width) {
      return Vec(x.begin() + row0 * width, x.begin() + (row0 + len) * width);
    };
    const AttnOut s = run_attention(one, rows(q, H * D), rows(k, KV * D), rows(v, KV * D), rows(dout, H * D));
    EXPECT_LT(rel_err(rows(p.out, H * D), s.out), 1e-15);
    EXPECT_LT(rel_err(rows(p.lse, H), s.lse), 1e-15);
    EXPECT_LT(rel_err(rows(p.dq, H * D), s.dq), 1e-15);
    EXPECT_LT(rel_err(rows(p.dk, KV * D), s.dk), 1e-15);
    EXPECT_LT(rel_err(rows(p.dv, KV * D), s.dv), 1e-15);
    row0 += len;
  }
}

TEST(TrainAttention, RejectsMalformedDocStarts) {
  const int64_t H = 2, KV = 1, D = 2, n = 3;
  Vec q(n * H * D, 0.1), k(n * KV * D, 0.2), v(n * KV * D, 0.3), out(n * H * D), lse(n * H);
  for (std::vector<int32_t> ds : {std::vector<int32_t>{1, 1, 1}, {0, 0, 1}, {0, 1, 0}}) {
    EXPECT_THROW(
        attention_forward<double>(q.data(), k.data(), v.data(), out.data(), lse.data(), n, H, KV, D, 1.0, ds.data()),
        Error);
  }
  const std::vector<int32_t> ok = {0, 0, 2};
  EXPECT_THROW(
      attention_forward<double>(q.data(), k.data(), v.data(), out.data(), lse.data(), n, 3, 2, D, 1.0, ok.data()),
      Error);
}

// ---------------------------------------------------------------- silu_mul

TEST(TrainSiluMul, GradientsMatchFiniteDifferencesAndFloatMatchesDouble) {
  std::mt19937 rng(11);
  double worst = 0.0;
  for (int64_t count : {1, 3, 7, 40}) {
    Vec g = randv(count, rng, 3.0), u = randv(count, rng);
    const Vec R = randv(count, rng);
    Vec dg(count), du(count), out(count);
    silu_mul_backward<double>(R.data(), g.data(), u.data(), dg.data(), du.data(), count);
    auto L = [&] {
      Vec o(count);
      silu_mul_forward<double>(g.data(), u.data(), o.data(), count);
      return dot(o, R);
    };
    worst = std::max(worst, fd_check(g, dg, L, "dg"));
    worst = std::max(worst, fd_check(u, du, L, "du"));
    silu_mul_forward<double>(g.data(), u.data(), out.data(), count);
    for (int64_t i = 0; i < count; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-14);

    const Vec gr = rounded(g), ur = rounded(u), Rr = rounded(R);
    Vec od(count), dgd(count), dud(count);
    silu_mul_forward<double>(gr.data(), ur.data(), od.data(), count);
    silu_mul_backward<double>(Rr.data(), gr.data(), ur.data(), dgd.data(), dud.data(), count);
    VecF gf = to_f(g), uf = to_f(u), Rf = to_f(R), of(count), dgf(count), duf(count);
    silu_mul_forward<float>(gf.data(), uf.data(), of.data(), count);
    silu_mul_backward<float>(Rf.data(), gf.data(), uf.data(), dgf.data(), duf.data(), count);
    EXPECT_LT(rel_err(of, od), kF32Tol);
    EXPECT_LT(rel_err(dgf, dgd), kF32Tol);
    EXPECT_LT(rel_err(duf, dud), kF32Tol);
  }
  report("silu_mul", worst);
}

// ---------------------------------------------------------------- losses

TEST(TrainKlLoss, GradientMatchesFiniteDifferencesAndNaiveLoss) {
  std::mt19937 rng(12);
  double worst = 0.0;
  for (int64_t n : {1, 3})
    for (int64_t V : {1, 2, 7, 33})
      for (double tau : {1.0, 2.0}) {
        const double scale = tau * tau / 5.0;
        const Vec zt = randv(n * V, rng, 3.0);
        Vec zs = randv(n * V, rng, 3.0), dzs(n * V);
        const double loss = kl_distill_loss<double>(zt.data(), zs.data(), dzs.data(), n, V, tau, scale);
        EXPECT_NEAR(loss, naive_kl(zt, zs, n, V, tau, scale), 1e-12 * (1 + std::fabs(loss)));
        if (V == 1) {
          EXPECT_NEAR(loss, 0.0, 1e-15);
        }
        auto L = [&] { return kl_distill_loss<double>(zt.data(), zs.data(), nullptr, n, V, tau, scale); };
        worst = std::max(worst, fd_check(zs, dzs, L, "dzs"));
      }
  // Identical distributions: zero loss and gradient.
  const Vec z = randv(2 * 10, rng);
  Vec dz(z.size(), 1.0);
  EXPECT_NEAR(kl_distill_loss<double>(z.data(), z.data(), dz.data(), 2, 10, 2.0, 1.0), 0.0, 1e-15);
  for (double x : dz) EXPECT_NEAR(x, 0.0, 1e-16);
  report("kl_distill_loss", worst);
}

TEST(TrainKlLoss, FloatMatchesDoubleAtLargeLogits) {
  std::mt19937 rng(13);
  const int64_t n = 4, V = 1000;
  // Logits of tens, like a language model's, to exercise the max shift.
  Vec zt = randv(n * V, rng, 4.0), zs = randv(n * V, rng, 4.0);
  for (int64_t i = 0; i < n * V; ++i) {
    zt[i] = static_cast<float>(zt[i] + 30.0);
    zs[i] = static_cast<float>(zt[i] + 0.5 * zs[i]);
  }
  const double tau = 2.0, scale = tau * tau / n;
  Vec dzs(n * V);
  const double ld = kl_distill_loss<double>(zt.data(), zs.data(), dzs.data(), n, V, tau, scale);
  EXPECT_NEAR(ld, naive_kl(zt, zs, n, V, tau, scale), 1e-12 * ld);
  VecF ztf = to_f(zt), zsf = to_f(zs), dzsf(n * V);
  const double lf = kl_distill_loss<float>(ztf.data(), zsf.data(), dzsf.data(), n, V, 2.0f, static_cast<float>(scale));
  EXPECT_NEAR(lf, ld, kF32Tol * ld);
  EXPECT_LT(rel_err(dzsf, dzs), kF32Tol);
}

// The cached target of teacher_topk against a naive softmax and sort written here.
TEST(TrainTopkKl, TeacherTopkIsTheLargestProbabilitiesAndTheRestMass) {
  std::mt19937 rng(21);
  for (int64_t V : {1, 5, 40})
    for (int64_t k : {int64_t{1}, std::min<int64_t>(3, V), V}) {
      const int64_t n = 3;
      const double tau = 2.0;
      Vec zt = randv(n * V, rng, 3.0);
      if (V >= 5) zt[2] = zt[4];  // a tie: the lower id comes first
      std::vector<int32_t> ids(n * k);
      VecF logp(n * k), rest(n);
      teacher_topk<double>(zt.data(), n, V, tau, k, ids.data(), logp.data(), rest.data());
      for (int64_t i = 0; i < n; ++i) {
        std::vector<std::pair<double, int32_t>> p;
        double z = 0.0;
        for (int64_t v = 0; v < V; ++v) z += std::exp(zt[i * V + v] / tau);
        for (int64_t v = 0; v < V; ++v) p.emplace_back(std::exp(zt[i * V + v] / tau) / z, static_cast<int32_t>(v));
        std::stable_sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.first > b.first; });
        double r = 0.0;
        for (int64_t j = k; j < V; ++j) r += p[j].first;
        for (int64_t j = 0; j < k; ++j) {
          EXPECT_EQ(ids[i * k + j], p[j].second) << "V " << V << " k " << k << " row " << i << " rank " << j;
          EXPECT_NEAR(logp[i * k + j], std::log(p[j].first), 1e-6 * (1 + std::fabs(std::log(p[j].first))));
        }
        EXPECT_NEAR(rest[i], r, 1e-7 * std::max(r, 1e-30) + 1e-12);
      }
    }
}

TEST(TrainTopkKl, EqualsFullKlAtKEqualsVAndBoundsItBelow) {
  std::mt19937 rng(22);
  const int64_t n = 4, V = 60;
  const double tau = 2.0, scale = 0.3;
  const Vec zt = randv(n * V, rng, 3.0), zs = randv(n * V, rng, 3.0);
  Vec dfull(n * V);
  const double full = kl_distill_loss<double>(zt.data(), zs.data(), dfull.data(), n, V, tau, scale);
  double prev = -1.0;
  for (int64_t k : {1, 2, 8, 30, 59, 60}) {
    std::vector<int32_t> ids(n * k);
    VecF logp(n * k), rest(n);
    teacher_topk<double>(zt.data(), n, V, tau, k, ids.data(), logp.data(), rest.data());
    Vec d(n * V);
    const double topk =
        kl_topk_loss<double>(zs.data(), d.data(), n, V, tau, scale, k, ids.data(), logp.data(), rest.data());
    EXPECT_LE(topk, full * (1 + 1e-6)) << "k " << k;
    EXPECT_GE(topk, prev - 1e-6 * full) << "k " << k << ": a finer split loses less";
    prev = topk;
    if (k == V) {
      EXPECT_NEAR(topk, full, 1e-6 * full);  // the teacher's log-probs are stored in float
      EXPECT_LT(rel_err(d, dfull), 1e-6);
    }
  }
}

TEST(TrainTopkKl, GradientMatchesFiniteDifferencesAndFloatMatchesDouble) {
  std::mt19937 rng(23);
  double worst = 0.0;
  for (int64_t V : {2, 7, 33})
    for (int64_t k : {int64_t{1}, V / 2, V - 1})
      for (double tau : {1.0, 2.0}) {
        if (k < 1) continue;
        const int64_t n = 3;
        const double scale = tau * tau / 5.0;
        const Vec zt = randv(n * V, rng, 3.0);
        Vec zs = randv(n * V, rng, 3.0), dzs(n * V);
        std::vector<int32_t> ids(n * k);
        VecF logp(n * k), rest(n);
        teacher_topk<double>(zt.data(), n, V, tau, k, ids.data(), logp.data(), rest.data());
        kl_topk_loss<double>(zs.data(), dzs.data(), n, V, tau, scale, k, ids.data(), logp.data(), rest.data());
        auto L = [&] {
          return kl_topk_loss<double>(zs.data(), nullptr, n, V, tau, scale, k, ids.data(), logp.data(), rest.data());
        };
        worst = std::max(worst, fd_check(zs, dzs, L, "dzs"));
        const Vec zsr = rounded(zs);
        Vec dd(n * V);
        const double ld =
            kl_topk_loss<double>(zsr.data(), dd.data(), n, V, tau, scale, k, ids.data(), logp.data(), rest.data());
        VecF zsf = to_f(zs), df(n * V);
        const double lf = kl_topk_loss<float>(zsf.data(), df.data(), n, V, static_cast<float>(tau),
                                              static_cast<float>(scale), k, ids.data(), logp.data(), rest.data());
        EXPECT_NEAR(lf, ld, kF32Tol * std::max(ld, 1e-3));
        EXPECT_LT(rel_err(df, dd), kF32Tol);
      }
  report("kl_topk_loss", worst);
}

TEST(TrainMseLoss, GradientMatchesFiniteDifferencesAndFloatMatchesDouble) {
  std::mt19937 rng(14);
  double worst = 0.0;
  for (int64_t count : {1, 3, 7, 50}) {
    Vec a = randv(count, rng);
    const Vec b = randv(count, rng);
    const double scale = 0.37;
    Vec da(count);
    const double loss = mse_loss<double>(a.data(), b.data(), da.data(), count, scale);
    double ref = 0.0;
    for (int64_t i = 0; i < count; ++i) ref += (a[i] - b[i]) * (a[i] - b[i]);
    EXPECT_NEAR(loss, scale * ref, 1e-13 * (1 + loss));
    auto L = [&] { return mse_loss<double>(a.data(), b.data(), nullptr, count, scale); };
    worst = std::max(worst, fd_check(a, da, L, "da"));
    VecF af = to_f(a), bf = to_f(b), daf(count);
    const double lf = mse_loss<float>(af.data(), bf.data(), daf.data(), count, static_cast<float>(scale));
    EXPECT_NEAR(lf, loss, kF32Tol * loss);
    EXPECT_LT(rel_err(daf, da), kF32Tol);
  }
  report("mse_loss", worst);
}

// ---------------------------------------------------------------- threaded sizes

// Sizes where every op splits its work across threads (GEMM panels, attention blocks of 64
// rows across documents), at thread counts that do not divide the work evenly.
TEST(TrainThreaded, LargeSizesMatchNaiveReferences) {
  for (int threads : {2, 3, 7}) {
    ThreadCount tc(threads);
    std::mt19937 rng(15);
    // Panels of C split by rows ({300, 96, 130}; {700, 24, 130} also threads db) and by columns
    // ({40, 500, 300}: every GEMM has more columns than rows).
    for (auto [n, in, out] : {std::tuple<int64_t, int64_t, int64_t>{300, 96, 130}, {700, 24, 130}, {40, 500, 300}}) {
      const Vec x = rounded(randv(n * in, rng)), w = rounded(randv(out * in, rng)), b = rounded(randv(out, rng));
      const Vec dy = rounded(randv(n * out, rng));
      VecF xf = to_f(x), wf = to_f(w), bf = to_f(b), dyf = to_f(dy), yf(n * out), dxf(n * in), dwf(out * in, 0.0f),
           dbf(out, 0.0f);
      linear_forward<float>(xf.data(), wf.data(), bf.data(), yf.data(), n, in, out);
      EXPECT_LT(rel_err(yf, naive_linear(x, w, &b, n, in, out)), kF32Tol) << threads;
      linear_backward<float>(dyf.data(), xf.data(), wf.data(), dxf.data(), dwf.data(), dbf.data(), n, in, out);
      Vec dx(n * in, 0.0), dw(out * in, 0.0), db(out, 0.0);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t o = 0; o < out; ++o) {
          const double g = dy[i * out + o];
          db[o] += g;
          for (int64_t j = 0; j < in; ++j) {
            dx[i * in + j] += g * w[o * in + j];
            dw[o * in + j] += g * x[i * in + j];
          }
        }
      EXPECT_LT(rel_err(dxf, dx), kF32Tol) << threads;
      EXPECT_LT(rel_err(dwf, dw), kF32Tol) << threads;
      EXPECT_LT(rel_err(dbf, db), kF32Tol) << threads;
    }
    {
      const Attn a = make_attn(6, 2, 16, docs({70, 1, 129}));  // n = 200; blocks cut inside documents
      const Vec q = rounded(randv(a.n * a.H * a.D, rng)), k = rounded(randv(a.n * a.KV * a.D, rng));
      const Vec v = rounded(randv(a.n * a.KV * a.D, rng)), dout = rounded(randv(q.size(), rng));
      Vec out, lse, dq, dk, dv;
      naive_attention(a, q, k, v, out, lse);
      naive_attention_backward(a, dout, q, k, v, dq, dk, dv);
      const AttnOutF f = run_attention_f(a, q, k, v, dout);
      EXPECT_LT(rel_err(f.out, out), kF32Tol) << threads;
      EXPECT_LT(rel_err(f.lse, lse), kF32Tol) << threads;
      EXPECT_LT(rel_err(f.dq, dq), kF32Tol) << threads;
      EXPECT_LT(rel_err(f.dk, dk), kF32Tol) << threads;
      EXPECT_LT(rel_err(f.dv, dv), kF32Tol) << threads;
      const AttnOut d = run_attention(a, q, k, v, dout);
      EXPECT_LT(rel_err(d.dk, dk), 1e-12) << threads;
    }
    {
      const int64_t n = 300, d = 200;
      const Vec x = rounded(randv(n * d, rng)), w = rounded(randv(d, rng)), dy = rounded(randv(n * d, rng));
      Vec y(n * d), r(n), dx(n * d), dw(d, 0.0);
      rms_norm_forward<double>(x.data(), w.data(), 1e-5, y.data(), r.data(), n, d);
      rms_norm_backward<double>(dy.data(), x.data(), w.data(), r.data(), dx.data(), dw.data(), n, d);
      VecF xf = to_f(x), wf = to_f(w), dyf = to_f(dy), yf(n * d), rf(n), dxf(n * d), dwf(d, 0.0f);
      rms_norm_forward<float>(xf.data(), wf.data(), 1e-5f, yf.data(), rf.data(), n, d);
      rms_norm_backward<float>(dyf.data(), xf.data(), wf.data(), rf.data(), dxf.data(), dwf.data(), n, d);
      EXPECT_LT(rel_err(yf, naive_rms_norm(x, w, 1e-5, n, d)), kF32Tol) << threads;
      EXPECT_LT(rel_err(dxf, dx), kF32Tol) << threads;
      EXPECT_LT(rel_err(dwf, dw), kF32Tol) << threads;
    }
    {
      const int64_t n = 40, V = 3000;
      const Vec zt = rounded(randv(n * V, rng, 3.0)), zs = rounded(randv(n * V, rng, 3.0));
      Vec dzs(n * V);
      const double ld = kl_distill_loss<double>(zt.data(), zs.data(), dzs.data(), n, V, 2.0, 1.0);
      EXPECT_NEAR(ld, naive_kl(zt, zs, n, V, 2.0, 1.0), 1e-12 * ld) << threads;
      VecF ztf = to_f(zt), zsf = to_f(zs), dzsf(n * V);
      EXPECT_NEAR(kl_distill_loss<float>(ztf.data(), zsf.data(), dzsf.data(), n, V, 2.0f, 1.0f), ld, kF32Tol * ld);
      EXPECT_LT(rel_err(dzsf, dzs), kF32Tol) << threads;
      Vec da(n * V);
      const double lm = mse_loss<double>(zt.data(), zs.data(), da.data(), n * V, 0.5);
      double ref = 0.0;
      for (int64_t i = 0; i < n * V; ++i) ref += (zt[i] - zs[i]) * (zt[i] - zs[i]);
      EXPECT_NEAR(lm, 0.5 * ref, 1e-12 * lm) << threads;
      Vec gd(n * V), gu(n * V), o(n * V);
      silu_mul_forward<double>(zt.data(), zs.data(), o.data(), n * V);
      silu_mul_backward<double>(dzs.data(), zt.data(), zs.data(), gd.data(), gu.data(), n * V);
      for (int64_t i = 0; i < n * V; i += 97) {
        const double s = 1.0 / (1.0 + std::exp(-zt[i]));
        ASSERT_NEAR(o[i], zt[i] * s * zs[i], 1e-13);
        ASSERT_NEAR(gu[i], dzs[i] * zt[i] * s, 1e-13);
      }
    }
  }
}
