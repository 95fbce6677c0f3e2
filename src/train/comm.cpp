#include "train/comm.h"

#include <cstdlib>

#include "core/error.h"

#ifdef SKV_HAVE_MPI
#include <mpi.h>
#endif

namespace skv::train {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

Comm& Comm::world() {
  static Comm comm;
  return comm;
}

Comm::Comm() {
  if (!launched_by_mpi()) return;
#ifdef SKV_HAVE_MPI
  int ok = 0;
  MPI_Initialized(&ok);
  if (!ok && MPI_Init(nullptr, nullptr) != MPI_SUCCESS) fail("MPI_Init failed");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  mpi_ = true;
#else
  fail("started by an MPI launcher, but this swiftkv was built without MPI (install libopenmpi-dev and rebuild)");
#endif
}

Comm::~Comm() {
#ifdef SKV_HAVE_MPI
  int done = 0;
  if (mpi_ && MPI_Finalized(&done) == MPI_SUCCESS && !done) MPI_Finalize();
#endif
}

std::string Comm::describe() const {
  return mpi_ ? "MPI, " + std::to_string(size_) + " ranks" : std::string("1 process");
}

namespace {
#ifdef SKV_HAVE_MPI
template <class T>
void allreduce(T* data, int64_t count, MPI_Datatype type) {
  // MPI counts are int: large buffers go in pieces.
  constexpr int64_t kPiece = int64_t{1} << 28;
  for (int64_t off = 0; off < count; off += kPiece) {
    const int n = static_cast<int>(std::min(kPiece, count - off));
    if (MPI_Allreduce(MPI_IN_PLACE, data + off, n, type, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      fail("MPI_Allreduce failed");
  }
}
#endif
}  // namespace

void Comm::allreduce_sum(float* data, int64_t count) {
#ifdef SKV_HAVE_MPI
  if (mpi_ && size_ > 1) allreduce(data, count, MPI_FLOAT);
#endif
}

void Comm::allreduce_sum(double* data, int64_t count) {
#ifdef SKV_HAVE_MPI
  if (mpi_ && size_ > 1) allreduce(data, count, MPI_DOUBLE);
#endif
}

uint64_t Comm::broadcast(uint64_t value) {
#ifdef SKV_HAVE_MPI
  if (mpi_ && size_ > 1) MPI_Bcast(&value, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
#endif
  return value;
}

void Comm::barrier() {
#ifdef SKV_HAVE_MPI
  if (mpi_ && size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

}  // namespace skv::train
