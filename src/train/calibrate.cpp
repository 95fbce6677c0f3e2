#include "train/calibrate.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/kv_layout.h"
#include "model/rope_table.h"
#include "model/swiftkv.h"
#include "model/weights.h"
#include "train/decoder_layer.h"
#include "train/gemm.h"
#include "train/grad_ops.h"

// LAPACK's symmetric positive definite solver, exported by OpenBLAS (Debian ships no lapack.h
// next to its cblas.h). Fortran interface: column-major, everything by pointer, and the hidden
// length of the character argument last.
extern "C" void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
                       const int* ldb, int* info, size_t uplo_len);

namespace skv::train {

namespace {
using Buf = std::vector<float>;
}  // namespace

MomentSums::MomentSums(int64_t in, int64_t out, bool bias)
    : in_(in),
      out_(out),
      bias_(bias),
      xx_(static_cast<size_t>(aug() * aug()), 0.0),
      xy_(static_cast<size_t>(aug() * out), 0.0),
      yy_(static_cast<size_t>(out), 0.0) {
  if (in < 1 || out < 1) fail("MomentSums: empty dimensions ", in, " x ", out);
}

void MomentSums::add(const float* x, const std::vector<const float*>& y_blocks, const std::vector<int64_t>& widths,
                     int64_t n) {
  if (y_blocks.size() != widths.size())
    fail("MomentSums::add: ", y_blocks.size(), " blocks, ", widths.size(), " widths");
  std::vector<int64_t> first(widths.size() + 1, 0);
  for (size_t b = 0; b < widths.size(); ++b) first[b + 1] = first[b] + widths[b];
  if (first.back() != out_) fail("MomentSums::add: the blocks hold ", first.back(), " columns, expected ", out_);
  if (n <= 0) return;
  const int64_t a = aug();
  std::vector<double> xd(static_cast<size_t>(n * a));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < in_; ++i) xd[t * a + i] = x[t * in_ + i];
    if (bias_) xd[t * a + in_] = 1.0;
  }
  // Task -1 is x's own moment; the others are one y block each (disjoint output columns).
  const int64_t tasks = static_cast<int64_t>(widths.size()) + 1;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    if (task == 0) {
      detail::gemm(true, false, a, a, n, 1.0, xd.data(), a, xd.data(), a, 1.0, xx_.data(), a);
      continue;
    }
    const size_t b = static_cast<size_t>(task - 1);
    const int64_t w = widths[b];
    std::vector<double> yd(static_cast<size_t>(n * w));
    for (int64_t t = 0; t < n * w; ++t) yd[t] = y_blocks[b][t];
    detail::gemm(true, false, a, w, n, 1.0, xd.data(), a, yd.data(), w, 1.0, xy_.data() + first[b], out_);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < w; ++o) yy_[first[b] + o] += yd[t * w + o] * yd[t * w + o];
  }
  rows_ += n;
}

namespace {

double ridge_lambda(const MomentSums& s, double ridge) {
  double diag = 0;
  for (int64_t i = 0; i < s.in(); ++i) diag += s.xx()[i * s.aug() + i];
  return ridge * diag / static_cast<double>(s.in());
}

}  // namespace

