#pragma once
// A test-only device whose memory host code must not touch. Its memory is one mmap'd arena kept
// PROT_NONE except while one of its own primitives runs (a copy, or an op, computed by the CPU
// backend with the arena opened). Model or engine code that reads or writes device memory
// directly, instead of through backend primitives, faults: running a model on it proves the
// op contract of backend/backend.h.
#include <sys/mman.h>

#include <cstring>
#include <mutex>
#include <string>

#include "backend/backend.h"
#include "core/device.h"
#include "core/error.h"

namespace skv::testing {

class GuardedDevice final : public DeviceMemory, public backend::Backend {
 public:
  static GuardedDevice& instance() {
    static GuardedDevice d;
    return d;
  }
  Device device() const { return device_; }
  bool contains(const void* p) const {
    const auto* b = static_cast<const char*>(p);
    return b >= base_ && b < base_ + kArenaBytes;
  }
  size_t bytes_in_use() const { return used_; }

  // ---- DeviceMemory: a bump allocator (tests are short-lived; freed blocks are not reused).
  std::string name() const override { return "guarded-test-device"; }
  void* allocate(size_t bytes) override {
    std::lock_guard lock(mu_);
    const size_t rounded = (bytes + 63) / 64 * 64;
    if (used_ + rounded > kArenaBytes) fail_resource("guarded test device: arena of ", kArenaBytes, " bytes is full");
    void* p = base_ + used_;
    used_ += rounded == 0 ? 64 : rounded;
    return p;
  }
  void deallocate(void*) override {}
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    Open o(*this);
    std::memmove(dst, src, bytes);
  }
  void zero(void* dst, size_t bytes) override {
    Open o(*this);
    std::memset(dst, 0, bytes);
  }

  // ---- Backend: the host's (CPU) backend, run with the arena opened.
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    Open o(*this);
    host().linear(x, w, bias, y);
  }
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) override {
    Open o(*this);
    host().rms_norm(x, weight, eps, y);
  }
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    Open o(*this);
    host().embedding(table, ids, out);
  }
  void add_inplace(Tensor& y, const Tensor& x) override {
    Open o(*this);
    host().add_inplace(y, x);
  }
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    Open o(*this);
    host().silu_mul(gate, up, out);
  }
  void rope(Tensor& x, int64_t heads, const Tensor& positions, const backend::Rope& rope) override {
    Open o(*this);
    host().rope(x, heads, positions, rope);
  }
  void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                 int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads, float scale, Tensor& out,
                 int64_t window, int64_t split_from) override {
    Open o(*this);
    host().attention(q, k_pool, v_pool, block_table, block_size, n_past, num_heads, num_kv_heads, scale, out, window,
                     split_from);
  }
  void log_softmax_rows(Tensor& x) override {
    Open o(*this);
    host().log_softmax_rows(x);
  }
  void softmax_rows(Tensor& x) override {
    Open o(*this);
    host().softmax_rows(x);
  }
  void store_rows(const Tensor& src, Tensor& dst) override {
    Open o(*this);
    host().store_rows(src, dst);
  }
  void copy_cols(const Tensor& src, int64_t col0, Tensor& dst) override {
    Open o(*this);
    host().copy_cols(src, col0, dst);
  }

 private:
  static constexpr size_t kArenaBytes = size_t{8} << 30;  // address space only: pages come on first touch

  // Opens the arena for host access while a primitive runs (primitives do not nest).
  struct Open {
    GuardedDevice& d;
    explicit Open(GuardedDevice& dev) : d(dev) { d.protect(PROT_READ | PROT_WRITE); }
    ~Open() { d.protect(PROT_NONE); }
  };
  static backend::Backend& host() { return backend::backend_for(kHost); }
  void protect(int prot) {
    const size_t page = 4096, span = (used_ + page - 1) / page * page;  // the part ever handed out
    if (span && mprotect(base_, span, prot) != 0) fail_internal("guarded test device: mprotect failed");
  }

  GuardedDevice() {
    void* p = mmap(nullptr, kArenaBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail_resource("guarded test device: cannot reserve the arena");
    base_ = static_cast<char*>(p);
    device_ = register_device(this);
    backend::register_backend(device_, this);
  }

  char* base_ = nullptr;
  size_t used_ = 0;
  std::mutex mu_;
  Device device_;
};

}  // namespace skv::testing
