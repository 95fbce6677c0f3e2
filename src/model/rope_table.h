#pragma once
#include "backend/ops.h"
#include "io/config.h"

namespace skv::model {

// Inverse frequencies with the config's rope scaling applied (none / linear / llama3),
// following transformers' rope initialisation functions.
backend::Rope make_rope(const io::ModelConfig& cfg, bool interleaved);

}  // namespace skv::model
