// Operator fronts: validate shapes / dtypes / devices (skv::fail_internal with the op, the tensor and
// the offending value), then call the backend of the tensors' device.
#include "backend/ops.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"
#include "core/error.h"

namespace skv::backend {

namespace {

bool is_kv_dtype(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0 || t == DType::MXFP8;
}

void need_host(const char* op, const char* name, const Tensor& t) {
  if (!t.device.is_host())
    fail_internal(op, ": tensor '", name, "' must be in host memory, it is on ", device_name(t.device));
}

void same_device(const char* op, const char* name, const Tensor& t, Device d) {
  if (t.device != d)
    fail_internal(op, ": tensor '", name, "' is on ", device_name(t.device), ", the others on ", device_name(d));
}

void need_i32_vector(const char* op, const char* name, const Tensor& t, int64_t n) {
  if (t.dtype != DType::I32) fail_internal(op, ": tensor '", name, "' must be I32, got ", dtype_name(t.dtype));
  if (t.numel() != n) fail_internal(op, ": tensor '", name, "' ", t.shape_str(), " should have ", n, " elements");
  if (n > 0 && !t.defined()) fail_internal(op, ": tensor '", name, "' has no data");
}

void need_data(const char* op, const char* name, const Tensor& t) {
  if (!t.defined() && t.numel() != 0) fail_internal(op, ": tensor '", name, "' ", t.shape_str(), " has no data");
}

void need_f32(const char* op, const char* name, const Tensor& t) {
  if (t.dtype != DType::F32) fail_internal(op, ": tensor '", name, "' must be F32, got ", dtype_name(t.dtype));
}

void need_float_like(const char* op, const char* name, const Tensor& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail_internal(op, ": tensor '", name, "' must be F32, F16 or BF16, got ", dtype_name(t.dtype));
}

void need_2d(const char* op, const char* name, const Tensor& t) {
  if (t.shape.size() != 2) fail_internal(op, ": tensor '", name, "' must be 2-D, got shape ", t.shape_str());
}

void check_tensor(const char* op, const char* name, const Tensor& t) { need_data(op, name, t); }

bool overlaps(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const uint8_t*>(a.data);
  const auto* b0 = static_cast<const uint8_t*>(b.data);
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// SKV_FP8_ACTIVATIONS sets the starting mode, so commands that take no flag for it follow it too.
std::atomic<Fp8Activations>& fp8_mode() {
  static std::atomic<Fp8Activations> mode{[] {
    const char* env = std::getenv("SKV_FP8_ACTIVATIONS");
    return env && *env ? parse_fp8_activations(env) : Fp8Activations::F32;
  }()};
  return mode;
}

}  // namespace

void set_fp8_activations(Fp8Activations mode) { fp8_mode().store(mode, std::memory_order_relaxed); }
Fp8Activations fp8_activations() { return fp8_mode().load(std::memory_order_relaxed); }

Fp8Activations parse_fp8_activations(const std::string& name) {
  if (name == "f32") return Fp8Activations::F32;
  if (name == "fp8" || name == "e4m3") return Fp8Activations::E4M3;
  fail("unknown FP8 activation mode ", quote_bounded(name), " (choose f32 or fp8)");
}

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
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::FP8:
      break;
    default:
      fail_internal(op, ": weight dtype ", dtype_name(w.dtype), " is not supported");
  }
  const int64_t out = w.dim(0), in = w.dim(1);
  if (x.cols() != in)
    fail_internal(op, ": x ", x.shape_str(), " has ", x.cols(), " features but w ", w.shape_str(), " expects ", in);
  if (y.rows() != x.rows() || y.cols() != out)
    fail_internal(op, ": y ", y.shape_str(), " should be [", x.rows(), ", ", out, "] for x ", x.shape_str(), " and w ",
                  w.shape_str());
  if (in % dtype_block_size(w.dtype) != 0)
    fail_internal(op, ": in_features ", in, " is not a multiple of the ", dtype_name(w.dtype), " block size");
  if (bias) {
    check_tensor(op, "bias", *bias);
    need_float_like(op, "bias", *bias);
    if (bias->numel() != out) fail_internal(op, ": bias ", bias->shape_str(), " should have ", out, " elements");
  }
  if (overlaps(x, y)) fail_internal(op, ": y must not alias x");
  same_device(op, "w", w, x.device);
  same_device(op, "y", y, x.device);
  if (bias) same_device(op, "bias", *bias, x.device);
  backend_for(x.device).linear(x, w, bias, y);
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
    fail_internal(op, ": weight ", weight.shape_str(), " does not match the ", x.cols(), " features of x ",
                  x.shape_str());
  if (y.rows() != x.rows() || y.cols() != x.cols())
    fail_internal(op, ": y ", y.shape_str(), " does not match x ", x.shape_str());
  if (y.data != x.data && overlaps(x, y)) fail_internal(op, ": y partially overlaps x");
  same_device(op, "weight", weight, x.device);
  same_device(op, "y", y, x.device);
  backend_for(x.device).rms_norm(x, weight, eps, y);
}

void embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  const char* op = "embedding";
  check_tensor(op, "table", table);
  check_tensor(op, "out", out);
  need_2d(op, "table", table);
  need_f32(op, "out", out);
  if (table.dtype == DType::I32) fail_internal(op, ": table dtype I32 is not supported");
  const int64_t n = ids.numel();
  need_i32_vector(op, "ids", ids, n);
  if (out.rows() != n || out.cols() != table.cols())
    fail_internal(op, ": out ", out.shape_str(), " should be [", n, ", ", table.cols(), "]");
  same_device(op, "ids", ids, table.device);
  same_device(op, "out", out, table.device);
  // Ids on a device are the caller's to check before they are uploaded.
  if (ids.device.is_host()) {
    const int64_t vocab = table.dim(0);
    const int32_t* p = ids.as<int32_t>();
    for (int64_t i = 0; i < n; ++i)
      if (p[i] < 0 || p[i] >= vocab) fail(op, ": token id ", p[i], " at position ", i, " is outside [0, ", vocab, ")");
  }
  backend_for(table.device).embedding(table, ids, out);
}

void add_inplace(Tensor& y, const Tensor& x) {
  const char* op = "add_inplace";
  check_tensor(op, "y", y);
  check_tensor(op, "x", x);
  need_f32(op, "y", y);
  need_f32(op, "x", x);
  if (y.numel() != x.numel() || y.cols() != x.cols())
    fail_internal(op, ": x ", x.shape_str(), " does not match y ", y.shape_str());
  same_device(op, "x", x, y.device);
  backend_for(y.device).add_inplace(y, x);
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
    fail_internal(op, ": up ", up.shape_str(), " does not match gate ", gate.shape_str());
  if (out.numel() != gate.numel() || out.cols() != gate.cols())
    fail_internal(op, ": out ", out.shape_str(), " does not match gate ", gate.shape_str());
  same_device(op, "up", up, gate.device);
  same_device(op, "out", out, gate.device);
  backend_for(gate.device).silu_mul(gate, up, out);
}

