#include "engine/kv_pool.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace skv::engine {

KVPool::KVPool(const model::KVSpec& spec, int64_t blocks, int64_t bs, DType dt)
    : num_blocks(blocks), block_size(bs), row(spec.row), dtype(dt) {
  if (blocks <= 0) fail_resource("the KV cache pool needs at least one block");
  if (bs <= 0) fail("--block-size must be positive, got ", bs);
  for (int64_t l = 0; l < spec.layers; ++l) {
    k.push_back(Tensor::empty(dtype, {blocks * bs, row}, spec.device));
    v.push_back(Tensor::empty(dtype, {blocks * bs, row}, spec.device));
  }
}

size_t KVPool::bytes() const {
  return static_cast<size_t>(capacity_tokens()) * kv_bytes_per_token(num_layers(), row, dtype);
}

size_t kv_bytes_per_token(int64_t layers, int64_t row, DType dtype) {
  return static_cast<size_t>(layers) * dtype_row_bytes(dtype, row) * 2;
}

DType parse_kv_dtype(const std::string& name) {
  if (name == "auto" || name == "f32" || name == "float32") return DType::F32;
  if (name == "f16" || name == "float16" || name == "half") return DType::F16;
  if (name == "bf16" || name == "bfloat16") return DType::BF16;
  if (name == "q8_0") return DType::Q8_0;
  if (name == "fp8" || name == "fp8_e4m3" || name == "mxfp8") return DType::MXFP8;
  fail("--kv-cache-dtype ", quote_bounded(name, 40), " is not one of auto, f32, f16, bf16, q8_0, fp8");
}

int64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t value = 0;
  std::string unit;
  while (in >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  return 0;
}

int64_t kv_pool_blocks(const KVPoolSizing& sizing, size_t bytes_per_token, int64_t block_size, size_t weight_bytes,
                       std::string* how) {
  const double per_block = static_cast<double>(bytes_per_token) * static_cast<double>(block_size);
  double budget = 0;
  std::ostringstream why;
  if (sizing.memory_bytes > 0) {
    budget = static_cast<double>(sizing.memory_bytes);
    why << "--kv-cache-memory-bytes " << sizing.memory_bytes;
  } else {
    const int64_t avail = mem_available_bytes();
    const double after = std::max(0.0, static_cast<double>(avail) - static_cast<double>(weight_bytes));
    budget = std::min(sizing.available_fraction * after, static_cast<double>(sizing.max_default_bytes));
    why << sizing.available_fraction << " of MemAvailable " << avail / (1 << 20) << " MiB after "
        << weight_bytes / (1 << 20) << " MiB of weights, capped at " << sizing.max_default_bytes / (1 << 20) << " MiB";
  }
  const int64_t blocks = static_cast<int64_t>(std::floor(budget / per_block));
  if (blocks < 1)
    fail_resource("no room for a KV cache block (", static_cast<int64_t>(per_block), " bytes) in ", why.str(),
                  "; set --kv-cache-memory-bytes");
  if (how) *how = why.str();
  return blocks;
}

int64_t parse_bytes(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  const std::string num = s.substr(0, i);
  std::string unit = s.substr(i);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb")
    mult = 1e3;
  else if (unit == "m" || unit == "mb")
    mult = 1e6;
  else if (unit == "g" || unit == "gb")
    mult = 1e9;
  else if (unit == "t" || unit == "tb")
    mult = 1e12;
  else if (unit == "ki" || unit == "kib")
    mult = 1024.0;
  else if (unit == "mi" || unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "gi" || unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "ti" || unit == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  double v = 0;
  bool ok = !num.empty() && mult > 0 && num.find('.') == num.rfind('.');
  if (ok) {
    try {
      size_t used = 0;
      v = std::stod(num, &used);
      ok = used == num.size();
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || !(v * mult >= 1) || v * mult > 9e18)
    fail(quote_bounded(s.substr(0, 64)), " is not a byte count (examples: 2GiB, 512MiB, 1.5G, 3000000)");
  return static_cast<int64_t>(v * mult);
}

}  // namespace skv::engine
