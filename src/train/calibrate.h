#pragma once
// Calibrated SwiftKV conversion (docs/swiftkv.md, "Calibrated conversion"). The paper's
// initialisation averages a group's k/v_proj, although layer j's keys and values now come from
// x_M instead of x_j. Here each group leader's k/v_proj_swiftkv (and biases) is instead the
// ridge-regression fit of the teacher's own projections over calibration tokens:
//
//   min over W, b of  (1/G) sum_{j in group} sum_t ||W h_t + b - y_{j,t}||^2 + lambda ||W||^2
//
// with h_t = norm_swiftkv(x_M,t) and y_{j,t} = layer j's k_proj / v_proj output for token t.
// RoPE rotates the SwiftKV and the teacher keys alike (same position), so the fit is done before
// it. Qwen3's k_norm is not linear: its SwiftKV keys are fitted before the norm, against the
// teacher's keys before its k_norm, and k_norm_swiftkv keeps its initialisation.
//
// The sums are second moments accumulated in double while the teacher runs, so the fit is
// exact least squares over every token, not a stochastic estimate, and the errors before and
// after are computed from the same moments without a second pass.
#include <cstdint>
#include <functional>
#include <vector>

#include "io/model_files.h"
#include "train/data.h"

namespace skv::train {

// Second moments of rows x [in] (augmented with a constant 1 when `bias`) against rows y
// [out]: xx = sum x~ x~^T, xy = sum x~ y^T, yy[o] = sum y_o^2, all in double.
class MomentSums {
 public:
  MomentSums(int64_t in, int64_t out, bool bias);

  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  int64_t aug() const { return in_ + (bias_ ? 1 : 0); }  // rows of xx / xy
  bool bias() const { return bias_; }
  int64_t rows() const { return rows_; }
  const std::vector<double>& xx() const { return xx_; }  // [aug, aug]
  const std::vector<double>& xy() const { return xy_; }  // [aug, out]
  const std::vector<double>& yy() const { return yy_; }  // [out]

  // Adds n rows: x [n, in] and, for each block b, y_b [n, widths[b]] landing in the columns
  // that follow those of the blocks before it (sum of widths = out). Threaded over blocks.
  void add(const float* x, const std::vector<const float*>& y_blocks, const std::vector<int64_t>& widths, int64_t n);

 private:
  int64_t in_, out_;
  bool bias_;
  int64_t rows_ = 0;
  std::vector<double> xx_, xy_, yy_;
};

// The ridge solution for the column ranges `members` (each [first column, first + width)),
// all the same width w, fitted together as one projection (their mean target):
// returns X [aug, w] with (xx + lambda D) X = mean of the members' xy columns, D = identity on
// the first `in` diagonal entries (the bias is not penalised). lambda = ridge * mean of xx's
// first `in` diagonal entries. Cholesky (LAPACK dposv); throws if the system is singular.
std::vector<double> ridge_solve(const MomentSums& s, const std::vector<int64_t>& members, int64_t width, double ridge);

// sum_t ||X^T x~_t - y_t||^2 over the columns [first, first + width), from the moments alone.
// X: [aug, width] (the bias row last when s.bias()).
double moment_sse(const MomentSums& s, const std::vector<double>& X, int64_t first, int64_t width);
// sum of y^2 over those columns.
double moment_ssy(const MomentSums& s, int64_t first, int64_t width);

struct CalibrationOptions {
  double ridge = 1e-3;  // lambda = ridge * mean diagonal of sum h h^T
  // Then also fit each later layer's q_proj_swiftkv (and bias), in layer order: the input is the
  // layer's input norm of the student's own residual stream (the SwiftKV layers below it, with
  // their fitted projections), the target the teacher's Q_j (before any q_norm and RoPE).
  bool fit_q = false;
  // Called after each sequence with (sequences done, total, tokens so far).
  std::function<void(int64_t, int64_t, int64_t)> on_sequence;
};

// Relative errors ||fit - teacher||_F / ||teacher||_F of one later layer's keys and values over
// the calibration tokens, with the SwiftKV tensors the model came with and after the fit.
struct CalibrationLayerError {
  int64_t layer = 0;
  double k_before = 0, k_after = 0, v_before = 0, v_after = 0;
  double q_before = -1, q_after = -1;  // fit_q only (else -1)
};

struct CalibrationResult {
  int64_t tokens = 0;
  double lambda = 0;  // the ridge actually added
  std::vector<CalibrationLayerError> layers;
};

// files: a SwiftKV model in memory (after model::add_swiftkv_tensors). Runs the teacher path
// in F32 over `sequences` (packed as train/data.h packs them) and replaces every group
// leader's k/v_proj_swiftkv (and biases, where the architecture has them) with F32 fits, and
// with fit_q every later layer's q_proj_swiftkv (and bias). A fit is kept only where it is
// closer than what the model came with. norm_swiftkv and Qwen3's SwiftKV norms stay as they are.
CalibrationResult calibrate_swiftkv(io::ModelFiles& files, const std::vector<PackedSequence>& sequences,
                                    const CalibrationOptions& opt = {});

// The first `max_tokens` tokens of the documents, in order (the last one cut short), packed
// into sequences of at most max_seq_len.
std::vector<PackedSequence> calibration_sequences(const std::vector<Document>& docs, int64_t max_tokens,
                                                  int64_t max_seq_len);

}  // namespace skv::train
