#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>

#include "core/error.h"

namespace skv::io {

static_assert(std::endian::native == std::endian::little, "GGUF is read in place: little-endian hosts only");

namespace {

// ggml's type traits (ggml.c), indexed by type id: enough to size any tensor a file may hold
// even when swiftkv cannot compute with it. block == 0 marks ids ggml has since removed.
struct GGMLType {
  const char* name;
  int64_t block;
  uint64_t bytes;
};
constexpr GGMLType kGGMLTypes[] = {
    {"F32", 1, 4},      {"F16", 1, 2},        {"Q4_0", 32, 18},     {"Q4_1", 32, 20},     {"Q4_2", 0, 0},
    {"Q4_3", 0, 0},     {"Q5_0", 32, 22},     {"Q5_1", 32, 24},     {"Q8_0", 32, 34},     {"Q8_1", 32, 36},
    {"Q2_K", 256, 84},  {"Q3_K", 256, 110},   {"Q4_K", 256, 144},   {"Q5_K", 256, 176},   {"Q6_K", 256, 210},
    {"Q8_K", 256, 292}, {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74},  {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18}, {"IQ3_S", 256, 110},  {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136}, {"I8", 1, 1},
    {"I16", 1, 2},      {"I32", 1, 4},        {"I64", 1, 8},        {"F64", 1, 8},        {"IQ1_M", 256, 56},
    {"BF16", 1, 2},     {"Q4_0_4_4", 0, 0},   {"Q4_0_4_8", 0, 0},   {"Q4_0_8_8", 0, 0},   {"TQ1_0", 256, 54},
    {"TQ2_0", 256, 66}, {"IQ4_NL_4_4", 0, 0}, {"IQ4_NL_4_8", 0, 0}, {"IQ4_NL_8_8", 0, 0}, {"MXFP4", 32, 17},
};
constexpr uint32_t kNumGGMLTypes = sizeof(kGGMLTypes) / sizeof(kGGMLTypes[0]);

std::optional<DType> to_dtype(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::F32;
    case 1:
      return DType::F16;
    case 2:
      return DType::Q4_0;
    case 3:
      return DType::Q4_1;
    case 6:
      return DType::Q5_0;
    case 7:
      return DType::Q5_1;
    case 12:
      return DType::Q4_K;
    case 13:
      return DType::Q5_K;
    case 14:
      return DType::Q6_K;
    case 8:
      return DType::Q8_0;
    case 30:
      return DType::BF16;
    default:
      return std::nullopt;
  }
}

enum GGUFType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Smallest encoding of one value of a type; bounds array lengths by the bytes left.
uint64_t min_value_bytes(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
    case kString:
      return 8;  // a string is at least its length
    case kArray:
      return 12;  // element type + count
    default:
      return 0;
  }
}

// Smallest tensor info: name length, n_dims, type, offset (and no name, no dims).
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
// Smallest key/value: key length, value type, a one-byte value.
constexpr uint64_t kMinKVBytes = 8 + 4 + 1;

