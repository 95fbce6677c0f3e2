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
    if (opt.on_sequence) opt.on_sequence(++done, static_cast<int64_t>(sequences.size()), res.tokens);
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
      const std::vector<double>& X = keep ? before : fit;
      for (int64_t j = leader; j < leader + G; ++j) {
        CalibrationLayerError& e = res.layers[j - M];
        e.layer = j;
        (is_k ? e.k_before : e.v_before) = rel_before[j - leader];
        (is_k ? e.k_after : e.v_after) = keep ? rel_before[j - leader] : rel_fit[j - leader];
      }
      if (keep) continue;
      Tensor w = Tensor::empty(DType::F32, {kv, d});
      float* wp = w.as<float>();
      for (int64_t o = 0; o < kv; ++o)
        for (int64_t i = 0; i < d; ++i) wp[o * d + i] = static_cast<float>(X[i * kv + o]);
      files.tensors[wname] = std::move(w);
      if (bias) {
        Tensor bt = Tensor::empty(DType::F32, {kv});
        for (int64_t o = 0; o < kv; ++o) bt.as<float>()[o] = static_cast<float>(X[d * kv + o]);
        files.tensors[bname] = std::move(bt);
      }
    }
  }
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
