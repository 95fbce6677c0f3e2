// Operator fronts: validate shapes / dtypes / devices (skv::fail with the op, the tensor and
// the offending value), then dispatch on device. Only the CPU backend exists so far.
#include "backend/ops.h"

#include <algorithm>
#include <cstdint>

#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

namespace skv::ops {

namespace {

void need_cpu(const char* op, const char* name, const Tensor& t) {
  if (t.device != Device::CPU) fail(op, ": tensor '", name, "' is on a device this build has no backend for (CUDA)");
}

void need_data(const char* op, const char* name, const Tensor& t) {
  if (!t.defined() && t.numel() != 0) fail(op, ": tensor '", name, "' ", t.shape_str(), " has no data");
}

void need_f32(const char* op, const char* name, const Tensor& t) {
  if (t.dtype != DType::F32) fail(op, ": tensor '", name, "' must be F32, got ", dtype_name(t.dtype));
}

void need_float_like(const char* op, const char* name, const Tensor& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(op, ": tensor '", name, "' must be F32, F16 or BF16, got ", dtype_name(t.dtype));
}

void need_2d(const char* op, const char* name, const Tensor& t) {
  if (t.shape.size() != 2) fail(op, ": tensor '", name, "' must be 2-D, got shape ", t.shape_str());
}

void check_tensor(const char* op, const char* name, const Tensor& t) {
  need_cpu(op, name, t);
  need_data(op, name, t);
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const uint8_t*>(a.data);
  const auto* b0 = static_cast<const uint8_t*>(b.data);
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

}  // namespace

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const char* op = "linear";
  check_tensor(op, "x", x);
  check_tensor(op, "w", w);
  check_tensor(op, "y", y);
  need_f32(op, "x", x);
  need_f32(op, "y", y);
  need_2d(op, "w", w);
  switch (w.dtype) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
      break;
    default:
      fail(op, ": weight dtype ", dtype_name(w.dtype), " is not supported");
  }
  const int64_t out = w.dim(0), in = w.dim(1);
  if (x.cols() != in)
    fail(op, ": x ", x.shape_str(), " has ", x.cols(), " features but w ", w.shape_str(), " expects ", in);
  if (y.rows() != x.rows() || y.cols() != out)
    fail(op, ": y ", y.shape_str(), " should be [", x.rows(), ", ", out, "] for x ", x.shape_str(), " and w ",
         w.shape_str());
  if (in % dtype_block_size(w.dtype) != 0)
    fail(op, ": in_features ", in, " is not a multiple of the ", dtype_name(w.dtype), " block size");
  if (bias) {
    check_tensor(op, "bias", *bias);
    need_float_like(op, "bias", *bias);
    if (bias->numel() != out) fail(op, ": bias ", bias->shape_str(), " should have ", out, " elements");
  }
  if (overlaps(x, y)) fail(op, ": y must not alias x");
  cpu::linear(x, w, bias, y);
}

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  const char* op = "rms_norm";
  check_tensor(op, "x", x);
  check_tensor(op, "weight", weight);
  check_tensor(op, "y", y);
  need_f32(op, "x", x);
  need_f32(op, "y", y);
  need_float_like(op, "weight", weight);
  if (weight.numel() != x.cols())
    fail(op, ": weight ", weight.shape_str(), " does not match the ", x.cols(), " features of x ", x.shape_str());
  if (y.rows() != x.rows() || y.cols() != x.cols())
    fail(op, ": y ", y.shape_str(), " does not match x ", x.shape_str());
  if (y.data != x.data && overlaps(x, y)) fail(op, ": y partially overlaps x");
  cpu::rms_norm(x, weight, eps, y);
}

void embedding(const Tensor& table, const int32_t* ids, int64_t n, Tensor& out) {
  const char* op = "embedding";
  check_tensor(op, "table", table);
  check_tensor(op, "out", out);
  need_2d(op, "table", table);
  need_f32(op, "out", out);
  if (table.dtype == DType::I32) fail(op, ": table dtype I32 is not supported");
  if (n < 0 || (n > 0 && !ids)) fail(op, ": bad id list (n = ", n, ")");
  if (out.rows() != n || out.cols() != table.cols())
    fail(op, ": out ", out.shape_str(), " should be [", n, ", ", table.cols(), "]");
  const int64_t vocab = table.dim(0);
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      fail(op, ": token id ", ids[i], " at position ", i, " is outside [0, ", vocab, ")");
  cpu::embedding(table, ids, n, out);
}

void add_inplace(Tensor& y, const Tensor& x) {
  const char* op = "add_inplace";
  check_tensor(op, "y", y);
  check_tensor(op, "x", x);
  need_f32(op, "y", y);
  need_f32(op, "x", x);
  if (y.numel() != x.numel() || y.cols() != x.cols())
    fail(op, ": x ", x.shape_str(), " does not match y ", y.shape_str());
  cpu::add_inplace(y, x);
}

