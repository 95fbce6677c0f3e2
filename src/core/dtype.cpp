#include "core/dtype.h"

#include "core/error.h"

namespace skv {

int64_t dtype_block_size(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::MXFP8:
      return 32;
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
    case DType::Q8_0:
      return 34;  // fp16 scale + 32 int8
    case DType::Q4_0:
      return 18;  // fp16 scale + 16 bytes of nibbles
    case DType::Q4_1:
      return 20;  // fp16 scale + fp16 min + 16 bytes of nibbles
    case DType::MXFP8:
      return 33;  // E8M0 scale + 32 E4M3
  }
  return 0;
}

size_t dtype_row_bytes(DType t, int64_t n) {
  const int64_t bs = dtype_block_size(t);
  if (n % bs != 0) fail("row of ", n, " elements is not a multiple of the ", dtype_name(t), " block size ", bs);
  return static_cast<size_t>(n / bs) * dtype_block_bytes(t);
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
  }
  return "?";
}

bool dtype_is_quantized(DType t) { return dtype_block_size(t) > 1; }

}  // namespace skv
