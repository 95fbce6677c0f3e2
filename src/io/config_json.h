#pragma once
// ModelConfig -> Hugging Face config.json, the inverse of config_from_json_text: what a
// converted checkpoint is described by.
#include <string>

#include "io/config.h"

namespace skv::io {

// The config.json text (pretty-printed, trailing newline) describing `c`, including the
// SwiftKV fields for a SwiftKV checkpoint and `c.torch_dtype` as the stored dtype.
// original_json: the source checkpoint's config.json text, or empty. When given, the result
// starts from it so fields swiftkv does not model (hidden_act, rope_parameters, ...) survive,
// and only the fields `c` decides are overwritten. When empty, a transformers 4.x style config
// (rope_theta + rope_scaling) is synthesised.
// config_from_json_text(result) reproduces `c`.
std::string config_to_json_text(const ModelConfig& c, const std::string& original_json = "");

// A minimal generation_config.json (bos / eos ids) for a checkpoint whose source had none.
std::string generation_config_to_json_text(const ModelConfig& c);

}  // namespace skv::io
