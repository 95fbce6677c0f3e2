// The CPU backend serves host memory: the op fronts reach the kernels of this folder through it.
#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"

namespace skv::backend::cpu {
namespace {

class CpuBackend final : public Backend {
 public:
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override { cpu::linear(x, w, bias, y); }
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) override {
    cpu::rms_norm(x, weight, eps, y);
  }
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override {
    cpu::embedding(table, ids.as<int32_t>(), ids.numel(), out);
  }
  void add_inplace(Tensor& y, const Tensor& x) override { cpu::add_inplace(y, x); }
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override { cpu::silu_mul(gate, up, out); }
  void rope(Tensor& x, int64_t heads, const Tensor& positions, const backend::Rope& rope) override {
    cpu::rope(x, heads, positions.as<int32_t>(), rope);
  }
  void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                 int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads, float scale, Tensor& out,
                 int64_t window, int64_t split_from) override {
    cpu::attention(q, k_pool, v_pool, block_table.as<int32_t>(), block_table.numel(), block_size, n_past, num_heads,
                   num_kv_heads, scale, out, window, split_from);
  }
  void log_softmax_rows(Tensor& x) override { cpu::log_softmax_rows(x); }
  void softmax_rows(Tensor& x) override { cpu::softmax_rows(x); }
  void copy_cols(const Tensor& src, int64_t col0, Tensor& dst) override { cpu::copy_cols(src, col0, dst); }
  void store_rows(const Tensor& src, Tensor& dst) override { cpu::store_rows(src, dst); }
};

}  // namespace

Backend& host_backend() {
  static CpuBackend b;
  return b;
}

}  // namespace skv::backend::cpu
