#pragma once
// GGUF v3 writer, for files derived from another GGUF (a SwiftKV conversion keeps every base
// tensor and metadata entry byte for byte and adds its own). Metadata entries are copied raw from
// the source so their types survive; new entries are u32 or string. Tensor data is written from
// where it lies (the source's mapping or an owned buffer), never copied in memory.
#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace skv::io {

class GGUFWriter {
 public:
  // Copies the entry `key` of `src` as it is in the file (type and value bytes).
  void copy_kv(const GGUFFile& src, const std::string& key);
  void set_u32(const std::string& key, uint32_t value);
  void set_string(const std::string& key, const std::string& value);
  // ne in ggml order (ne[0] contiguous); data must stay valid until write() returns.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t ggml_type, const void* data);
  // Writes atomically (a crash leaves the old file or the whole new one). alignment: the data
  // section's, which must match the source's general.alignment when that key was copied.
  void write(const std::string& path, uint64_t alignment = 32) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t ggml_type;
    const void* data;
    uint64_t nbytes;
  };
  void add_key(const std::string& key);  // throws on a duplicate
  std::vector<std::string> keys_;
  std::string kv_bytes_;
  std::vector<Tensor> tensors_;
};

}  // namespace skv::io
