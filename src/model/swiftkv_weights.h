#pragma once
// SwiftKV weights files: the trained SwiftKV tensors of one model (norm_swiftkv and the
// q/k/v_proj_swiftkv, with biases and q/k norms where the architecture has them), alone in a
// small bf16 safetensors file, so that a SwiftKV model can be rebuilt from the base model a user
// already has. The file records M, G, the architecture and a fingerprint of the base model's
// tensors (io/fingerprint.h); rows are in Hugging Face order whatever the base's format.
#include <cstdint>
#include <string>

#include "io/model_files.h"

namespace skv::model {

struct SwiftKVWeightsInfo {
  int64_t num_key_value_layers = 0, key_value_group_size = 0;
  std::string architecture, base_fingerprint, base_name, description;
};

// Writes the SwiftKV tensors of `checkpoint` (a SwiftKV model) to `out` as bf16, recording
// `base`'s fingerprint. `base` must be the model the checkpoint was made from: every frozen
// tensor of the checkpoint must be one of base's (same name and shape, values equal within
// bf16 rounding, after undoing llama.cpp's row order of a GGUF base); the first that is not is
// named. Returns the bytes of tensor data written.
uint64_t write_swiftkv_weights(const io::ModelFiles& checkpoint, const io::ModelFiles& base, const std::string& out,
                               const std::string& description);

// Reads a weights file's metadata; throws naming the file when it is not one.
SwiftKVWeightsInfo read_swiftkv_weights_info(const std::string& path);

// Turns the base model `files` into the SwiftKV model of the weights file at `path`: checks the
// architecture, M and G against the base, its fingerprint (unless any_base: the tensors were
// then trained on another base and their quality there is unmeasured), and every tensor's name
// and shape; then adds the file's tensors (F32, in the base's row order).
SwiftKVWeightsInfo apply_swiftkv_weights(io::ModelFiles& files, const std::string& path, bool any_base);

}  // namespace skv::model
