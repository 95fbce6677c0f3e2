#include "core/dtype.h"

#include "core/error.h"

namespace skv {

int64_t dtype_block_size(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::MXFP8:
    case DType::Q5_0:
    case DType::Q5_1:
      return 32;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return 256;
    default:
      return 1;
  }
}

size_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::F8_E4M3:
    case DType::FP8:
      return 1;
    case DType::Q8_0:
      return 34;  // fp16 scale + 32 int8
    case DType::Q4_0:
      return 18;  // fp16 scale + 16 bytes of nibbles
    case DType::Q4_1:
      return 20;  // fp16 scale + fp16 min + 16 bytes of nibbles
    case DType::MXFP8:
      return 33;  // E8M0 scale + 32 E4M3
    case DType::Q5_0:
      return 22;  // fp16 scale + 4 bytes of fifth bits + 16 bytes of nibbles
    case DType::Q5_1:
      return 24;  // fp16 scale + fp16 min + fifth bits + nibbles
    case DType::Q4_K:
      return 144;  // fp16 d, dmin + 12 bytes of 6-bit scales / mins + 128 bytes of nibbles
    case DType::Q5_K:
      return 176;  // Q4_K's + 32 bytes of fifth bits
    case DType::Q6_K:
      return 210;  // 128 bytes of low nibbles + 64 of high 2-bit pairs + 16 int8 scales + fp16 d
  }
  return 0;
}

size_t dtype_row_bytes(DType t, int64_t n) {
  const int64_t bs = dtype_block_size(t);
  if (n % bs != 0) fail("row of ", n, " elements is not a multiple of the ", dtype_name(t), " block size ", bs);
  const size_t header = t == DType::FP8 ? sizeof(float) : 0;
  return header + static_cast<size_t>(n / bs) * dtype_block_bytes(t);
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::Q8_0:
      return "Q8_0";
    case DType::Q4_0:
      return "Q4_0";
    case DType::Q4_1:
      return "Q4_1";
    case DType::I32:
      return "I32";
    case DType::MXFP8:
      return "MXFP8";
    case DType::Q5_0:
      return "Q5_0";
    case DType::Q5_1:
      return "Q5_1";
    case DType::Q4_K:
      return "Q4_K";
    case DType::Q5_K:
      return "Q5_K";
    case DType::Q6_K:
      return "Q6_K";
    case DType::F8_E4M3:
      return "F8_E4M3";
    case DType::FP8:
      return "FP8";
  }
  return "?";
}

bool dtype_is_quantized(DType t) { return dtype_block_size(t) > 1 || t == DType::FP8; }

}  // namespace skv
