#pragma once
// safetensors reader: JSON header validated (offsets in bounds, sizes agree with shape x
// dtype, no overlap) before any tensor is exposed; tensors are views into the mapping.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace skv::io {

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws skv::Error naming path + problem
  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const Tensor& tensor(const std::string& name) const;  // throws if missing
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const MappedFile& mapping() const { return *file_; }

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes F32 / F16 / BF16 / I32 / F8_E4M3 tensors (used by convert and by tests that build fixtures).
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace skv::io