void rope(Tensor& x, int64_t heads, const Tensor& positions, const Rope& rope) {
  const char* op = "rope";
  check_tensor(op, "x", x);
  need_f32(op, "x", x);
  if (rope.head_dim <= 0 || rope.head_dim % 2 != 0)
    fail_internal(op, ": head_dim ", rope.head_dim, " must be positive and even");
  if (static_cast<int64_t>(rope.inv_freq.size()) != rope.head_dim / 2)
    fail_internal(op, ": inv_freq has ", rope.inv_freq.size(), " entries, expected head_dim / 2 = ", rope.head_dim / 2);
  if (heads <= 0 || x.cols() != heads * rope.head_dim)
    fail_internal(op, ": x ", x.shape_str(), " does not hold ", heads, " heads of ", rope.head_dim);
  need_i32_vector(op, "positions", positions, x.rows());
  same_device(op, "positions", positions, x.device);
  backend_for(x.device).rope(x, heads, positions, rope);
}

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_table,
               int64_t block_size, int64_t n_past, int64_t num_heads, int64_t num_kv_heads, float scale, Tensor& out,
               int64_t window, int64_t split_from) {
  const char* op = "attention";
  check_tensor(op, "q", q);
  check_tensor(op, "k_pool", k_cache);
  check_tensor(op, "v_pool", v_cache);
  check_tensor(op, "out", out);
  need_f32(op, "q", q);
  need_f32(op, "out", out);
  if (!is_kv_dtype(k_cache.dtype) || k_cache.dtype != v_cache.dtype)
    fail_internal(op, ": pools of ", dtype_name(k_cache.dtype), " / ", dtype_name(v_cache.dtype),
                  " (want one of F32, F16, BF16, Q8_0, MXFP8 for both)");
  if (block_size <= 0 || k_cache.rows() % block_size != 0)
    fail_internal(op, ": pool of ", k_cache.rows(), " rows does not split into blocks of ", block_size);
  if (block_table.dtype != DType::I32 || block_table.numel() * block_size < n_past + q.rows())
    fail_internal(op, ": block table (", dtype_name(block_table.dtype), ", ", block_table.numel(),
                  " blocks) does not cover ", n_past + q.rows(), " positions of blocks of ", block_size);
  same_device(op, "block_table", block_table, q.device);
  if (num_heads <= 0 || num_kv_heads <= 0 || num_heads % num_kv_heads != 0)
    fail_internal(op, ": num_heads ", num_heads, " must be a positive multiple of num_kv_heads ", num_kv_heads);
  if (q.cols() % num_heads != 0) fail_internal(op, ": q ", q.shape_str(), " does not split into ", num_heads, " heads");
  const int64_t D = q.cols() / num_heads;
  if (D % dtype_block_size(k_cache.dtype) != 0)
    fail_internal(op, ": head_dim ", D, " is not a multiple of the ", dtype_name(k_cache.dtype), " block");
  if (k_cache.cols() != num_kv_heads * D || v_cache.cols() != num_kv_heads * D)
    fail_internal(op, ": caches ", k_cache.shape_str(), " / ", v_cache.shape_str(), " should have ", num_kv_heads,
                  " x ", D, " columns");
  if (k_cache.rows() != v_cache.rows())
    fail_internal(op, ": k_cache ", k_cache.shape_str(), " and v_cache ", v_cache.shape_str(), " differ");
  if (n_past < 0) fail_internal(op, ": n_past ", n_past, " is negative");
  if (out.rows() != q.rows() || out.cols() != q.cols())
    fail_internal(op, ": out ", out.shape_str(), " does not match q ", q.shape_str());
  if (overlaps(q, out)) fail_internal(op, ": out must not alias q");
  same_device(op, "k_cache", k_cache, q.device);
  same_device(op, "v_cache", v_cache, q.device);
  same_device(op, "out", out, q.device);
  if (window < 0) fail_internal(op, ": sliding window ", window, " must be positive (0: none)");
  backend_for(q.device).attention(q, k_cache, v_cache, block_table, block_size, n_past, num_heads, num_kv_heads, scale,
                                  out, window, split_from);
}

void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, int64_t num_heads,
               int64_t num_kv_heads, float scale, Tensor& out, int64_t window) {
  if (n_past < 0 || n_past + q.rows() > k_cache.rows())
    fail_resource("attention: positions up to ", n_past + q.rows(), " exceed the cache capacity ", k_cache.rows());
  static const int32_t kBlock0 = 0;
  const Tensor host_table = host_i32(&kBlock0, 1);
  const Tensor table = q.device.is_host() ? host_table : clone(host_table, q.device);
  attention(q, k_cache, v_cache, table, std::max<int64_t>(1, k_cache.rows()), n_past, num_heads, num_kv_heads, scale,
            out, window);
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
  backend_for(x.device).log_softmax_rows(x);
}

