// y = x w^T + b for every weight dtype.
//
// GEMV path: quantised weights are never expanded. The activation rows are quantised once
// to 8 bits (BlockQ8A) and every output is an integer dot product (kernels().gemv_*, tiles of
// 4 weight rows x 1 activation row or 2 x 2); float weights (F32 / F16 / BF16) are converted on
// the fly inside the dot. The output rows are cut into tasks of at most ~32 KiB of weights, so
// a task's rows stay cached while all activation rows pass; the pool's threads claim them.
// Used for quantised weights at every n (see linear_gemv_max_rows).
//
// GEMM path: the weight matrix is cut into panels of P output rows (P * in floats ~ L2), one
// task each. A task dequantises its panel into a thread-local buffer and runs a single-threaded
// sgemm (y[:, panel] = x panel^T, ldc = out). F32 weights skip the copy and hand their rows
// straight to sgemm. Used for float weights with n > 8. Nothing is kept between calls but
// the small per-thread buffers.
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/amx.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"
#include "backend/ops.h"
#include "core/error.h"

namespace skv::backend::cpu {

namespace {

struct AlignedBuffer {
  void* p = nullptr;
  size_t cap = 0;
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(p); }
  template <class T>
  T* get(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes > cap) {
      std::free(p);
      cap = (bytes + 4095) / 4096 * 4096;
      p = std::aligned_alloc(64, cap);
      if (!p) fail_resource("out of memory allocating a ", cap, "-byte kernel scratch buffer");
    }
    return static_cast<T*>(p);
  }
};

thread_local AlignedBuffer t_panel;  // per worker: dequantised weight panel
thread_local AlignedBuffer t_act;    // per caller: quantised activations

struct Problem {
  const float* x;  // [n, in]
  int64_t n, in, out;
  const uint8_t* w;  // [out, in] of dtype wt
  DType wt;
  size_t w_stride;
  const float* bias;  // [out] or nullptr
  float* y;           // [n, ldy]
  int64_t ldy;
};

void add_bias(const Problem& p, int64_t r0, int64_t r1) {
  if (!p.bias) return;
  for (int64_t i = 0; i < p.n; ++i) {
    float* yi = p.y + i * p.ldy;
    for (int64_t r = r0; r < r1; ++r) yi[r] += p.bias[r];
  }
}

void run_gemv(const Problem& p) {
  const Kernels& k = kernels();
  const int nt = threads_for(static_cast<double>(p.n) * p.out * p.in, 64.0 * 1024);
  // Weight rows are processed in chunks of about 32 KiB so that, for many activation rows,
  // a chunk stays in L1/L2 while every activation row streams past it. A task is one chunk,
  // or less where that would leave under ~4 tasks per thread (decode's single activation row
  // gains nothing from chunks, and small tasks let the others take over a late thread's share).
  // Task boundaries are multiples of 8 rows: each row meets the same kernel tile whatever the
  // thread count.
  const int64_t chunk = std::max<int64_t>(8, static_cast<int64_t>((32 * 1024) / p.w_stride) / 8 * 8);
  const int64_t rows = nt > 1 ? std::min(chunk, (grain_for(p.out, nt, 4) + 7) / 8 * 8) : chunk;
  if (const QGemvFn qfn = qgemv_for(k, p.wt)) {
    const int64_t nb = p.in / QK;
    BlockQ8A* act = t_act.get<BlockQ8A>(static_cast<size_t>(p.n * nb));
    // About 1/out of the work: its own parallel call only pays off for long prompts.
    const int qt = static_cast<double>(p.n) * p.in >= 256.0 * 1024 ? nt : 1;
    parallel_for_ranges(p.n, grain_for(p.n, qt), qt, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) k.quantize_q8a(p.x + i * p.in, act + i * nb, p.in);
    });
    parallel_for_ranges(p.out, rows, nt, [&](int64_t r0, int64_t r1) {
      qfn(p.w + r0 * p.w_stride, p.w_stride, r1 - r0, act, nb, p.n, p.in, p.y + r0, p.ldy);
      add_bias(p, r0, r1);
    });
  } else {
    const FGemvFn fn = p.wt == DType::F32   ? k.gemv_f32
                       : p.wt == DType::F16 ? k.gemv_f16
                       : p.wt == DType::FP8 ? k.gemv_fp8
                                            : k.gemv_bf16;
    parallel_for_ranges(p.out, rows, nt, [&](int64_t r0, int64_t r1) {
      fn(p.w + r0 * p.w_stride, p.w_stride, r1 - r0, p.x, p.in, p.n, p.in, p.y + r0, p.ldy);
      add_bias(p, r0, r1);
    });
  }
}

