#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "io/atomic_file.h"

namespace skv::io {

namespace {

using json = nlohmann::json;

std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  if (s == "F8_E4M3") return DType::F8_E4M3;  // compressed-tensors FP8 weights (io/compressed_tensors.h)
  return std::nullopt;
}

bool is_known_dtype(const std::string& s) {
  static const char* kAll[] = {"BOOL", "U8",  "I8",      "I16",     "U16", "U32",     "I64",
                               "U64",  "F64", "F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2"};
  return std::any_of(std::begin(kAll), std::end(kAll), [&](const char* k) { return s == k; });
}

// safetensors spells the plain dtypes as we do; quantised blocks have no safetensors tag.
const char* dtype_tag(DType t) { return dtype_is_quantized(t) ? nullptr : dtype_name(t); }

bool is_index(const json& j) { return j.is_number_unsigned(); }

// Element count of a shape, or nullopt on overflow.
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || n > uint64_t(INT64_MAX)) return std::nullopt;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), file_(std::make_shared<MappedFile>(path)) {
  const uint64_t size = file_->size();
  if (size < 8) fail(path, ": file of ", size, " bytes is too small for a safetensors header");
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > size - 8) fail(path, ": header length ", header_len, " exceeds file size ", size);

  const char* header_begin = reinterpret_cast<const char*>(file_->data() + 8);
  // nlohmann stops at a NUL byte; allow NULs only as trailing padding so nothing after one is
  // silently ignored.
  const char* header_end = header_begin + header_len;
  while (header_end > header_begin && header_end[-1] == '\0') --header_end;
  if (std::memchr(header_begin, '\0', header_end - header_begin))
    fail(path, ": invalid JSON header: contains a NUL byte");
  json header;
  try {
    header = json::parse(header_begin, header_end);
  } catch (const json::parse_error& e) {
    fail(path, ": invalid JSON header: syntax error at byte ", e.byte, " of the header");
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON header: ", bound_message(e.what(), 300));
  }
  if (!header.is_object()) fail(path, ": invalid JSON header: not an object");

  const uint8_t* buffer = file_->data() + 8 + header_len;
  const uint64_t buffer_size = size - 8 - header_len;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;

  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, ": __metadata__ is not an object");
      // Some writers store non-string values; keep them as JSON text rather than reject the file.
      for (const auto& [k, m] : v.items()) metadata_[k] = m.is_string() ? m.get<std::string>() : m.dump();
      continue;
    }
    const std::string where = path + ": tensor " + quote_bounded(name);
    if (!v.is_object()) fail(where, " entry is not an object");
    const auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(where, " has no dtype string");
    const std::string dtype_str = dt->get<std::string>();
    const auto dtype = parse_dtype(dtype_str);
    if (!dtype)
      fail(where, " has ", is_known_dtype(dtype_str) ? "unsupported" : "unknown", " dtype ",
           quote_bounded(dtype_str, 40), " (supported: F32, F16, BF16, I32, F8_E4M3)");

    const auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(where, " has no shape array");
    std::vector<int64_t> shape;
    for (const auto& d : *sh) {
      if (!is_index(d) || d.get<uint64_t>() > uint64_t(INT64_MAX))
        fail(where, " has invalid shape ", sh->dump(), " (dimensions must be non-negative integers)");
      shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }

    const auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !is_index((*off)[0]) || !is_index((*off)[1]))
      fail(where, " has invalid data_offsets (need [begin, end] as non-negative integers)");
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (end < begin) fail(where, " has data_offsets end ", end, " < begin ", begin);
    if (end > buffer_size)
      fail(where, " data range [", begin, ", ", end, ") exceeds the ", buffer_size, "-byte data buffer (file size ",
           size, ")");

    const auto numel = checked_numel(shape);
    uint64_t want = 0;
    if (!numel || __builtin_mul_overflow(*numel, dtype_block_bytes(*dtype), &want))
      fail(where, " shape ", shape_str(shape), " overflows");
    if (end - begin != want)
      fail(where, " has ", end - begin, " bytes but shape ", shape_str(shape), " x ", dtype_str, " needs ", want);

    tensors_[name] = Tensor::view(*dtype, std::move(shape), buffer + begin, file_);
    if (end > begin) ranges.push_back({begin, end, name});
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail(path, ": tensor ", quote_bounded(ranges[i].name), " data [", ranges[i].begin, ", ", ranges[i].end,
           ") overlaps tensor ", quote_bounded(ranges[i - 1].name), " [", ranges[i - 1].begin, ", ", ranges[i - 1].end,
           ")");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [k, v] : tensors_) out.push_back(k);
  return out;
}

const Tensor& SafetensorsFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, ": tensor ", quote_bounded(name), " not found");
  return it->second;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();  // std::map-backed, so names come out sorted
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::pair<const Tensor*, uint64_t>> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, ": '__metadata__' cannot be used as a tensor name");
    const char* tag = dtype_tag(t.dtype);
    if (!tag)
      fail(path, ": tensor ", quote_bounded(name), " has dtype ", dtype_name(t.dtype),
           ", which safetensors output does not support");
    if (!t.device.is_host()) fail_internal(path, ": tensor ", quote_bounded(name), " is not in host memory");
    const auto numel = checked_numel(t.shape.vec());
    if (!numel) fail(path, ": tensor ", quote_bounded(name), " shape ", t.shape_str(), " overflows");
    const uint64_t nbytes = *numel * dtype_block_bytes(t.dtype);
    if (nbytes > 0 && !t.data) fail(path, ": tensor ", quote_bounded(name), " has no data");
    header[name] = {{"dtype", tag}, {"shape", t.shape.vec()}, {"data_offsets", {offset, offset + nbytes}}};
    blobs.emplace_back(&t, nbytes);
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data buffer 8-byte aligned
  const uint64_t header_len = text.size();

  std::vector<std::pair<const void*, size_t>> parts = {{&header_len, 8}, {text.data(), text.size()}};
  for (const auto& [t, n] : blobs) parts.emplace_back(t->data, n);
  write_file_atomic(path, parts);
}

}  // namespace skv::io
