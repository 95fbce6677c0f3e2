// safetensors reader/writer and MappedFile: round trips, the exact on-disk layout the writer
// produces, and clean skv::Errors for every kind of corrupt header.
#include <gtest/gtest.h>

#include <random>

#include "../fixtures/io/io_test_util.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"

using namespace skv_test;
using skv::DType;
using skv::Tensor;
using skv::io::SafetensorsFile;

namespace {

Tensor f32(std::vector<int64_t> shape, float start = 0) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = start + static_cast<float>(i);
  return t;
}

Tensor u16(DType dtype, std::vector<int64_t> shape, uint16_t start) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.as<uint16_t>()[i] = static_cast<uint16_t>(start + i);
  return t;
}

// A file with a hand-written header; data is `data_bytes` bytes of 0xAB.
Bytes raw_file(const std::string& header, size_t data_bytes, std::optional<uint64_t> header_len = std::nullopt) {
  Bytes b;
  GGUFBuilder::put<uint64_t>(b, header_len.value_or(header.size()));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data_bytes, 0xAB);
  return b;
}

}  // namespace

TEST(MappedFile, Errors) {
  TempDir dir;
  EXPECT_SKV_ERROR(skv::io::MappedFile(dir.file("nope")), "cannot open");
  EXPECT_SKV_ERROR(skv::io::MappedFile(dir.file("nope")), dir.file("nope"));
  EXPECT_SKV_ERROR(skv::io::MappedFile(dir.path.string()), "is a directory");
  write_file(dir.file("empty"), std::string());
  EXPECT_SKV_ERROR(skv::io::MappedFile(dir.file("empty")), "empty");
  write_file(dir.file("x"), std::string("abc"));
  skv::io::MappedFile m(dir.file("x"));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.data()[2], 'c');
  EXPECT_EQ(m.path(), dir.file("x"));
}

TEST(Safetensors, RoundTrip) {
  TempDir dir;
  std::map<std::string, Tensor> in = {
      {"b.weight", f32({2, 3}, 10)},
      {"a.bias", f32({3})},
      {"half", u16(DType::F16, {4}, 0x3C00)},
      {"bf", u16(DType::BF16, {2, 2}, 0x3F80)},
      {"scalar", f32({}, 7)},
      {"empty", f32({0, 3})},
  };
  Tensor ids = Tensor::empty(DType::I32, {2});
  ids.as<int32_t>()[0] = -1;
  ids.as<int32_t>()[1] = 123456;
  in["ids"] = ids;
  const std::string path = dir.file("model.safetensors");
  skv::io::write_safetensors(path, in, {{"format", "pt"}, {"note", "x y"}});

  SafetensorsFile f(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a.bias", "b.weight", "bf", "empty", "half", "ids", "scalar"}));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x y"}}));
  for (const auto& [name, t] : in) {
    const Tensor& r = f.tensor(name);
    EXPECT_EQ(r.dtype, t.dtype) << name;
    EXPECT_EQ(r.shape, t.shape) << name;
    EXPECT_TRUE(r.owner);
    if (t.numel() > 0) {
      EXPECT_EQ(r.nbytes(), t.nbytes()) << name;
      EXPECT_EQ(std::memcmp(r.data, t.data, t.nbytes()), 0) << name;
    }
  }
  EXPECT_EQ(f.tensor("b.weight").as<float>()[5], 15.0f);
  EXPECT_EQ(f.tensor("scalar").as<float>()[0], 7.0f);
  EXPECT_EQ(f.tensor("ids").as<int32_t>()[1], 123456);
  EXPECT_TRUE(f.has("half"));
  EXPECT_FALSE(f.has("__metadata__"));
  EXPECT_SKV_ERROR(f.tensor("missing"), "tensor 'missing' not found");
}

TEST(Safetensors, WriterLayout) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  skv::io::write_safetensors(path, {{"z", f32({1})}, {"a", f32({2})}});
  const Bytes b = read_file(path);
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(b.size(), 8 + n + 12);
  const std::string header(b.begin() + 8, b.begin() + 8 + static_cast<long>(n));
  EXPECT_EQ(
      header.substr(0, header.find_last_not_of(' ') + 1),
      R"({"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]},"z":{"data_offsets":[8,12],"dtype":"F32","shape":[1]}})");
  EXPECT_EQ(header.find_first_not_of(' ', header.find_last_not_of(' ') + 1), std::string::npos);
  float z;
  std::memcpy(&z, b.data() + 8 + n + 8, 4);
  EXPECT_EQ(z, 0.0f);
  EXPECT_FALSE(header.find("__metadata__") != std::string::npos);  // none given, none written
}

TEST(Safetensors, WriterIsAtomicAndCleansUp) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  skv::io::write_safetensors(path, {{"a", f32({2})}});
  skv::io::write_safetensors(path, {{"b", f32({3}, 1)}});  // overwrite in place
  EXPECT_EQ(SafetensorsFile(path).names(), std::vector<std::string>{"b"});

  // A failed write leaves the old file untouched and no temporary behind.
  Tensor q = Tensor::empty(DType::Q8_0, {1, 32});
  EXPECT_SKV_ERROR(skv::io::write_safetensors(path, {{"q", q}}), "Q8_0");
  EXPECT_SKV_ERROR(skv::io::write_safetensors(path, {{"__metadata__", f32({1})}}), "__metadata__");
  EXPECT_EQ(SafetensorsFile(path).names(), std::vector<std::string>{"b"});
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "m.safetensors");
  }
  EXPECT_EQ(files, 1u);

  EXPECT_SKV_ERROR(skv::io::write_safetensors(dir.file("no/such/dir/m.safetensors"), {{"a", f32({1})}}),
                   "temporary file");
}