std::vector<double> ridge_solve(const MomentSums& s, const std::vector<int64_t>& members, int64_t width, double ridge) {
  if (members.empty() || width < 1) fail("ridge_solve: nothing to fit");
  if (!(ridge >= 0)) fail("the ridge must be >= 0, got ", ridge);
  const int64_t a = s.aug();
  for (int64_t c0 : members)
    if (c0 < 0 || c0 + width > s.out()) fail("ridge_solve: columns ", c0, "..", c0 + width, " outside ", s.out());
  std::vector<double> A = s.xx();
  const double lambda = ridge_lambda(s, ridge);
  for (int64_t i = 0; i < s.in(); ++i) A[i * a + i] += lambda;
  // Right-hand side column-major for LAPACK: column c is the members' mean of xy[:, c0 + c].
  std::vector<double> B(static_cast<size_t>(a * width), 0.0);
  const double inv = 1.0 / static_cast<double>(members.size());
  for (int64_t c0 : members)
    for (int64_t i = 0; i < a; ++i)
      for (int64_t c = 0; c < width; ++c) B[c * a + i] += inv * s.xy()[i * s.out() + c0 + c];
  const int n = static_cast<int>(a), nrhs = static_cast<int>(width);
  int info = 0;
  dposv_("U", &n, &nrhs, A.data(), &n, B.data(), &n, &info, 1);  // A is symmetric: its layout does not matter
  if (info > 0)
    fail("calibration: the calibration activations' second-moment matrix is singular (leading minor ", info,
         "); give more calibration tokens or a larger ridge");
  if (info < 0) fail("calibration: dposv argument ", -info, " is invalid");
  std::vector<double> X(static_cast<size_t>(a * width));
  for (int64_t i = 0; i < a; ++i)
    for (int64_t c = 0; c < width; ++c) X[i * width + c] = B[c * a + i];
  return X;
}

double moment_sse(const MomentSums& s, const std::vector<double>& X, int64_t first, int64_t width) {
  const int64_t a = s.aug();
  if (static_cast<int64_t>(X.size()) != a * width)
    fail("moment_sse: X has ", X.size(), " values, expected ", a * width);
  std::vector<double> AX(static_cast<size_t>(a * width));
  detail::gemm(false, false, a, width, a, 1.0, s.xx().data(), a, X.data(), width, 0.0, AX.data(), width);
  double sse = 0;
  for (int64_t i = 0; i < a; ++i)
    for (int64_t c = 0; c < width; ++c)
      sse += X[i * width + c] * (AX[i * width + c] - 2.0 * s.xy()[i * s.out() + first + c]);
  return sse + moment_ssy(s, first, width);
}

double moment_ssy(const MomentSums& s, int64_t first, int64_t width) {
  double ssy = 0;
  for (int64_t c = 0; c < width; ++c) ssy += s.yy()[first + c];
  return ssy;
}

namespace {

// A projection [out, in] (+ bias [out]) as the solver's X [aug, out].
std::vector<double> as_solution(const Tensor& w, const Tensor* b, int64_t in, int64_t out, bool with_bias) {
  const FrozenTensor wf = freeze(w);
  std::vector<double> X(static_cast<size_t>((in + (with_bias ? 1 : 0)) * out), 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) X[i * out + o] = wf.p()[o * in + i];
  if (with_bias && b && b->defined()) {
    const FrozenTensor bf = freeze(*b);
    for (int64_t o = 0; o < out; ++o) X[in * out + o] = bf.p()[o];
  }
  return X;
}

double relative(double sse, double ssy) { return ssy > 0 ? std::sqrt(std::max(0.0, sse) / ssy) : 0.0; }

}  // namespace

namespace {

// A fitted projection X [aug, out] back into the model as F32 weight [out, in] (and bias [out]).
void store_fit(io::ModelFiles& files, const std::vector<double>& X, const std::string& wname, const std::string& bname,
               int64_t in, int64_t out, bool bias) {
  Tensor w = Tensor::empty(DType::F32, {out, in});
  float* wp = w.as<float>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) wp[o * in + i] = static_cast<float>(X[i * out + o]);
  files.tensors[wname] = std::move(w);
  if (!bias) return;
  Tensor bt = Tensor::empty(DType::F32, {out});
  for (int64_t o = 0; o < out; ++o) bt.as<float>()[o] = static_cast<float>(X[in * out + o]);
  files.tensors[bname] = std::move(bt);
}

