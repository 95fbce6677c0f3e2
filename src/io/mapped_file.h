#pragma once
// Read-only memory mapping; weights are used in place so loading copies nothing.
#include <cstddef>
#include <cstdint>
#include <string>

namespace skv::io {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws skv::Error naming path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool contains(const void* p) const { return p >= data_ && p < data_ + size_; }
  // Drops the resident pages wholly inside [p, p + n) (read-only private mapping: they are
  // re-read from the file if touched again). For weights copied elsewhere at load.
  void release(const void* p, size_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace skv::io
