#pragma once
// SwiftKV (docs/swiftkv.md, "The transformation" and "Checkpoint layout"): the conversion of a
// base model into a SwiftKV model and the names of its tensors. Which layers own K/V, and where
// they live in the cache, is model/kv_layout.h.
#include <cstdint>
#include <string>

#include "io/config.h"
#include "io/model_files.h"
#include "model/kv_layout.h"

namespace skv::model {

// M for "skip a fraction F of the layers": M = L - round(F * L) (50% of 32 layers -> M = 16,
// 25% -> M = 24). Throws unless 0 < F < 1 and 1 <= M < L.
int64_t num_key_value_layers_for_fraction(int64_t num_layers, double fraction);

// Throws a message naming the bad setting unless 1 <= M < L, G >= 1 and (L - M) % G == 0.
void check_swiftkv_settings(int64_t num_layers, int64_t num_key_value_layers, int64_t group_size);

// Turns a base (non-SwiftKV) model into a SwiftKV model in memory, initialised as docs/swiftkv.md
// ("Checkpoint layout") says: norm_swiftkv = layer M's input_layernorm, q_proj_swiftkv = q_proj (views, no copy),
// each group leader's k/v_proj_swiftkv (and biases) = the mean of its group's k/v_proj (a view
// when G == 1, an F32 tensor otherwise); Qwen3 also gets q_norm_swiftkv (copy of q_norm) and
// the leaders' k_norm_swiftkv (mean of the group's k_norm). The tensors are the ones
// swiftkv_tensor_specs lists. Marks the config as its architecture's SwiftKV variant
// (llama_swiftkv, qwen2_swiftkv, ...), swiftkv = true, M, G.
void add_swiftkv_tensors(io::ModelFiles& files, int64_t num_key_value_layers, int64_t group_size);

// Writes a SwiftKV GGUF: `files` must be a GGUF base after add_swiftkv_tensors. Every base
// tensor and metadata entry is copied byte for byte (the quantised weights stay as they are, so
// the teacher path is the base model exactly); the SwiftKV projections are stored as
// `projection_dtype` (F32, F16 or Q8_0), norms and biases as F32; the keys
// swiftkv.num_key_value_layers / swiftkv.key_value_group_size mark the file. Returns the bytes
// written.
uint64_t write_swiftkv_gguf(const io::ModelFiles& files, const std::string& out, DType projection_dtype);

// Hugging Face names of the SwiftKV tensors.
std::string swiftkv_norm_name();
std::string swiftkv_tensor_name(int64_t layer, const char* proj, const char* kind);  // proj: q|k|v, kind: weight|bias
// Qwen3's per-head norms (docs/swiftkv.md#checkpoint-layout):
// "model.layers.<layer>.self_attn.<which>_norm_swiftkv.weight".
std::string swiftkv_qk_norm_name(int64_t layer, const char* which);  // which: q|k

}  // namespace skv::model
