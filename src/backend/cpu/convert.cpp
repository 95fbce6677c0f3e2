// Dtype conversion for checkpoint writing (convert, distill): not in the inference hot path,
// so it uses the scalar reference (de)quantisers, parallel over rows.
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/thread_pool.h"
#include "core/error.h"

namespace skv::backend::cpu {

namespace {

void row_to_f32(DType t, const uint8_t* src, float* dst, int64_t k) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, sizeof(float) * k);
      return;
    case DType::F16:
      for (int64_t i = 0; i < k; ++i) dst[i] = fp16_to_fp32(reinterpret_cast<const uint16_t*>(src)[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < k; ++i) dst[i] = bf16_to_fp32(reinterpret_cast<const uint16_t*>(src)[i]);
      return;
    case DType::I32:
      fail_internal("cannot convert a ", dtype_name(t), " tensor");
    default:
      return dequantize_row(t, src, dst, k);
  }
}

}  // namespace

void kv_row_to_f32(DType t, const uint8_t* row, int64_t col, int64_t n, float* out) {
  const Kernels& k = kernels();
  switch (t) {
    case DType::F32:
      std::memcpy(out, reinterpret_cast<const float*>(row) + col, sizeof(float) * n);
      return;
    case DType::F16:
      return k.to_float_f16(reinterpret_cast<const uint16_t*>(row) + col, out, n);
    case DType::BF16:
      return k.to_float_bf16(reinterpret_cast<const uint16_t*>(row) + col, out, n);
    case DType::Q8_0:
      return k.to_float_q8_0(reinterpret_cast<const BlockQ8_0*>(row) + col / QK, out, n);
    case DType::MXFP8:
      return dequantize_row_mxfp8(reinterpret_cast<const BlockMXFP8*>(row) + col / QK, out, n);
    default:
      fail_internal("KV cache: unsupported dtype ", dtype_name(t));
  }
}

void store_rows(const Tensor& src, Tensor& dst) {
  const int64_t n = src.rows(), cols = src.cols();
  for (int64_t r = 0; r < n; ++r) {
    const float* s = src.as<float>() + r * cols;
    uint8_t* d = static_cast<uint8_t*>(dst.data) + r * dst.row_bytes();
    switch (dst.dtype) {
      case DType::F32:
        std::memcpy(d, s, sizeof(float) * cols);
        break;
      case DType::F16:
        for (int64_t i = 0; i < cols; ++i) reinterpret_cast<uint16_t*>(d)[i] = fp32_to_fp16(s[i]);
        break;
      case DType::BF16:
        for (int64_t i = 0; i < cols; ++i) reinterpret_cast<uint16_t*>(d)[i] = fp32_to_bf16(s[i]);
        break;
      case DType::Q8_0:
        quantize_row_q8_0(s, reinterpret_cast<BlockQ8_0*>(d), cols);
        break;
      case DType::MXFP8:
        quantize_row_mxfp8(s, reinterpret_cast<BlockMXFP8*>(d), cols);
        break;
      default:
        fail_internal("store_rows: unsupported dtype ", dtype_name(dst.dtype));
    }
  }
}

Tensor to_dtype(const Tensor& t, DType to) {
  Tensor out = Tensor::empty(to, t.shape);
  const int64_t rows = t.rows(), cols = t.cols();
  if (t.dtype == to) {
    std::memcpy(out.data, t.data, t.nbytes());
    return out;
  }
  const int nt = threads_for(static_cast<double>(t.numel()), 1 << 16);
  parallel_for_ranges(rows, grain_for(rows, nt), nt, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> buf;
    buf.resize(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      row_to_f32(t.dtype, t.row_ptr(r), buf.data(), cols);
      uint8_t* dst = static_cast<uint8_t*>(out.data) + r * out.row_bytes();
      if (to == DType::F32) {
        std::memcpy(dst, buf.data(), sizeof(float) * cols);
      } else if (to == DType::Q8_0) {
        quantize_row_q8_0(buf.data(), reinterpret_cast<BlockQ8_0*>(dst), cols);
      } else if (to == DType::FP8) {
        quantize_row_fp8(buf.data(), dst, cols);
      } else {
        auto* d16 = reinterpret_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < cols; ++i) d16[i] = to == DType::F16 ? fp32_to_fp16(buf[i]) : fp32_to_bf16(buf[i]);
      }
    }
  });
  return out;
}

}  // namespace skv::backend::cpu
