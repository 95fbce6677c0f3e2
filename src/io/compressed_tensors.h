#pragma once
// compressed-tensors FP8 checkpoints, the layout llm-compressor writes and the published
// *-SwiftKV-*-FP8 models use (../shared/SWIFTKV.md §6, docs/fp8.md): config.json's
// quantization_config, and each quantised Linear's NAME.weight (F8_E4M3 [out, in]) with its
// NAME.weight_scale ([out, 1] per channel or one value per tensor; BF16, F16 or F32).
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/tensor.h"
#include "io/config.h"

namespace skv::io {

struct ModelFiles;

// The scheme of a quantization_config object; throws naming the field of anything else
// (another quant_method or format, int8 or group / block schemes, static input scales, a KV
// cache scheme, output activations).
Fp8Scheme parse_compressed_tensors(const nlohmann::json& qc, const std::string& origin);

// The quantization_config object describing `s` (llm-compressor's field set).
nlohmann::ordered_json compressed_tensors_json(const Fp8Scheme& s);

// Whether module `name` (a tensor name without ".weight") is in the scheme's ignore list.
bool fp8_ignored(const Fp8Scheme& s, const std::string& module);

// Replaces every NAME.weight / NAME.weight_scale pair of `m` by one FP8 tensor (each row its
// F32 scale, then its E4M3 bytes) in memory, releasing the mapped pages of the originals.
// Throws naming the tensor for an F8_E4M3 weight without a scale (or without a
// quantization_config), a scale of the wrong shape or dtype, a static NAME.input_scale, or a
// scale whose weight is not FP8.
void fold_fp8_weights(ModelFiles& m);

// The two tensors compressed-tensors stores for an FP8 weight: [out, in] F8_E4M3 bytes and an
// [out, 1] F32 scale (new buffers).
struct Fp8Pair {
  Tensor weight, weight_scale;
};
Fp8Pair split_fp8_weight(const Tensor& fp8);

// Whether `name` is a Linear weight that an FP8 export quantises: a 2-D ".weight" inside the
// decoder layers (the attention and MLP projections, SwiftKV's included).
bool is_fp8_linear_weight(const std::string& name, const Tensor& t);

}  // namespace skv::io