void softmax_rows(Tensor& x) {
  check_tensor("softmax_rows", "x", x);
  need_f32("softmax_rows", "x", x);
  backend_for(x.device).softmax_rows(x);
}

void copy(const Tensor& src, Tensor& dst) {
  const char* op = "copy";
  check_tensor(op, "src", src);
  check_tensor(op, "dst", dst);
  if (src.dtype != dst.dtype || src.numel() != dst.numel())
    fail_internal(op, ": src ", dtype_name(src.dtype), " ", src.shape_str(), " and dst ", dtype_name(dst.dtype), " ",
                  dst.shape_str(), " differ");
  const size_t bytes = src.nbytes();
  if (src.device == dst.device || src.device.is_host() || dst.device.is_host()) {
    // The device that is not the host (either, when both are the same) performs the transfer.
    const Device via = dst.device.is_host() ? src.device : dst.device;
    device_memory(via).copy(dst.data, dst.device, src.data, src.device, bytes);
    return;
  }
  Tensor staged = Tensor::empty(src.dtype, src.shape);  // between two devices: through the host
  device_memory(src.device).copy(staged.data, kHost, src.data, src.device, bytes);
  device_memory(dst.device).copy(dst.data, dst.device, staged.data, kHost, bytes);
}

void copy_cols(const Tensor& src, int64_t col0, Tensor& dst) {
  const char* op = "copy_cols";
  check_tensor(op, "src", src);
  check_tensor(op, "dst", dst);
  need_f32(op, "src", src);
  need_f32(op, "dst", dst);
  if (src.rows() != dst.rows() || col0 < 0 || col0 + dst.cols() > src.cols())
    fail_internal(op, ": columns [", col0, ", ", col0 + dst.cols(), ") of ", src.shape_str(), " into ",
                  dst.shape_str());
  same_device(op, "dst", dst, src.device);
  backend_for(src.device).copy_cols(src, col0, dst);
}

void store_rows(const Tensor& src, Tensor& dst) {
  const char* op = "store_rows";
  check_tensor(op, "src", src);
  check_tensor(op, "dst", dst);
  need_f32(op, "src", src);
  if (!is_kv_dtype(dst.dtype)) fail_internal(op, ": cannot store rows as ", dtype_name(dst.dtype));
  if (src.rows() != dst.rows() || src.cols() != dst.cols())
    fail_internal(op, ": ", src.shape_str(), " into ", dst.shape_str());
  same_device(op, "dst", dst, src.device);
  backend_for(src.device).store_rows(src, dst);
}

void zero(Tensor& t) {
  check_tensor("zero", "t", t);
  device_memory(t.device).zero(t.data, t.nbytes());
}

Tensor to_host(const Tensor& t) { return t.device.is_host() ? t : clone(t, kHost); }

Tensor clone(const Tensor& t, Device device) {
  Tensor out = Tensor::empty(t.dtype, t.shape, device);
  copy(t, out);
  return out;
}

Tensor host_i32(const int32_t* values, int64_t n) { return Tensor::view(DType::I32, {n}, values); }

Tensor to_dtype(const Tensor& t, DType to) {
  check_tensor("to_dtype", "t", t);
  need_host("to_dtype", "t", t);
  if (to != DType::F32 && to != DType::F16 && to != DType::BF16 && to != DType::Q8_0 && to != DType::FP8)
    fail("to_dtype: target dtype must be F32, F16, BF16, Q8_0 or FP8, got ", dtype_name(to));
  if (to == DType::FP8 && t.shape.size() != 2)
    fail("to_dtype: FP8 holds matrices (a scale per row), got ", t.shape_str());
  if (to == DType::Q8_0 && t.cols() % 32 != 0)
    fail("to_dtype: Q8_0 needs rows of a multiple of 32 values, got ", t.cols());
  if (t.dtype == DType::I32) fail("to_dtype: cannot convert an I32 tensor to ", dtype_name(to));
  return cpu::to_dtype(t, to);
}

}  // namespace skv::backend