// The query fit of CalibrationOptions::fit_q, layer by layer over all sequences at once: the
// teacher's and the student's residual streams advance one layer at a time, so each layer's fit
// sees the student's inputs as the fitted layers below it produce them.
void fit_queries(io::ModelFiles& files, const std::vector<PackedSequence>& sequences, std::vector<Buf> x_m,
                 const std::vector<FrozenLayer>& layers, const backend::Rope& rope, const CalibrationOptions& opt,
                 CalibrationResult& res, int64_t done, int64_t progress_total) {
  const io::ModelConfig& c = files.config;
  const model::KVLayout layout = model::KVLayout::swiftkv(c);
  const int64_t L = c.num_layers, M = layout.first_skip, G = layout.group;
  const int64_t d = c.hidden_size, kv = c.num_kv_heads * c.head_dim, qd = c.num_heads * c.head_dim;
  const FrozenTensor norm_kv = freeze(files.get(model::swiftkv_norm_name(), {d}));
  const bool q_bias = files.find(model::swiftkv_tensor_name(M, "q", "bias")) != nullptr;
  std::vector<Buf> xt = x_m, xs = std::move(x_m), h(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    const int64_t n = sequences[s].size();
    Buf rstd(n);
    h[s].resize(n * d);
    rms_norm_forward(xs[s].data(), norm_kv.p(), static_cast<float>(c.rms_norm_eps), h[s].data(), rstd.data(), n, d);
  }
  auto opt_p = [](const FrozenTensor& t) { return t.defined() ? t.p() : nullptr; };
  for (int64_t j = M; j < L; ++j) {
    const FrozenLayer& fl = layers[j];
    const std::string wname = model::swiftkv_tensor_name(j, "q", "weight");
    const std::string bname = model::swiftkv_tensor_name(j, "q", "bias");
    MomentSums qs(d, qd, q_bias);
    for (size_t s = 0; s < sequences.size(); ++s) {
      const int64_t n = sequences[s].size();
      Buf nt(n * d), ns(n * d), r(n), qt(n * qd);
      rms_norm_forward(xt[s].data(), fl.attn_norm.p(), static_cast<float>(c.rms_norm_eps), nt.data(), r.data(), n, d);
      linear_forward(nt.data(), fl.wq.p(), opt_p(fl.bq), qt.data(), n, d, qd);
      rms_norm_forward(xs[s].data(), fl.attn_norm.p(), static_cast<float>(c.rms_norm_eps), ns.data(), r.data(), n, d);
      qs.add(ns.data(), {qt.data()}, {qd}, n);
    }
    const std::vector<double> before = as_solution(files.get(wname, {qd, d}), files.find(bname), d, qd, q_bias);
    const std::vector<double> fit = ridge_solve(qs, {0}, qd, opt.ridge);
    const double ssy = moment_ssy(qs, 0, qd), sb = moment_sse(qs, before, 0, qd), sf = moment_sse(qs, fit, 0, qd);
    CalibrationLayerError& e = res.layers[j - M];
    e.q_before = relative(sb, ssy);
    e.q_after = relative(std::min(sb, sf), ssy);
    if (sf < sb) store_fit(files, fit, wname, bname, d, qd, q_bias);
    if (j == L - 1) break;

    // Advance both streams through layer j: the teacher's own, the student's SwiftKV layer.
    const FrozenTensor wq = freeze(files.get(wname, {qd, d}));
    const FrozenTensor bq = q_bias ? freeze(files.get(bname, {qd})) : FrozenTensor{};
    const Tensor* qn = files.find(model::swiftkv_qk_norm_name(j, "q"));
    const FrozenTensor q_norm = qn ? freeze(*qn) : FrozenTensor{};
    const int64_t leader = M + (j - M) / G * G;
    const FrozenTensor wk = freeze(files.get(model::swiftkv_tensor_name(leader, "k", "weight"), {kv, d}));
    const FrozenTensor wv = freeze(files.get(model::swiftkv_tensor_name(leader, "v", "weight"), {kv, d}));
    const Tensor* bk = files.find(model::swiftkv_tensor_name(leader, "k", "bias"));
    const Tensor* bv = files.find(model::swiftkv_tensor_name(leader, "v", "bias"));
    const FrozenTensor bkf = bk ? freeze(*bk) : FrozenTensor{}, bvf = bv ? freeze(*bv) : FrozenTensor{};
    const Tensor* kn = files.find(model::swiftkv_qk_norm_name(leader, "k"));
    const FrozenTensor k_norm = kn ? freeze(*kn) : FrozenTensor{};
    for (size_t s = 0; s < sequences.size(); ++s) {
      const PackedSequence& seq = sequences[s];
      const int64_t n = seq.size();
      const LayerDims m = layer_dims(c, n, seq.positions.data(), seq.doc_start.data(), &rope);
      layer_forward(m, fl, fl.wq.p(), opt_p(fl.bq), opt_p(fl.q_norm), nullptr, nullptr, xt[s].data(), nullptr);
      Buf k(n * kv), v(n * kv);
      linear_forward(h[s].data(), wk.p(), opt_p(bkf), k.data(), n, d, kv);
      linear_forward(h[s].data(), wv.p(), opt_p(bvf), v.data(), n, d, kv);
      if (k_norm.defined()) {
        Buf r(n * c.num_kv_heads);
        rms_norm_forward(k.data(), k_norm.p(), m.eps, k.data(), r.data(), n * c.num_kv_heads, c.head_dim);
      }
      rope_forward(k.data(), n, c.num_kv_heads, c.head_dim, seq.positions.data(), rope.inv_freq.data(),
                   rope.interleaved);
      layer_forward(m, fl, wq.p(), opt_p(bq), opt_p(q_norm), k.data(), v.data(), xs[s].data(), nullptr);
      if (opt.on_sequence) opt.on_sequence(++done, progress_total, res.tokens);
    }
  }
}

}  // namespace