class Reader {
 public:
  Reader(const MappedFile& f) : f_(f) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return f_.size() - pos_; }

  template <class T>
  T read(const char* what) {
    if (sizeof(T) > left())
      fail(f_.path(), ": truncated at offset ", pos_, " reading ", what, " (", sizeof(T), " bytes needed, ", left(),
           " left)");
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // `what` and `whose` only describe the string in errors (e.g. "an element of", "'tokens'").
  std::string read_string(const char* what, const std::string& whose = "") {
    const uint64_t len = read<uint64_t>("string length");
    if (len > left())
      fail(f_.path(), ": string length ", len, " of ", what, whose, " at offset ", pos_ - 8, " exceeds the ", left(),
           " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const MappedFile& f_;
  uint64_t pos_ = 0;
};

// Integers are widened to int64; uint64 values above INT64_MAX wrap (callers that care can
// cast back) because no key swiftkv reads holds such values and rejecting the file for an
// unrelated key would be worse.
int64_t read_int(Reader& r, uint32_t type) {
  switch (type) {
    case kU8:
      return r.read<uint8_t>("uint8");
    case kI8:
      return r.read<int8_t>("int8");
    case kU16:
      return r.read<uint16_t>("uint16");
    case kI16:
      return r.read<int16_t>("int16");
    case kU32:
      return r.read<uint32_t>("uint32");
    case kI32:
      return r.read<int32_t>("int32");
    case kU64:
      return static_cast<int64_t>(r.read<uint64_t>("uint64"));
    case kI64:
      return r.read<int64_t>("int64");
    case kBool:
      return r.read<uint8_t>("bool") != 0;
  }
  return 0;
}

bool is_int_type(uint32_t t) { return t <= kI32 || t == kBool || t == kU64 || t == kI64; }
bool is_float_type(uint32_t t) { return t == kF32 || t == kF64; }
double read_float(Reader& r, uint32_t type) {
  return type == kF32 ? r.read<float>("float32") : r.read<double>("float64");
}

GGUFValue read_value(Reader& r, uint32_t type, const std::string& key, const std::string& path) {
  if (is_int_type(type)) return read_int(r, type);
  if (is_float_type(type)) return read_float(r, type);
  if (type == kString) return r.read_string("the value of ", quote_bounded(key));
  if (type != kArray) fail(path, ": metadata key ", quote_bounded(key), " has unknown value type ", type);

  const uint32_t elem = r.read<uint32_t>("array element type");
  const uint64_t n = r.read<uint64_t>("array length");
  if (elem == kArray)
    fail(path, ": metadata key ", quote_bounded(key), " is an array of arrays, which is not supported");
  const uint64_t min_bytes = min_value_bytes(elem);
  if (min_bytes == 0) fail(path, ": metadata key ", quote_bounded(key), " is an array of unknown value type ", elem);
  if (n > r.left() / min_bytes)
    fail(path, ": array length ", n, " of metadata key ", quote_bounded(key), " exceeds what the ", r.left(),
         " bytes left in the file can hold");
  if (is_int_type(elem)) {
    std::vector<int64_t> v(n);
    for (auto& x : v) x = read_int(r, elem);
    return v;
  }
  if (is_float_type(elem)) {
    std::vector<double> v(n);
    for (auto& x : v) x = read_float(r, elem);
    return v;
  }
  std::vector<std::string> v(n);
  for (auto& s : v) s = r.read_string("an element of ", quote_bounded(key));
  return v;
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

}  // namespace

const char* ggml_type_name(uint32_t t) { return t < kNumGGMLTypes ? kGGMLTypes[t].name : "unknown"; }

uint32_t ggml_type_of(DType dtype) {
  for (uint32_t t = 0; t < kNumGGMLTypes; ++t)
    if (to_dtype(t) == dtype) return t;
  fail("GGUF has no type for ", dtype_name(dtype));
}

uint64_t ggml_nbytes(uint32_t ggml_type, const std::vector<int64_t>& ne) {
  if (ggml_type >= kNumGGMLTypes || kGGMLTypes[ggml_type].block == 0) fail("unknown ggml type id ", ggml_type);
  const GGMLType& gt = kGGMLTypes[ggml_type];
  if (ne.empty() || ne[0] % gt.block != 0)
    fail("a ", gt.name, " tensor needs rows of a multiple of ", gt.block, " elements");
  uint64_t numel = 1;
  for (int64_t d : ne) numel *= static_cast<uint64_t>(d);
  return numel / static_cast<uint64_t>(gt.block) * gt.bytes;
}

GGUFFile::GGUFFile(const std::string& path) : path_(path), file_(std::make_shared<MappedFile>(path)) {
  Reader r(*file_);
  if (file_->size() < 4 || std::memcmp(file_->data(), "GGUF", 4) != 0) fail(path, ": not a GGUF file (bad magic)");
  r.read<uint32_t>("magic");

  version_ = r.read<uint32_t>("version");
  if (version_ == 1) fail(path, ": GGUF version 1 is not supported (only v2 and v3); re-convert the model");
  if (version_ != 2 && version_ != 3) {
    if (__builtin_bswap32(version_) == 2 || __builtin_bswap32(version_) == 3)
      fail(path, ": big-endian GGUF files are not supported");
    fail(path, ": unsupported GGUF version ", version_, " (only v2 and v3)");
  }

  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata kv count");
  if (n_kv > r.left() / kMinKVBytes)
    fail(path, ": metadata kv count ", n_kv, " exceeds what the file (", file_->size(), " bytes) can hold");
  if (n_tensors > r.left() / kMinTensorInfoBytes)
    fail(path, ": tensor count ", n_tensors, " exceeds what the file (", file_->size(), " bytes) can hold");

  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t begin = r.pos();
    std::string key = r.read_string("metadata key #", std::to_string(i));
    const uint32_t type = r.read<uint32_t>("metadata value type");
    GGUFValue v = read_value(r, type, key, path);
    if (!kv_.emplace(key, std::move(v)).second) fail(path, ": duplicate metadata key ", quote_bounded(key));
    raw_kvs_.push_back({key, begin, r.pos()});
  }

  if (has("general.alignment")) {
    const auto* a = std::get_if<int64_t>(&get("general.alignment"));
    if (!a || *a <= 0 || !std::has_single_bit(static_cast<uint64_t>(*a)))
      fail(path, ": general.alignment must be a positive power of two");
    alignment_ = static_cast<uint64_t>(*a);
  }

  if (n_tensors > r.left() / kMinTensorInfoBytes)
    fail(path, ": tensor count ", n_tensors, " exceeds what the file (", file_->size(), " bytes) can hold");
  infos_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GGUFTensorInfo t;
    t.name = r.read_string("tensor name #", std::to_string(i));
    const uint32_t n_dims = r.read<uint32_t>("tensor n_dims");
    if (n_dims == 0 || n_dims > 4)
      fail(path, ": tensor ", quote_bounded(t.name), " has n_dims ", n_dims, " (must be 1..4)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t ne = r.read<int64_t>("tensor dimension");
      if (ne <= 0)
        fail(path, ": tensor ", quote_bounded(t.name), " has dimension ", d, " of size ", ne, " (must be positive)");
      if (!checked_mul(numel, static_cast<uint64_t>(ne), numel) || numel > uint64_t(INT64_MAX))
        fail(path, ": tensor ", quote_bounded(t.name), " element count overflows");
      t.ne.push_back(ne);
    }
    t.ggml_type = r.read<uint32_t>("tensor type");
    t.offset = r.read<uint64_t>("tensor offset");

    if (t.ggml_type >= kNumGGMLTypes)
      fail(path, ": tensor ", quote_bounded(t.name), " has unknown ggml type id ", t.ggml_type);
    const GGMLType& gt = kGGMLTypes[t.ggml_type];
    if (gt.block == 0)
      fail(path, ": tensor ", quote_bounded(t.name), " has ggml type ", gt.name, " (id ", t.ggml_type,
           "), which ggml no longer supports");
    if (t.ne[0] % gt.block != 0)
      fail(path, ": tensor ", quote_bounded(t.name), " has ne[0] = ", t.ne[0], ", not a multiple of the ", gt.name,
           " block size ", gt.block);
    if (!checked_mul(numel / gt.block, gt.bytes, t.nbytes))
      fail(path, ": tensor ", quote_bounded(t.name), " byte size overflows");
    if (t.offset % alignment_ != 0)
      fail(path, ": tensor ", quote_bounded(t.name), " offset ", t.offset, " is not a multiple of the alignment ",
           alignment_);
    if (!index_.emplace(t.name, infos_.size()).second) fail(path, ": duplicate tensor name ", quote_bounded(t.name));
    infos_.push_back(std::move(t));
  }

  data_offset_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (const auto& t : infos_) {
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(data_offset_, t.offset, &begin) || __builtin_add_overflow(begin, t.nbytes, &end) ||
        end > file_->size())
      fail(path, ": tensor ", quote_bounded(t.name), " data range [", data_offset_, " + ", t.offset, ", +", t.nbytes,
           ") exceeds file size ", file_->size());
  }

  std::vector<const GGUFTensorInfo*> by_offset;
  for (const auto& t : infos_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto *a = by_offset[i - 1], *b = by_offset[i];
    if (b->offset < a->offset + a->nbytes)
      fail(path, ": tensor ", quote_bounded(b->name), " data at offset ", b->offset, " overlaps tensor ",
           quote_bounded(a->name), " [", a->offset, ", ", a->offset + a->nbytes, ")");
  }
}

