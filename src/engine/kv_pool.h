#pragma once
// The paged KV cache's storage: per cache layer one pool of num_blocks * block_size rows of keys
// and one of values, on the model's device. Every sequence's pages come from these pools
// (engine/block_manager.h decides which); a sequence's view is the pools plus its block table.
// How the pool is sized is decided here too, because it must never depend on --max-model-len x
// --max-num-seqs (which can exceed the machine) but on memory that actually exists.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/kv_layout.h"

namespace skv::engine {

struct KVPool {
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t row = 0;  // values per position per cache layer
  DType dtype = DType::F32;
  std::vector<Tensor> k, v;

  KVPool(const model::KVSpec& spec, int64_t num_blocks, int64_t block_size, DType dtype = DType::F32);
  int64_t num_layers() const { return static_cast<int64_t>(k.size()); }
  int64_t capacity_tokens() const { return num_blocks * block_size; }
  size_t bytes() const;
  // The view a forward pass reads and writes for a sequence with this block table (which must
  // stay alive and unmoved for the call).
  model::SeqKV view(const std::vector<int32_t>& table) const {
    return {k.data(), v.data(), num_layers(), block_size, table.data(), static_cast<int64_t>(table.size())};
  }
};

// --kv-cache-dtype: auto | f32 (F32), f16, bf16, q8_0 (Q8_0), fp8 (MXFP8: E4M3 with a
// power-of-two scale per 32 values); throws InputError naming the value otherwise.
DType parse_kv_dtype(const std::string& name);
// Bytes per position of a cache of `layers` layers of `row` values (keys and values) in dtype.
size_t kv_bytes_per_token(int64_t layers, int64_t row, DType dtype);

// How the pool is sized (vLLM's --kv-cache-memory-bytes, else a share of available memory).
struct KVPoolSizing {
  int64_t memory_bytes = 0;  // > 0: exactly this many bytes of K/V (--kv-cache-memory-bytes)
  // Otherwise: this fraction of MemAvailable (after the weights are resident) ...
  double available_fraction = 0.5;
  int64_t max_default_bytes = int64_t{4} << 30;  // ... capped here
};

// Blocks that fit the sizing for a path needing `bytes_per_token` per position. `weight_bytes`
// not yet resident are subtracted from MemAvailable (mapped weights fault in on first use).
// Throws a resource error when not even one block fits.
int64_t kv_pool_blocks(const KVPoolSizing& sizing, size_t bytes_per_token, int64_t block_size, size_t weight_bytes,
                       std::string* how = nullptr);

// "2GiB", "512MiB", "1.5G", "3000000" (bytes), "4KB" ...: a byte count (vLLM / llama.cpp
// style; K/M/G/T are powers of 1000 with B or alone as vLLM reads them, KiB/MiB/GiB/TiB powers
// of 1024). Throws skv::Error naming the value otherwise.
int64_t parse_bytes(const std::string& s);

// MemAvailable from /proc/meminfo, in bytes (0 when unknown).
int64_t mem_available_bytes();

}  // namespace skv::engine