void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  const char* op = "silu_mul";
  check_tensor(op, "gate", gate);
  check_tensor(op, "up", up);
  check_tensor(op, "out", out);
  need_f32(op, "gate", gate);
  need_f32(op, "up", up);
  need_f32(op, "out", out);
  if (gate.numel() != up.numel() || gate.cols() != up.cols())
    fail(op, ": up ", up.shape_str(), " does not match gate ", gate.shape_str());
  if (out.numel() != gate.numel() || out.cols() != gate.cols())
    fail(op, ": out ", out.shape_str(), " does not match gate ", gate.shape_str());
  cpu::silu_mul(gate, up, out);
}

void rope(Tensor& x, int64_t heads, const int32_t* positions, const Rope& rope) {
  const char* op = "rope";
  check_tensor(op, "x", x);
  need_f32(op, "x", x);
  if (rope.head_dim <= 0 || rope.head_dim % 2 != 0)
    fail(op, ": head_dim ", rope.head_dim, " must be positive and even");
  if (static_cast<int64_t>(rope.inv_freq.size()) != rope.head_dim / 2)
    fail(op, ": inv_freq has ", rope.inv_freq.size(), " entries, expected head_dim / 2 = ", rope.head_dim / 2);
  if (heads <= 0 || x.cols() != heads * rope.head_dim)
    fail(op, ": x ", x.shape_str(), " does not hold ", heads, " heads of ", rope.head_dim);
  if (x.rows() > 0 && !positions) fail(op, ": no positions");
  cpu::rope(x, heads, positions, rope);
}

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, int64_t num_heads,
               int64_t num_kv_heads, float scale, Tensor& out, int64_t window) {
  const char* op = "attention";
  check_tensor(op, "q", q);
  check_tensor(op, "k_cache", k_cache);
  check_tensor(op, "v_cache", v_cache);
  check_tensor(op, "out", out);
  need_f32(op, "q", q);
  need_f32(op, "k_cache", k_cache);
  need_f32(op, "v_cache", v_cache);
  need_f32(op, "out", out);
  if (num_heads <= 0 || num_kv_heads <= 0 || num_heads % num_kv_heads != 0)
    fail(op, ": num_heads ", num_heads, " must be a positive multiple of num_kv_heads ", num_kv_heads);
  if (q.cols() % num_heads != 0) fail(op, ": q ", q.shape_str(), " does not split into ", num_heads, " heads");
  const int64_t D = q.cols() / num_heads;
  if (k_cache.cols() != num_kv_heads * D || v_cache.cols() != num_kv_heads * D)
    fail(op, ": caches ", k_cache.shape_str(), " / ", v_cache.shape_str(), " should have ", num_kv_heads, " x ", D,
         " columns");
  if (k_cache.rows() != v_cache.rows())
    fail(op, ": k_cache ", k_cache.shape_str(), " and v_cache ", v_cache.shape_str(), " differ");
  if (n_past < 0 || n_past + q.rows() > k_cache.rows())
    fail(op, ": positions up to ", n_past + q.rows(), " exceed the cache capacity ", k_cache.rows());
  if (out.rows() != q.rows() || out.cols() != q.cols())
    fail(op, ": out ", out.shape_str(), " does not match q ", q.shape_str());
  if (overlaps(q, out)) fail(op, ": out must not alias q");
  if (window < 0) fail(op, ": sliding window ", window, " must be positive (0: none)");
  cpu::attention(q, k_cache, v_cache, n_past, num_heads, num_kv_heads, scale, out, window);
}

double attention_keys(int64_t n_past, int64_t n, int64_t window) {
  const double full = n * (n_past + 1.0) + n * (n - 1) / 2.0;  // row i sees n_past + i + 1 keys
  if (window <= 0 || n_past + n <= window) return full;
  // Rows at positions p < W see p + 1 keys, the rest exactly W.
  const int64_t short_rows = std::max<int64_t>(0, std::min<int64_t>(n, window - n_past));
  return short_rows * (n_past + 1.0) + short_rows * (short_rows - 1) / 2.0 +
         static_cast<double>(n - short_rows) * static_cast<double>(window);
}

void log_softmax_rows(Tensor& x) {
  check_tensor("log_softmax_rows", "x", x);
  need_f32("log_softmax_rows", "x", x);
  cpu::log_softmax_rows(x);
}

void softmax_rows(Tensor& x) {
  check_tensor("softmax_rows", "x", x);
  need_f32("softmax_rows", "x", x);
  cpu::softmax_rows(x);
}

void set_num_threads(int n) { cpu::set_num_threads(n); }
int num_threads() { return cpu::num_threads(); }

Tensor to_dtype(const Tensor& t, DType to) {
  check_tensor("to_dtype", "t", t);
  if (to != DType::F32 && to != DType::F16 && to != DType::BF16)
    fail("to_dtype: target dtype must be F32, F16 or BF16, got ", dtype_name(to));
  if (t.dtype == DType::I32) fail("to_dtype: cannot convert an I32 tensor to ", dtype_name(to));
  return cpu::to_dtype(t, to);
}

}  // namespace skv::ops
