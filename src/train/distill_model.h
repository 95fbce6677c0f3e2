#pragma once
// The SwiftKV distillation step (docs/swiftkv.md#distillation) on one packed sequence: teacher and student
// are the two paths through one SwiftKV checkpoint. Layers 0..M-1 are identical for both, so
// they run once; then the teacher runs its own layers M..L-1 (forward only) and the student
// runs them with q_proj_swiftkv and K/V from norm_swiftkv(x_M), saving what its backward
// needs. Loss = KL(teacher || student) at temperature tau, times tau^2, plus a weighted MSE
// between the two hidden states at the last layer's input; the backward produces gradients
// for the trainable tensors only.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "io/model_files.h"
#include "model/swiftkv.h"
#include "train/decoder_layer.h"

namespace skv::train {

// One trainable tensor: a named slice of the flat parameter / gradient buffers.
struct ParamSlot {
  std::string name;  // Hugging Face name in the checkpoint
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;
};

struct LossWeights {
  double temperature = 2.0;
  double kl_scale = 0;   // multiplies the summed KL (tau^2 / tokens of the global batch)
  double mse_scale = 0;  // multiplies the summed squared error (weight / (tokens * hidden))
};

struct StepStats {
  double kl = 0, mse = 0;  // scaled, summed over the sequences run
  int64_t tokens = 0;
};

// What the student's loss needs of the teacher on one sequence of n tokens, as a teacher cache
// stores it (train/teacher_cache.h): the shared layers' output x_M (the student's input), the
// teacher's hidden state at the last layer's input (bf16: only the MSE target) and either
// - k = 0: its final-normed hidden state (bf16), from which the LM head recomputes the full
//   logits (the exact KL, at one LM-head product per token), or
// - k > 0: per token its k most probable next tokens at the distillation temperature, their
//   log-probabilities and the probability of all the others (the top-k KL, no teacher product).
struct TeacherTargets {
  int64_t k = 0;
  const float* x_m = nullptr;        // [n, d]
  const uint16_t* h_last = nullptr;  // [n, d] bf16
  const uint16_t* fn = nullptr;      // [n, d] bf16, k = 0
  const int32_t* top_ids = nullptr;  // [n, k]
  const float* top_logp = nullptr;   // [n, k]
  const float* rest = nullptr;       // [n]
};

// Owning buffers for one sequence's TeacherTargets.
struct TeacherTargetBuffers {
  std::vector<float> x_m, top_logp, rest;
  std::vector<uint16_t> h_last, fn;
  std::vector<int32_t> top_ids;
  int64_t k = 0;
  TeacherTargets view() const {
    return {k, x_m.data(), h_last.data(), fn.data(), top_ids.data(), top_logp.data(), rest.data()};
  }
};

class DistillModel {
 public:
  // files: a SwiftKV checkpoint (any architecture's *_swiftkv variant with its SwiftKV tensors).
  explicit DistillModel(io::ModelFiles files);

  const io::ModelConfig& config() const { return files_.config; }
  const io::ModelFiles& files() const { return files_; }
  const model::KVLayout& layout() const { return layout_; }

  // Trainable tensors, in a fixed order, all F32 in one flat buffer.
  const std::vector<ParamSlot>& slots() const { return slots_; }
  std::vector<float>& params() { return params_; }
  std::vector<float>& grads() { return grads_; }
  void zero_grads();

  // Runs teacher and student on one packed sequence (ids, per-document positions and
  // doc_start as in train/data.h) and accumulates the student's gradients into grads().
  // Returns this sequence's (scaled) loss terms.
  StepStats accumulate(const int32_t* ids, const int32_t* positions, const int32_t* doc_start, int64_t n,
                       const LossWeights& w);

  // Evaluation without gradients: the same loss terms (e.g. for a held-out set).
  StepStats evaluate(const int32_t* ids, const int32_t* positions, const int32_t* doc_start, int64_t n,
                     const LossWeights& w);

  // The teacher half alone (layers 0..L-1, and the LM head for k > 0; no student): the cached
  // targets of one sequence, top k at temperature tau (k = 0: the final hidden state).
  TeacherTargetBuffers teacher_targets(const int32_t* ids, const int32_t* positions, const int32_t* doc_start,
                                       int64_t n, double tau, int64_t k);

  // The student half on cached targets: the full KL on the logits of the cached final hidden
  // state (k = 0) or the top-k KL (grad_ops.h kl_topk_loss); the MSE against the bf16 hidden
  // state. For k > 0 the temperature must be the cache's.
  StepStats accumulate_cached(const TeacherTargets& t, const int32_t* positions, const int32_t* doc_start, int64_t n,
                              const LossWeights& w);
  StepStats evaluate_cached(const TeacherTargets& t, const int32_t* positions, const int32_t* doc_start, int64_t n,
                            const LossWeights& w);

  // The checkpoint's tensors with the trainable ones replaced by the current parameters (F32),
  // ready for export_hf_directory; everything else is the checkpoint's own tensor, untouched.
  io::ModelFiles files_with_params() const;

  // Rows of logits computed per LM-head chunk (bounds the memory of the [rows, vocab] blocks).
  void set_head_chunk_rows(int64_t rows) { head_chunk_ = rows; }

 private:
  struct Acts;
  struct Teacher;  // the live teacher's outputs on one sequence
  void check_sequence(const int32_t* ids, const int32_t* doc_start, int64_t n) const;
  void run_teacher(const LayerDims& m, const int32_t* ids, Teacher& t) const;
  // The student from x_M, its losses against `live` (full KL on the teacher's logits) or
  // `cached` (top-k KL), and with `backward` its gradients.
  StepStats run_student(const LayerDims& m, const float* x_m, const float* h_last, const Teacher* live,
                        const TeacherTargets* cached, const LossWeights& lw, bool backward);
  StepStats run(const int32_t* ids, const int32_t* positions, const int32_t* doc_start, int64_t n, const LossWeights& w,
                bool backward);
  StepStats run_cached(const TeacherTargets& t, const int32_t* positions, const int32_t* doc_start, int64_t n,
                       const LossWeights& w, bool backward);
  const float* param(int64_t slot) const { return params_.data() + slots_[slot].offset; }
  float* grad(int64_t slot) { return grads_.data() + slots_[slot].offset; }

  io::ModelFiles files_;
  model::KVLayout layout_;
  backend::Rope rope_;
  FrozenTensor embed_, final_norm_, lm_head_;
  std::vector<FrozenLayer> layers_;
  std::vector<float> params_, grads_;
  std::vector<ParamSlot> slots_;
  int64_t slot_norm_ = -1;
  std::vector<int64_t> slot_q_, slot_bq_, slot_qn_;                     // per layer >= M (index l - M)
  std::vector<int64_t> slot_k_, slot_v_, slot_bk_, slot_bv_, slot_kn_;  // per group leader
  int64_t head_chunk_ = 256;
};

}  // namespace skv::train