const GGUFValue& GGUFFile::get(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) fail(path_, ": metadata key ", quote_bounded(key), " not found");
  return it->second;
}

int64_t GGUFFile::get_int(const std::string& key) const {
  const auto* v = std::get_if<int64_t>(&get(key));
  if (!v) fail(path_, ": metadata key ", quote_bounded(key), " is not an integer");
  return *v;
}

int64_t GGUFFile::get_int(const std::string& key, int64_t def) const { return has(key) ? get_int(key) : def; }

double GGUFFile::get_float(const std::string& key) const {
  const GGUFValue& v = get(key);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  fail(path_, ": metadata key ", quote_bounded(key), " is not a number");
}

double GGUFFile::get_float(const std::string& key, double def) const { return has(key) ? get_float(key) : def; }

std::string GGUFFile::get_string(const std::string& key) const {
  const auto* v = std::get_if<std::string>(&get(key));
  if (!v) fail(path_, ": metadata key ", quote_bounded(key), " is not a string");
  return *v;
}

std::string GGUFFile::get_string(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}

std::vector<std::string> GGUFFile::get_string_array(const std::string& key) const {
  const auto* v = std::get_if<std::vector<std::string>>(&get(key));
  if (!v) fail(path_, ": metadata key ", quote_bounded(key), " is not an array of strings");
  return *v;
}

