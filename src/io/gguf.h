#pragma once
// GGUF v2/v3 reader: metadata key/values, tensor infos, aligned data section, all
// validated against the file size before anything is used.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace skv::io {

// Scalars are widened: every integer type and bool -> int64_t, floats -> double.
using GGUFValue =
    std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>, std::vector<std::string>>;

struct GGUFTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;  // size of the data, from ne and the ggml block layout
};

// Where one metadata entry (key, type and value) lies in the file, so a writer can copy it as is,
// types and all, instead of re-encoding the widened GGUFValue.
struct GGUFRawKV {
  std::string key;
  uint64_t begin = 0;
  uint64_t end = 0;
};

class GGUFFile {
 public:
  explicit GGUFFile(const std::string& path);  // throws skv::Error naming path + problem

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GGUFValue& get(const std::string& key) const;  // throws if missing
  int64_t get_int(const std::string& key) const;       // throws if missing or not an int
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;  // accepts ints too
  double get_float(const std::string& key, double def) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<std::string> keys() const;
  const std::vector<GGUFRawKV>& raw_kvs() const { return raw_kvs_; }  // in file order
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section

  const std::vector<GGUFTensorInfo>& tensor_infos() const { return infos_; }
  bool has_tensor(const std::string& name) const;
  // View into the mapping; shape reversed to PyTorch order, dtype mapped from ggml_type.
  // Throws for a tensor type swiftkv does not support, naming tensor and type.
  Tensor tensor(const std::string& name) const;
  const MappedFile& mapping() const { return *file_; }

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GGUFValue> kv_;
  std::vector<GGUFRawKV> raw_kvs_;
  std::vector<GGUFTensorInfo> infos_;
  std::map<std::string, size_t> index_;
};

// Bytes of a tensor of ggml type `ggml_type` with ne[0] = row elements per row, times rows;
// throws for an unknown type or a row that is not a whole number of blocks.
uint64_t ggml_nbytes(uint32_t ggml_type, const std::vector<int64_t>& ne);

// The ggml type id of a dtype GGUF can hold (the inverse of the reader's mapping); throws for
// MXFP8 and I32.
uint32_t ggml_type_of(DType dtype);

// ggml type ids swiftkv reads (F32=0, F16=1, Q4_0=2, Q4_1=3, Q5_0=6, Q5_1=7, Q8_0=8, Q4_K=12,
// Q5_K=13, Q6_K=14, BF16=30).
// Names every type ggml has defined (Q4_K, IQ2_XS, ...) so errors can say what a file holds;
// "unknown" for ids ggml never assigned.
const char* ggml_type_name(uint32_t ggml_type);

}  // namespace skv::io