TEST(Safetensors, ReaderToleratesMetadataAndPadding) {
  TempDir dir;
  const std::string h =
      R"({"__metadata__":{"format":"pt","n":3},"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}   )";
  write_file(dir.file("m.safetensors"), raw_file(h, 4));
  SafetensorsFile f(dir.file("m.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("n"), "3");
  EXPECT_EQ(f.tensor("t").shape, std::vector<int64_t>{2});
}

TEST(Safetensors, TensorOutlivesFile) {
  TempDir dir;
  skv::io::write_safetensors(dir.file("m.safetensors"), {{"a", f32({4}, 1)}});
  Tensor t;
  {
    SafetensorsFile f(dir.file("m.safetensors"));
    t = f.tensor("a");
  }
  EXPECT_EQ(t.as<float>()[3], 4.0f);
}

// ---- corrupt files ----

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  std::string open(const Bytes& b) {
    write_file(path, b);
    return error_of([&] { SafetensorsFile f(path); });
  }
  std::string open(const std::string& header, size_t data_bytes) { return open(raw_file(header, data_bytes)); }
};

#define EXPECT_HAS(msg, needle) EXPECT_NE((msg).find(needle), std::string::npos) << "error message: " << (msg)

TEST_F(SafetensorsCorrupt, HeaderLength) {
  EXPECT_HAS(open(Bytes{1, 2, 3}), "too small");
  const std::string m = open(raw_file("{}", 0, 1000));
  EXPECT_HAS(m, "header length 1000 exceeds file size 10");
  EXPECT_HAS(m, path);
  EXPECT_HAS(open(raw_file("{}", 0, ~0ull)), "exceeds file size");
}

TEST_F(SafetensorsCorrupt, InvalidJson) {
  EXPECT_HAS(open("{\"a\": ", 0), "invalid JSON");
  EXPECT_HAS(open("[1, 2]", 0), "not an object");
  EXPECT_HAS(open(std::string("{}\0x", 4), 0), "NUL byte");
  EXPECT_EQ(open(std::string("{}\0\0", 4), 0), "<no error>");  // trailing NUL padding is harmless
  EXPECT_HAS(open(R"({"t": 3})", 0), "'t' entry is not an object");
  EXPECT_HAS(open(R"({"__metadata__": 3})", 0), "__metadata__");
}

TEST_F(SafetensorsCorrupt, Fields) {
  EXPECT_HAS(open(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", 4), "no dtype");
  EXPECT_HAS(open(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", 4), "no shape");
  EXPECT_HAS(open(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "invalid shape");
  EXPECT_HAS(open(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "invalid shape");
  EXPECT_HAS(open(R"({"t":{"dtype":"F32","shape":[1]}})", 4), "data_offsets");
  EXPECT_HAS(open(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "data_offsets");
  EXPECT_HAS(open(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4), "data_offsets");
}

TEST_F(SafetensorsCorrupt, Dtypes) {
  std::string m = open(R"({"w":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_HAS(m, "tensor 'w'");
  EXPECT_HAS(m, "unknown dtype 'Q9'");
  m = open(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8);
  EXPECT_HAS(m, "unsupported dtype 'I64'");
}

TEST_F(SafetensorsCorrupt, Offsets) {
  std::string m = open(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4);
  EXPECT_HAS(m, "tensor 'x' data range [0, 8) exceeds");
  m = open(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8);
  EXPECT_HAS(m, "end 4 < begin 8");
  m = open(R"({"x":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4);
  EXPECT_HAS(m, "invalid shape");
  m = open(R"({"x":{"dtype":"F32","shape":[4611686018427387904, 4],"data_offsets":[0,4]}})", 4);
  EXPECT_HAS(m, "overflows");
  m = open(R"({"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4);
  EXPECT_HAS(m, "overflows");
  m = open(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4);
  EXPECT_HAS(m, "has 4 bytes but shape [2] x F32 needs 8");
  m = open(R"({"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8);
  EXPECT_HAS(m, "needs 6");
}

TEST_F(SafetensorsCorrupt, Overlap) {
  const std::string m = open(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      8);
  EXPECT_HAS(m, "overlaps");
  EXPECT_HAS(m, "'a'");
  EXPECT_HAS(m, "'b'");
  // Zero-sized tensors occupy nothing and may share an offset.
  EXPECT_EQ(
      open(
          R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
          4),
      "<no error>");
}

TEST_F(SafetensorsCorrupt, EveryTruncationAndRandomFlips) {
  TempDir src;
  skv::io::write_safetensors(src.file("m.safetensors"), {{"a", f32({3})}, {"b", u16(DType::BF16, {2, 2}, 1)}},
                             {{"k", "v"}});
  const Bytes full = read_file(src.file("m.safetensors"));
  for (size_t n = 0; n < full.size(); ++n)
    EXPECT_NE(open(Bytes(full.begin(), full.begin() + n)), "<no error>") << "prefix " << n;
  std::mt19937 rng(42);
  for (int iter = 0; iter < 500; ++iter) {
    Bytes b = full;
    for (int k = 0; k <= iter % 3; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    open(b);  // accepted or skv::Error; anything else fails the test
  }
}
