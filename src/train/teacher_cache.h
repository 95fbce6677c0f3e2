#pragma once
// The teacher cache of distillation: what the student's loss needs of the teacher (TeacherTargets,
// train/distill_model.h) for every packed training sequence, computed once and memory-mapped, so
// that every later pass over the data, and every resumed run, skips the shared layers 0..M-1, the
// teacher's layers M..L-1 and its LM head.
//
// DIR/teacher.bin holds one record per sequence in the data loader's index order; a record of n
// tokens is x_M [n, d] f32, then for k = 0 the final-normed hidden state [n, d] bf16, for k > 0
// the top-k log-probs [n, k] f32, the rest mass [n] f32 and the top-k ids [n, k] i32, and last
// the hidden state at the last layer's input [n, d] bf16, padded to 4 bytes. x_M stays f32
// because the student's whole forward starts from it. The two hidden states are bf16: one is
// only the MSE's target, and the other's rounding moves the KL by parts in 10^4 (docs/distill.md).
// DIR/meta.json records what the records depend on (the model's frozen tensors, the packed data,
// k, the temperature) and how many leading sequences are complete; a build killed midway resumes
// from there. Written once, then read-only: nothing rewrites a record of a complete cache.
#include <cstdint>
#include <string>
#include <vector>

#include "train/distill_model.h"

namespace skv::train {

struct TeacherCacheSpec {
  int64_t hidden = 0, k = 0;
  double temperature = 0;
  std::string model_fingerprint, data_fingerprint;
  std::vector<int64_t> lengths;  // tokens of each sequence, in the loader's index order
};

class TeacherCache {
 public:
  static int64_t bytes_per_record(int64_t n, int64_t hidden, int64_t k);
  static int64_t total_bytes(const TeacherCacheSpec& spec);

  // Rank 0, before anyone opens the cache: creates DIR, teacher.bin at its full (sparse) size and
  // meta.json for `spec`, or checks that an existing cache was made for `spec` (an error names the
  // first field that differs).
  static void prepare(const std::string& dir, const TeacherCacheSpec& spec);

  // Opens a prepared cache; `write` opens teacher.bin for pwrite as well.
  TeacherCache(const std::string& dir, const TeacherCacheSpec& spec, bool write);
  ~TeacherCache();
  TeacherCache(const TeacherCache&) = delete;
  TeacherCache& operator=(const TeacherCache&) = delete;

  int64_t size() const { return static_cast<int64_t>(spec_.lengths.size()); }
  int64_t complete() const { return complete_; }  // leading sequences recorded (from meta.json)

  void write(int64_t seq, const TeacherTargetBuffers& t);  // the whole record of sequence `seq`
  void sync();                                             // this process's writes reach the disk
  // After every rank's sync(): sequences 0..done-1 are complete; `record` (rank 0) writes it
  // to meta.json, the other ranks only take note.
  void commit(int64_t done, bool record);

  // A complete cache's record of `seq`, from the read-only mapping (made on first use).
  TeacherTargets get(int64_t seq);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, bin_;
  TeacherCacheSpec spec_;
  std::vector<int64_t> offsets_;
  int64_t complete_ = 0;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
};

}  // namespace skv::train
