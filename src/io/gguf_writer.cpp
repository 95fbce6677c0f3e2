#include "io/gguf_writer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"

namespace skv::io {
namespace {

constexpr uint32_t kTypeU32 = 4;
constexpr uint32_t kTypeString = 8;

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

}  // namespace

void GGUFWriter::add_key(const std::string& key) {
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end())
    fail("GGUF writer: duplicate metadata key ", quote_bounded(key));
  keys_.push_back(key);
}

void GGUFWriter::copy_kv(const GGUFFile& src, const std::string& key) {
  const auto& raws = src.raw_kvs();
  auto it = std::find_if(raws.begin(), raws.end(), [&](const GGUFRawKV& r) { return r.key == key; });
  if (it == raws.end()) fail(src.path(), ": metadata key ", quote_bounded(key), " not found");
  add_key(key);
  kv_bytes_.append(reinterpret_cast<const char*>(src.mapping().data() + it->begin), it->end - it->begin);
}

void GGUFWriter::set_u32(const std::string& key, uint32_t value) {
  add_key(key);
  put_string(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, kTypeU32);
  put<uint32_t>(kv_bytes_, value);
}

void GGUFWriter::set_string(const std::string& key, const std::string& value) {
  add_key(key);
  put_string(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, kTypeString);
  put_string(kv_bytes_, value);
}

void GGUFWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t ggml_type,
                            const void* data) {
  if (ne.empty() || ne.size() > 4) fail("GGUF writer: tensor ", quote_bounded(name), " must have 1 to 4 dimensions");
  for (const auto& t : tensors_)
    if (t.name == name) fail("GGUF writer: duplicate tensor ", quote_bounded(name));
  tensors_.push_back({name, ne, ggml_type, data, ggml_nbytes(ggml_type, ne)});
}

void GGUFWriter::write(const std::string& path, uint64_t alignment) const {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) fail("GGUF writer: alignment must be a power of two");
  auto pad_to = [&](uint64_t n) { return (n + alignment - 1) / alignment * alignment; };
  std::string header;
  header.append("GGUF", 4);
  put<uint32_t>(header, 3);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, keys_.size());
  header += kv_bytes_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<int64_t>(header, d);
    put<uint32_t>(header, t.ggml_type);
    put<uint64_t>(header, offset);
    offset = pad_to(offset + t.nbytes);
  }
  header.resize(pad_to(header.size()), '\0');

  static const std::vector<char> zeros(4096, 0);
  if (alignment > zeros.size()) fail("GGUF writer: alignment ", alignment, " is larger than supported");
  std::vector<std::pair<const void*, size_t>> parts{{header.data(), header.size()}};
  for (const auto& t : tensors_) {
    parts.emplace_back(t.data, t.nbytes);
    const uint64_t pad = pad_to(t.nbytes) - t.nbytes;
    if (pad) parts.emplace_back(zeros.data(), pad);
  }
  write_file_atomic(path, parts);
}

}  // namespace skv::io
