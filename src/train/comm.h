#pragma once
// Data-parallel communication for distillation: every rank runs its share of a global batch
// and the gradient (and loss) sums are all-reduced, so each rank applies the same update.
// Uses MPI when the build found it (Debian's OpenMPI) and the process was started by an MPI
// launcher (mpirun / srun); otherwise a single-rank no-op, so plain runs never touch MPI.
#include <cstdint>
#include <string>

namespace skv::train {

class Comm {
 public:
  // Initialises MPI on first use when launched under it.
  static Comm& world();
  ~Comm();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool using_mpi() const { return mpi_; }
  std::string describe() const;  // "1 process" / "MPI, 2 ranks"

  // In-place sums over all ranks (every rank gets the result).
  void allreduce_sum(float* data, int64_t count);
  void allreduce_sum(double* data, int64_t count);
  // Every rank gets rank 0's value: a check that all ranks agree on something (e.g. settings).
  uint64_t broadcast(uint64_t value);
  void barrier();

 private:
  Comm();
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

// True when this process was started by an MPI launcher (its environment says so).
bool launched_by_mpi();

}  // namespace skv::train
