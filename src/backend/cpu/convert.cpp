// Dtype conversion for checkpoint writing (convert, distill): not in the inference hot path,
// so it uses the scalar reference (de)quantisers, parallel over rows.
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_ops.h"
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
    case DType::Q8_0:
      return dequantize_row_q8_0(reinterpret_cast<const BlockQ8_0*>(src), dst, k);
    case DType::Q4_0:
      return dequantize_row_q4_0(reinterpret_cast<const BlockQ4_0*>(src), dst, k);
    case DType::Q4_1:
      return dequantize_row_q4_1(reinterpret_cast<const BlockQ4_1*>(src), dst, k);
    default:
      fail_internal("cannot convert a ", dtype_name(t), " tensor");
  }
}

}  // namespace

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
      } else {
        auto* d16 = reinterpret_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < cols; ++i) d16[i] = to == DType::F16 ? fp32_to_fp16(buf[i]) : fp32_to_bf16(buf[i]);
      }
    }
  });
  return out;
}

}  // namespace skv::backend::cpu
