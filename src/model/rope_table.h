#pragma once
#include "backend/ops.h"
#include "io/config.h"

namespace skv {

// Inverse frequencies with the config's rope scaling applied (none / linear / llama3),
// following transformers' rope initialisation functions.
ops::Rope make_rope(const ModelConfig& cfg, bool interleaved);

}  // namespace skv