CalibrationResult calibrate_swiftkv(io::ModelFiles& files, const std::vector<PackedSequence>& sequences,
                                    const CalibrationOptions& opt) {
  const io::ModelConfig& c = files.config;
  if (!c.swiftkv_checkpoint) fail("calibration needs a SwiftKV model; convert the base model first");
  if (sequences.empty() || count_tokens(sequences) == 0) fail("calibration needs at least one token of data");
  const model::KVLayout layout = model::KVLayout::swiftkv(c);
  const int64_t L = c.num_layers, M = layout.first_skip, G = layout.group, groups = (L - M) / G, later = L - M;
  const int64_t d = c.hidden_size, kv = c.num_kv_heads * c.head_dim;
  const backend::Rope rope = model::make_rope(c, files.rope_interleaved);
  model::ModelWeights gw;
  model::bind_globals(files, gw);
  const FrozenTensor embed = freeze(gw.embed);
  std::vector<FrozenLayer> layers;
  for (int64_t i = 0; i < L; ++i)
    layers.push_back(freeze_layer(model::bind_layer(files, i, model::LayerPath::Teacher)));
  const FrozenTensor norm_kv = freeze(files.get(model::swiftkv_norm_name(), {d}));
  // Biases are fitted where the architecture has them (the converted model then carries SwiftKV ones).
  const bool bias = files.find(model::swiftkv_tensor_name(M, "k", "bias")) != nullptr;

  // Columns: the keys of layers M..L-1, then their values.
  MomentSums sums(d, 2 * later * kv, bias);
  CalibrationResult res;
  int64_t done = 0;
  std::vector<Buf> x_m;  // per sequence, for the query fit
  const int64_t progress_total = static_cast<int64_t>(sequences.size()) * (opt.fit_q ? later : 1);
  for (const PackedSequence& seq : sequences) {
    const int64_t n = seq.size();
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i)
      if (seq.ids[i] < 0 || seq.ids[i] >= c.vocab_size)
        fail("token id ", seq.ids[i], " is out of range for vocabulary size ", c.vocab_size);
    const LayerDims m = layer_dims(c, n, seq.positions.data(), seq.doc_start.data(), &rope);
    Buf x(n * d);
    for (int64_t i = 0; i < n; ++i) std::memcpy(x.data() + i * d, embed.p() + seq.ids[i] * d, d * sizeof(float));
    auto run = [&](int64_t l, const LayerTaps* taps) {
      const FrozenLayer& fl = layers[l];
      layer_forward(m, fl, fl.wq.p(), fl.bq.defined() ? fl.bq.p() : nullptr,
                    fl.q_norm.defined() ? fl.q_norm.p() : nullptr, nullptr, nullptr, x.data(), nullptr, taps);
    };
    for (int64_t l = 0; l < M; ++l) run(l, nullptr);
    if (opt.fit_q) x_m.push_back(x);
    Buf h(n * d), rstd(n);
    rms_norm_forward(x.data(), norm_kv.p(), m.eps, h.data(), rstd.data(), n, d);
    std::vector<Buf> k(later, Buf(n * kv)), v(later, Buf(n * kv));
    for (int64_t l = M; l < L; ++l) {
      const LayerTaps taps{k[l - M].data(), v[l - M].data()};
      run(l, &taps);
    }
    std::vector<const float*> blocks;
    for (const Buf& b : k) blocks.push_back(b.data());
    for (const Buf& b : v) blocks.push_back(b.data());
    sums.add(h.data(), blocks, std::vector<int64_t>(blocks.size(), kv), n);
    res.tokens += n;
    if (opt.on_sequence) opt.on_sequence(++done, progress_total, res.tokens);
  }
  res.lambda = ridge_lambda(sums, opt.ridge);

  res.layers.resize(later);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t leader = M + g * G;
    for (const char* proj : {"k", "v"}) {
      const bool is_k = proj[0] == 'k';
      std::vector<int64_t> members;
      for (int64_t j = leader; j < leader + G; ++j) members.push_back(((is_k ? 0 : later) + j - M) * kv);
      const std::string wname = model::swiftkv_tensor_name(leader, proj, "weight");
      const std::string bname = model::swiftkv_tensor_name(leader, proj, "bias");
      const Tensor* b0 = files.find(bname);
      const std::vector<double> before = as_solution(files.get(wname, {kv, d}), b0, d, kv, bias);
      const std::vector<double> fit = ridge_solve(sums, members, kv, opt.ridge);
      double sse_before = 0, sse_fit = 0;
      std::vector<double> rel_before, rel_fit;
      for (int64_t c0 : members) {
        const double ssy = moment_ssy(sums, c0, kv);
        const double sb = moment_sse(sums, before, c0, kv), sf = moment_sse(sums, fit, c0, kv);
        sse_before += sb;
        sse_fit += sf;
        rel_before.push_back(relative(sb, ssy));
        rel_fit.push_back(relative(sf, ssy));
      }
      // The ridge can only make the fit worse than the initialisation where that is already exact
      // on these tokens (layer M's own projection, G = 1): keep whichever is closer.
      const bool keep = sse_before <= sse_fit;
      for (int64_t j = leader; j < leader + G; ++j) {
        CalibrationLayerError& e = res.layers[j - M];
        e.layer = j;
        (is_k ? e.k_before : e.v_before) = rel_before[j - leader];
        (is_k ? e.k_after : e.v_after) = keep ? rel_before[j - leader] : rel_fit[j - leader];
      }
      if (!keep) store_fit(files, fit, wname, bname, d, kv, bias);
    }
  }
  if (opt.fit_q) fit_queries(files, sequences, std::move(x_m), layers, rope, opt, res, done, progress_total);
  return res;
}

std::vector<PackedSequence> calibration_sequences(const std::vector<Document>& docs, int64_t max_tokens,
                                                  int64_t max_seq_len) {
  if (max_tokens < 1) fail("the calibration token count must be at least 1, got ", max_tokens);
  std::vector<Document> taken;
  int64_t total = 0;
  for (const Document& doc : docs) {
    if (total >= max_tokens) break;
    Document d = doc;
    if (total + static_cast<int64_t>(d.ids.size()) > max_tokens) d.ids.resize(static_cast<size_t>(max_tokens - total));
    total += static_cast<int64_t>(d.ids.size());
    if (!d.ids.empty()) taken.push_back(std::move(d));
  }
  return pack_documents(taken, max_seq_len);
}

}  // namespace skv::train