std::vector<int64_t> GGUFFile::get_int_array(const std::string& key) const {
  const auto* v = std::get_if<std::vector<int64_t>>(&get(key));
  if (!v) fail(path_, ": metadata key ", quote_bounded(key), " is not an array of integers");
  return *v;
}

std::vector<double> GGUFFile::get_float_array(const std::string& key) const {
  const GGUFValue& v = get(key);
  if (const auto* d = std::get_if<std::vector<double>>(&v)) return *d;
  if (const auto* i = std::get_if<std::vector<int64_t>>(&v)) return {i->begin(), i->end()};
  fail(path_, ": metadata key ", quote_bounded(key), " is not an array of numbers");
}

std::vector<std::string> GGUFFile::keys() const {
  std::vector<std::string> out;
  out.reserve(kv_.size());
  for (const auto& [k, v] : kv_) out.push_back(k);
  return out;
}

bool GGUFFile::has_tensor(const std::string& name) const { return index_.count(name) != 0; }

Tensor GGUFFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(path_, ": tensor ", quote_bounded(name), " not found");
  const GGUFTensorInfo& t = infos_[it->second];
  const auto dtype = to_dtype(t.ggml_type);
  if (!dtype) {
    // Both lists from the type table, so the message cannot fall behind the reader.
    std::string reads, refuses;
    for (uint32_t id = 0; id < kNumGGMLTypes; ++id) {
      if (kGGMLTypes[id].block == 0) continue;  // ids ggml has removed
      std::string& list = to_dtype(id) ? reads : refuses;
      list += (list.empty() ? "" : ", ") + std::string(kGGMLTypes[id].name);
    }
    fail(path_, ": tensor ", quote_bounded(name), " has type ", ggml_type_name(t.ggml_type), " (ggml type ",
         t.ggml_type, "), which swiftkv does not support; it reads ", reads, " and refuses ", refuses);
  }
  std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());
  return Tensor::view(*dtype, std::move(shape), file_->data() + data_offset_ + t.offset, file_);
}

}  // namespace skv::io