// Output rows per panel: the panel (P x in floats) should sit in L2 next to sgemm's own
// packed blocks. With several threads there are at least 4 panels per thread, so that a
// thread the OS holds back leaves the others panels to take over.
int64_t panel_rows(int64_t in, int64_t out, int nt) {
  const int64_t target_bytes = 512 * 1024;
  int64_t pmax = std::max<int64_t>(16, target_bytes / (in * 4) / 16 * 16);
  const int64_t per_thread = std::max<int64_t>(
      nt > 1 ? 4 : 1, (out + static_cast<int64_t>(nt) * pmax - 1) / (static_cast<int64_t>(nt) * pmax));
  const int64_t panels = per_thread * nt;
  int64_t P = (out + panels - 1) / panels;
  P = (P + 15) / 16 * 16;
  return std::max<int64_t>(1, std::min(P, out));
}

void sgemm_panel(const Problem& p, const float* wpanel, int64_t r0, int64_t rows) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.n), static_cast<int>(rows),
              static_cast<int>(p.in), 1.0f, p.x, static_cast<int>(p.in), wpanel, static_cast<int>(p.in), 0.0f, p.y + r0,
              static_cast<int>(p.ldy));
}

// sgemm computes each output the same way whatever the panel it belongs to (the
// ThreadCountsAgree test checks), so the panel size may follow the thread count.
void run_gemm(const Problem& p) {
  const double work = static_cast<double>(p.n) * p.out * p.in;
  const int nt = threads_for(work, 256.0 * 1024);
  if (p.wt == DType::F32) {
    parallel_for_ranges(p.out, nt > 1 ? panel_rows(p.in, p.out, nt) : p.out, nt, [&](int64_t r0, int64_t r1) {
      sgemm_panel(p, reinterpret_cast<const float*>(p.w + r0 * p.w_stride), r0, r1 - r0);
      add_bias(p, r0, r1);
    });
    return;
  }
  const ToFloatFn conv = to_float_for(kernels(), p.wt);
  const int64_t P = panel_rows(p.in, p.out, nt);
  parallel_for_ranges(p.out, P, nt, [&](int64_t r0, int64_t r1) {
    float* buf = t_panel.get<float>(static_cast<size_t>(P * p.in));
    for (int64_t r = r0; r < r1; ++r) conv(p.w + r * p.w_stride, buf + (r - r0) * p.in, p.in);
    sgemm_panel(p, buf, r0, r1 - r0);
    add_bias(p, r0, r1);
  });
}

// FP8 weights with activations quantised to E4M3 per token. The activation rows become BF16
// copies of their E4M3 values (and a scale each) once; each task widens a panel of weight
// rows to BF16 (exact, unscaled), multiplies every activation row with it, then applies both
// scales: y = (sum xq wq) * s_w * s_x. A row's bits do not depend on the thread count.
// With AMX-BF16 and at least kAmxMinRows activation rows the products run on the tile unit
// (32 x 32 outputs per tile pass; rows and k padded with zeros); up to the float GEMV's rows, the
// FP8 GEMV on the activations' E4M3 values; otherwise the BF16 tile kernel of the table, whose
// panel is sized to stay in L2 while the activations stream past it.
constexpr int64_t kAmxMinRows = 16;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

