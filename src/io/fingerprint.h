#pragma once
// Content fingerprints: a 64-bit hash that tells one model's weights (or one data set) from
// another, for files that are only valid next to what made them (a teacher cache, trained
// SwiftKV tensors and their base model). Not cryptographic: it guards against mix-ups, not
// against forgery.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "io/model_files.h"

namespace skv::io {

// Hash of n bytes, continuing from `seed` (8-byte words, four lanes, then a final mix).
uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0);

// Over every tensor whose Hugging Face name `include` accepts (all when empty), in name order:
// its name, dtype, shape and stored bytes.
uint64_t tensors_fingerprint(const ModelFiles& files, const std::function<bool(const std::string&)>& include = {});

std::string hex64(uint64_t v);  // 16 lower-case hex digits

}  // namespace skv::io
