#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace skv {

// Element / block formats. The quantised layouts are bit-compatible with ggml's so GGUF
// tensors can be used in place (see src/backend/cpu/quant.h for the block structs).
// MXFP8 (OCP Microscaling, E4M3 elements) is a KV cache format: 32 FP8 E4M3 values sharing
// one power-of-two E8M0 scale. Q4_K / Q5_K / Q6_K are ggml's K-quants (super-blocks of 256
// values); Q5_0 / Q5_1 are what llama.cpp's quantiser stores instead of a K-quant for rows
// whose length is not a multiple of 256.
// F8_E4M3 is safetensors' plain FP8 element, as compressed-tensors checkpoints store it (the
// real weight needs its separate weight_scale tensor). FP8 is what such a weight becomes in
// memory: each row is its F32 scale followed by the row's E4M3 bytes, so a row is
// self-contained (stacking, slicing and the kernels need no second tensor) at 4 bytes a row.
enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, Q4_1, I32, MXFP8, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, F8_E4M3, FP8 };

// Elements per block (1 for plain types) and bytes per block.
int64_t dtype_block_size(DType t);
size_t dtype_block_bytes(DType t);
// Bytes for n elements (one row: FP8 adds its scale); n must be a multiple of the block size.
size_t dtype_row_bytes(DType t, int64_t n);
const char* dtype_name(DType t);
// The block formats and FP8: weights whose rows are not plain arrays of floats.
bool dtype_is_quantized(DType t);

}  // namespace skv