void run_fp8_dynamic(const Problem& p) {
  const Kernels& k = kernels();
  const double work = static_cast<double>(p.n) * p.out * p.in;
  const int nt = threads_for(work, 64.0 * 1024);
  const bool amx = p.n >= kAmxMinRows && amx_bf16_ready();
  const int64_t ldx = amx ? round_up(p.in, kAmxK) : p.in, n_pad = amx ? round_up(p.n, kAmxRows) : p.n;
  uint16_t* xq = t_act.get<uint16_t>(static_cast<size_t>(n_pad * ldx));
  thread_local std::vector<float> xs_buf;  // the caller's; the tasks below reach it through xs
  xs_buf.resize(static_cast<size_t>(p.n));
  float* xs = xs_buf.data();
  const int qt = static_cast<double>(p.n) * p.in >= 256.0 * 1024 ? nt : 1;
  parallel_for_ranges(n_pad, grain_for(n_pad, qt), qt, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      uint16_t* row = xq + i * ldx;
      if (i < p.n) xs[i] = quantize_act_fp8(p.x + i * p.in, row, p.in);
      std::fill(row + (i < p.n ? p.in : 0), row + ldx, uint16_t{0});
    }
  });

  if (amx) {
    const int64_t groups = (p.out + kAmxRows - 1) / kAmxRows;
    parallel_for_ranges(groups, grain_for(groups, nt), nt, [&](int64_t g0, int64_t g1) {
      uint16_t* rows_bf16 = t_panel.get<uint16_t>(static_cast<size_t>(kAmxRows * (p.in + ldx)));
      uint16_t* packed = rows_bf16 + kAmxRows * p.in;
      thread_local AlignedBuffer t_out;
      float* c = t_out.get<float>(static_cast<size_t>(n_pad * kAmxRows));
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t r0 = g * kAmxRows, rows = std::min(kAmxRows, p.out - r0);
        float ws[kAmxRows];
        for (int64_t r = 0; r < rows; ++r) {
          k.fp8_to_bf16(p.w + (r0 + r) * p.w_stride, rows_bf16 + r * p.in, p.in);
          ws[r] = fp8_row_scale(p.w + (r0 + r) * p.w_stride);
        }
        amx_pack_rows(rows_bf16, p.in, rows, p.in, ldx, packed);
        amx_gemm_bf16(packed, xq, ldx, n_pad, ldx, c, kAmxRows);
        for (int64_t i = 0; i < p.n; ++i) {
          float* yi = p.y + i * p.ldy + r0;
          const float* ci = c + i * kAmxRows;
          for (int64_t r = 0; r < rows; ++r) yi[r] = ci[r] * ws[r] * xs[i];
        }
        add_bias(p, r0, r0 + rows);
      }
    });
    return;
  }

  if (p.n <= linear_gemv_max_rows(DType::FP8)) {
    // Few rows (decode): the F32 GEMV on the E4M3 values widened back (exact), which widens the
    // weights in registers instead of writing a BF16 panel first; the same exact products.
    thread_local std::vector<float> xf_buf;
    xf_buf.resize(static_cast<size_t>(p.n * p.in));
    for (int64_t i = 0; i < p.n * p.in; ++i) xf_buf[i] = bf16_to_fp32(xq[i]);
    Problem q = p;
    q.x = xf_buf.data();
    q.bias = nullptr;
    run_gemv(q);
    for (int64_t i = 0; i < p.n; ++i)
      for (int64_t r = 0; r < p.out; ++r) p.y[i * p.ldy + r] *= xs[i];
    add_bias(p, 0, p.out);
    return;
  }
  const int64_t fit = std::max<int64_t>(4, (128 * 1024) / (2 * p.in) / 4 * 4);
  const int64_t rows = nt > 1 ? std::min(fit, (grain_for(p.out, nt, 4) + 3) / 4 * 4) : fit;
  parallel_for_ranges(p.out, rows, nt, [&](int64_t r0, int64_t r1) {
    uint16_t* panel = t_panel.get<uint16_t>(static_cast<size_t>(rows * p.in));
    thread_local std::vector<float> ws;
    ws.resize(static_cast<size_t>(rows));
    for (int64_t r = r0; r < r1; ++r) {
      k.fp8_to_bf16(p.w + r * p.w_stride, panel + (r - r0) * p.in, p.in);
      ws[r - r0] = fp8_row_scale(p.w + r * p.w_stride);
    }
    k.gemm_bf16(panel, p.in, r1 - r0, xq, p.in, p.n, p.in, p.y + r0, p.ldy);
    for (int64_t i = 0; i < p.n; ++i) {
      float* yi = p.y + i * p.ldy;
      for (int64_t r = r0; r < r1; ++r) yi[r] = yi[r] * ws[r - r0] * xs[i];
    }
    add_bias(p, r0, r1);
  });
}

}  // namespace

int64_t linear_gemv_max_rows(DType t) {
  // Measured on the target (2-core EPYC Zen 1, bench_kernels / interleaved A-B runs):
  // - quantised weights: the integer kernels run at about the speed of OpenBLAS sgemm per
  //   token even for n = 512 (Zen 1 issues int8 multiplies at the FP32 FMA rate) and keep a
  //   working set 4x smaller, so under contention they won by 1.5-2x at every n; they also
  //   match llama.cpp's numerics (activations quantised to 8 bits for every batch size);
  // - float weights: sgemm on small n loses to the on-the-fly dot up to about 8 rows.
  // - FP8 weights: FP8 -> F32 panels + sgemm beat the converting dot from about the same n as
  //   the float weights.
  if (dtype_is_quantized(t) && t != DType::FP8) return INT64_MAX;
  return 8;
}

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, LinearPath path) {
  Problem p;
  p.x = x.as<float>();
  p.n = x.rows();
  p.in = x.cols();
  p.out = w.dim(0);
  p.w = static_cast<const uint8_t*>(w.data);
  p.wt = w.dtype;
  p.w_stride = w.row_bytes();
  p.y = y.as<float>();
  p.ldy = y.cols();
  thread_local std::vector<float> bias_buf;  // reused: no allocation per call once warm
  p.bias = bias ? as_f32(*bias, bias_buf) : nullptr;
  if (p.n == 0 || p.out == 0) return;
  if (p.wt == DType::FP8 && fp8_activations() == Fp8Activations::E4M3) return run_fp8_dynamic(p);
  if (path == LinearPath::Auto) path = p.n <= linear_gemv_max_rows(p.wt) ? LinearPath::Gemv : LinearPath::Gemm;
  if (path == LinearPath::Gemv)
    run_gemv(p);
  else
    run_gemm(p);
}

const float* as_f32(const Tensor& t, std::vector<float>& buf) {
  if (t.dtype == DType::F32) return t.as<float>();
  const int64_t n = t.numel();
  buf.resize(static_cast<size_t>(n));
  const ToFloatFn conv = to_float_for(kernels(), t.dtype);
  if (!conv) fail_internal("cannot convert a ", dtype_name(t.dtype), " tensor to F32");
  const int64_t cols = t.cols();
  for (int64_t r = 0; r < t.rows(); ++r) conv(t.row_ptr(r), buf.data() + r * cols, cols);
  return buf.data();
}

}  // namespace skv::backend::cpu
