// GGUF reader: round trips through files written by a tiny in-test writer, and every kind of
// corrupt file must fail with a skv::Error that says what is wrong (never crash).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../fixtures/io/io_test_util.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"

using namespace skv_test;
using skv::io::GGUFFile;

namespace {

Bytes f32_bytes(std::initializer_list<float> v) {
  Bytes b;
  for (float x : v) GGUFBuilder::put<float>(b, x);
  return b;
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

// One tensor of each supported type, plus metadata of every value type.
GGUFBuilder full_builder() {
  GGUFBuilder g;
  g.kv<uint8_t>("u8", U8, 200)
      .kv<int8_t>("i8", I8, -100)
      .kv<uint16_t>("u16", U16, 60000)
      .kv<int16_t>("i16", I16, -30000)
      .kv<uint32_t>("u32", U32, 4000000000u)
      .kv<int32_t>("i32", I32, -2000000000)
      .kv<uint64_t>("u64", U64, 1ull << 40)
      .kv<int64_t>("i64", I64, -(1ll << 40))
      .kv<float>("f32", F32, 0.5f)
      .kv<double>("f64", F64, 1e-300)
      .kv<uint8_t>("bool", BOOL, 1)
      .kv_str("str", "héllo")
      .kv_str("empty", "")
      .kv_strs("strs", {"a", "", "ccc"})
      .kv_array<int32_t>("i32s", I32, {1, -2, 3})
      .kv_array<uint8_t>("bools", BOOL, {1, 0})
      .kv_array<float>("f32s", F32, {1.5f, -2.25f})
      .kv_array<double>("f64s", F64, {})
      .kv_array<uint64_t>("u64s", U64, {7});
  g.tensor("f32", {3, 2}, 0, f32_bytes({0, 1, 2, 3, 4, 5}))
      .tensor("f16", {4}, 1, pattern(8, 1))
      .tensor("bf16", {2, 2}, 30, pattern(8, 2))
      .tensor("q8_0", {64, 3}, 8, pattern(2 * 3 * 34, 3))
      .tensor("q4_0", {32, 1, 2}, 2, pattern(2 * 18, 4))
      .tensor("q5_0", {64}, 6, pattern(2 * 22, 6))
      .tensor("q5_1", {32, 3}, 7, pattern(3 * 24, 7))
      .tensor("q4_k", {256, 2}, 12, pattern(2 * 144, 8))
      .tensor("q5_k", {512}, 13, pattern(2 * 176, 9))
      .tensor("q6_k", {256, 1, 3}, 14, pattern(3 * 210, 10))
      .tensor("q4_1", {32, 1, 1, 2}, 3, pattern(2 * 20, 5));  // last: DataPastEnd cuts into it
  return g;
}

void check_full(const GGUFFile& f, const GGUFBuilder& g) {
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_int("u64"), 1ll << 40);
  EXPECT_EQ(f.get_int("i64"), -(1ll << 40));
  EXPECT_EQ(f.get_float("f32"), 0.5);
  EXPECT_EQ(f.get_float("f64"), 1e-300);
  EXPECT_EQ(f.get_float("u8"), 200.0);  // ints are accepted as floats
  EXPECT_EQ(f.get_int("bool"), 1);
  EXPECT_EQ(f.get_string("str"), "héllo");
  EXPECT_EQ(f.get_string("empty"), "");
  EXPECT_EQ(f.get_string_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_int_array("i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_int_array("bools"), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(f.get_float_array("f32s"), (std::vector<double>{1.5, -2.25}));
  EXPECT_EQ(f.get_float_array("i32s"), (std::vector<double>{1, -2, 3}));
  EXPECT_TRUE(f.get_float_array("f64s").empty());
  EXPECT_EQ(f.get_int_array("u64s"), (std::vector<int64_t>{7}));
  EXPECT_EQ(f.keys().size(), 19u);

  ASSERT_EQ(f.tensor_infos().size(), g.tensors.size());
  EXPECT_EQ(f.data_offset() % 32, 0u);
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const auto& spec = g.tensors[i];
    const auto& info = f.tensor_infos()[i];
    EXPECT_EQ(info.name, spec.name);
    EXPECT_EQ(info.ne, spec.ne);
    EXPECT_EQ(info.ggml_type, spec.type);
    EXPECT_EQ(info.offset % 32, 0u);
    EXPECT_EQ(info.nbytes, spec.data.size());
    skv::Tensor t = f.tensor(spec.name);
    EXPECT_EQ(t.shape, std::vector<int64_t>(spec.ne.rbegin(), spec.ne.rend()));
    ASSERT_EQ(t.nbytes(), spec.data.size()) << spec.name;
    EXPECT_EQ(std::memcmp(t.data, spec.data.data(), spec.data.size()), 0) << spec.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u);
    EXPECT_TRUE(t.owner);
  }
  EXPECT_EQ(f.tensor("f32").dtype, skv::DType::F32);
  EXPECT_EQ(f.tensor("f16").dtype, skv::DType::F16);
  EXPECT_EQ(f.tensor("bf16").dtype, skv::DType::BF16);
  EXPECT_EQ(f.tensor("q8_0").dtype, skv::DType::Q8_0);
  EXPECT_EQ(f.tensor("q4_0").dtype, skv::DType::Q4_0);
  EXPECT_EQ(f.tensor("q4_1").dtype, skv::DType::Q4_1);
  EXPECT_EQ(f.tensor("q5_0").dtype, skv::DType::Q5_0);
  EXPECT_EQ(f.tensor("q5_1").dtype, skv::DType::Q5_1);
  EXPECT_EQ(f.tensor("q4_k").dtype, skv::DType::Q4_K);
  EXPECT_EQ(f.tensor("q5_k").dtype, skv::DType::Q5_K);
  EXPECT_EQ(f.tensor("q6_k").dtype, skv::DType::Q6_K);
  EXPECT_EQ(f.tensor("q6_k").shape, (std::vector<int64_t>{3, 1, 256}));
  EXPECT_EQ(f.tensor("f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.tensor("f32").as<float>()[4], 4.0f);
  EXPECT_EQ(f.tensor("q4_1").shape, (std::vector<int64_t>{2, 1, 1, 32}));
}

}  // namespace

TEST(GGUF, RoundTripV3) {
  TempDir dir;
  const GGUFBuilder g = full_builder();
  g.write(dir.file("m.gguf"));
  GGUFFile f(dir.file("m.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  check_full(f, g);
}

// The writer copies every metadata entry raw (types preserved) and every tensor from the
// source's mapping: the copy reads back exactly like the original, plus the entries it added.
TEST(GGUFWriter, CopiesAFileExactly) {
  TempDir dir;
  const GGUFBuilder g = full_builder();
  g.write(dir.file("src.gguf"));
  GGUFFile src(dir.file("src.gguf"));
  skv::io::GGUFWriter w;
  for (const auto& kv : src.raw_kvs()) w.copy_kv(src, kv.key);
  w.set_u32("added.u32", 7);
  w.set_string("added.str", "swift");
  for (const auto& t : src.tensor_infos())
    w.add_tensor(t.name, t.ne, t.ggml_type, src.mapping().data() + src.data_offset() + t.offset);
  const Bytes extra = f32_bytes({1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
                                 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33});
  w.add_tensor("extra", {33}, 0, extra.data());  // 132 bytes: the next offset needs padding
  w.write(dir.file("copy.gguf"));

  GGUFFile f(dir.file("copy.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_int("added.u32"), 7);
  EXPECT_EQ(f.get_string("added.str"), "swift");
  EXPECT_EQ(f.keys().size(), 21u);
  ASSERT_EQ(f.raw_kvs().size(), 21u);
  for (size_t i = 0; i < src.raw_kvs().size(); ++i) {
    const auto &a = src.raw_kvs()[i], &b = f.raw_kvs()[i];
    EXPECT_EQ(a.key, b.key);
    ASSERT_EQ(a.end - a.begin, b.end - b.begin) << a.key;
    EXPECT_EQ(std::memcmp(src.mapping().data() + a.begin, f.mapping().data() + b.begin, a.end - a.begin), 0) << a.key;
  }
  GGUFBuilder with_extra = g;
  with_extra.tensor("extra", {33}, 0, extra);
  ASSERT_EQ(f.tensor_infos().size(), with_extra.tensors.size());
  for (size_t i = 0; i < with_extra.tensors.size(); ++i) {
    const auto& spec = with_extra.tensors[i];
    EXPECT_EQ(f.tensor_infos()[i].name, spec.name);
    EXPECT_EQ(f.tensor_infos()[i].ggml_type, spec.type);
    EXPECT_EQ(f.tensor_infos()[i].offset % 32, 0u);
    const skv::Tensor t = f.tensor(spec.name);
    ASSERT_EQ(t.nbytes(), spec.data.size()) << spec.name;
    EXPECT_EQ(std::memcmp(t.data, spec.data.data(), spec.data.size()), 0) << spec.name;
  }
}

TEST(GGUFWriter, RejectsDuplicatesAndBadSizes) {
  TempDir dir;
  full_builder().write(dir.file("src.gguf"));
  GGUFFile src(dir.file("src.gguf"));
  skv::io::GGUFWriter w;
  w.set_u32("k", 1);
  EXPECT_THROW(w.set_u32("k", 2), skv::Error);
  EXPECT_THROW(w.copy_kv(src, "no.such.key"), skv::Error);
  const Bytes b(64);
  w.add_tensor("t", {2}, 0, b.data());
  EXPECT_THROW(w.add_tensor("t", {2}, 0, b.data()), skv::Error);
  EXPECT_THROW(w.add_tensor("q", {31}, 8, b.data()), skv::Error);  // Q8_0 rows are whole blocks of 32
  EXPECT_THROW(w.add_tensor("z", {}, 0, b.data()), skv::Error);
}

TEST(GGUF, RoundTripV2) {
  TempDir dir;
  GGUFBuilder g = full_builder();
  g.version = 2;
  g.write(dir.file("m.gguf"));
  GGUFFile f(dir.file("m.gguf"));
  EXPECT_EQ(f.version(), 2u);
  check_full(f, g);
}

TEST(GGUF, TensorOutlivesFile) {
  TempDir dir;
  full_builder().write(dir.file("m.gguf"));
  skv::Tensor t;
  {
    GGUFFile f(dir.file("m.gguf"));
    t = f.tensor("f32");
  }
  EXPECT_EQ(t.as<float>()[5], 5.0f);  // the view's owner keeps the mapping alive
}

TEST(GGUF, CustomAlignment) {
  TempDir dir;
  GGUFBuilder g;
  g.alignment = 64;
  g.kv_u32("general.alignment", 64).tensor("a", {3}, 0, f32_bytes({1, 2, 3})).tensor("b", {2}, 0, f32_bytes({4, 5}));
  g.write(dir.file("m.gguf"));
  GGUFFile f(dir.file("m.gguf"));
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor_infos()[1].offset, 64u);
  EXPECT_EQ(f.tensor("b").as<float>()[1], 5.0f);
}

TEST(GGUF, NoTensors) {
  TempDir dir;
  GGUFBuilder g;
  g.kv_str("general.architecture", "llama");
  g.write(dir.file("m.gguf"));
  GGUFFile f(dir.file("m.gguf"));
  EXPECT_TRUE(f.tensor_infos().empty());
  EXPECT_FALSE(f.has_tensor("x"));
}

TEST(GGUF, Accessors) {
  TempDir dir;
  full_builder().write(dir.file("m.gguf"));
  GGUFFile f(dir.file("m.gguf"));
  EXPECT_TRUE(f.has("u8"));
  EXPECT_FALSE(f.has("nope"));
  EXPECT_EQ(f.get_int("nope", 5), 5);
  EXPECT_EQ(f.get_float("nope", 2.5), 2.5);
  EXPECT_EQ(f.get_string("nope", "d"), "d");
  EXPECT_SKV_ERROR(f.get("nope"), "'nope' not found");
  EXPECT_SKV_ERROR(f.get_int("str"), "not an integer");
  EXPECT_SKV_ERROR(f.get_int("str", 1), "not an integer");  // present with the wrong type is an error
  EXPECT_SKV_ERROR(f.get_float("str"), "not a number");
  EXPECT_SKV_ERROR(f.get_string("u8"), "not a string");
  EXPECT_SKV_ERROR(f.get_string_array("i32s"), "not an array of strings");
  EXPECT_SKV_ERROR(f.get_int_array("strs"), "not an array of integers");
  EXPECT_SKV_ERROR(f.get_float_array("strs"), "not an array of numbers");
  EXPECT_SKV_ERROR(f.tensor("nope"), "tensor 'nope' not found");
}

TEST(GGUF, TypeNames) {
  EXPECT_STREQ(skv::io::ggml_type_name(0), "F32");
  EXPECT_STREQ(skv::io::ggml_type_name(8), "Q8_0");
  EXPECT_STREQ(skv::io::ggml_type_name(12), "Q4_K");
  EXPECT_STREQ(skv::io::ggml_type_name(14), "Q6_K");
  EXPECT_STREQ(skv::io::ggml_type_name(16), "IQ2_XXS");
  EXPECT_STREQ(skv::io::ggml_type_name(30), "BF16");
  EXPECT_STREQ(skv::io::ggml_type_name(1000), "unknown");
}

TEST(GGUF, UnsupportedKnownTypeFailsOnUse) {
  TempDir dir;
  GGUFBuilder g;
  // Q3_K (ggml type 11): 110 bytes per 256 values.
  g.tensor("blk.0.attn_q.weight", {256, 2}, 11, pattern(2 * 110, 9)).tensor("ok", {1}, 0, f32_bytes({1}));
  g.write(dir.file("m.gguf"));
  GGUFFile f(dir.file("m.gguf"));  // the file itself is fine; sizes are known for every ggml type
  EXPECT_EQ(f.tensor_infos()[0].nbytes, 220u);
  const std::string msg = error_of([&] { f.tensor("blk.0.attn_q.weight"); });
  EXPECT_NE(msg.find("blk.0.attn_q.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("type Q3_K"), std::string::npos) << msg;
  // It says what is read instead.
  const size_t reads = msg.find("swiftkv does not support; it reads ");
  ASSERT_NE(reads, std::string::npos) << msg;
  const size_t refuses = msg.find(" and refuses ", reads);
  ASSERT_NE(refuses, std::string::npos) << msg;
  const std::string read_list = msg.substr(reads, refuses - reads), refused_list = msg.substr(refuses);
  for (const char* t : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}) {
    EXPECT_NE(read_list.find(std::string(" ") + t), std::string::npos) << t << ": " << msg;
    EXPECT_EQ(refused_list.find(std::string(" ") + t + ","), std::string::npos) << t << ": " << msg;
  }
  for (const char* t : {"Q2_K", "Q3_K", "IQ4_XS", "MXFP4"})
    EXPECT_NE(refused_list.find(std::string(" ") + t), std::string::npos) << t << ": " << msg;
  EXPECT_EQ(f.tensor("ok").as<float>()[0], 1.0f);
}

// ---- corrupt files ----

class GGUFCorrupt : public ::testing::Test {
 protected:
  TempDir dir;
  std::string path = dir.file("bad.gguf");
  std::string open(const GGUFBuilder& g) {
    g.write(path);
    return error_of([&] { GGUFFile f(path); });
  }
  std::string open(const Bytes& b) {
    write_file(path, b);
    return error_of([&] { GGUFFile f(path); });
  }
};

#define EXPECT_HAS(msg, needle) EXPECT_NE((msg).find(needle), std::string::npos) << "error message: " << (msg)

TEST_F(GGUFCorrupt, MissingEmptyDirectory) {
  EXPECT_SKV_ERROR(GGUFFile(dir.file("missing.gguf")), "cannot open");
  EXPECT_SKV_ERROR(GGUFFile(dir.path.string()), "directory");
  EXPECT_HAS(open(Bytes{}), "empty");
}

TEST_F(GGUFCorrupt, BadMagic) {
  Bytes b = full_builder().build();
  b[0] = 'X';
  EXPECT_HAS(open(b), "bad magic");
  EXPECT_HAS(open(Bytes{'G', 'G'}), "bad magic");
}

TEST_F(GGUFCorrupt, Versions) {
  GGUFBuilder g = full_builder();
  g.version = 1;
  const std::string m = open(g);
  EXPECT_HAS(m, "version 1");
  EXPECT_HAS(m, path);
  g.version = 4;
  EXPECT_HAS(open(g), "unsupported GGUF version 4");
  g.version = 3u << 24;
  EXPECT_HAS(open(g), "big-endian");
}

TEST_F(GGUFCorrupt, AbsurdCounts) {
  GGUFBuilder g = full_builder();
  g.tensor_count_override = 1ull << 60;
  EXPECT_HAS(open(g), "tensor count");
  EXPECT_HAS(open(g), "exceeds");
  g.tensor_count_override = 1000;  // passes the first cheap bound, fails once the kvs are read
  EXPECT_HAS(open(g), "exceeds");
  g.tensor_count_override.reset();
  g.kv_count_override = ~0ull;
  EXPECT_HAS(open(g), "kv count");
  g.kv_count_override = 25;  // a few more than present: runs off the metadata into tensor infos
  EXPECT_NE(open(g), "<no error>");
}

TEST_F(GGUFCorrupt, AbsurdStringAndArrayLengths) {
  GGUFBuilder g;
  Bytes huge_str;
  GGUFBuilder::put<uint64_t>(huge_str, 1ull << 62);
  g.kv_raw("s", STRING, huge_str);
  EXPECT_HAS(open(g), "string length");
  EXPECT_HAS(open(g), "exceeds");

  Bytes raw = {'G', 'G', 'U', 'F'};  // one kv whose key length is absurd
  GGUFBuilder::put<uint32_t>(raw, 3);
  GGUFBuilder::put<uint64_t>(raw, 0);
  GGUFBuilder::put<uint64_t>(raw, 1);
  GGUFBuilder::put<uint64_t>(raw, ~0ull);
  raw.resize(64, 0);
  EXPECT_HAS(open(raw), "string length");

  for (uint32_t elem : {U8, I32, F64, STRING}) {
    GGUFBuilder a;
    Bytes arr;
    GGUFBuilder::put<uint32_t>(arr, elem);
    GGUFBuilder::put<uint64_t>(arr, 1ull << 61);
    a.kv_raw("arr", ARRAY, arr);
    EXPECT_HAS(open(a), "array length");
  }
}

TEST_F(GGUFCorrupt, BadValueTypes) {
  GGUFBuilder g;
  g.kv_raw("x", 99, {0, 0, 0, 0});
  EXPECT_HAS(open(g), "unknown value type 99");

  GGUFBuilder nested;
  Bytes arr;
  GGUFBuilder::put<uint32_t>(arr, ARRAY);
  GGUFBuilder::put<uint64_t>(arr, 1);
  nested.kv_raw("nested", ARRAY, arr);
  EXPECT_HAS(open(nested), "array of arrays");

  GGUFBuilder dup;
  dup.kv_u32("k", 1).kv_u32("k", 2);
  EXPECT_HAS(open(dup), "duplicate metadata key 'k'");
}

TEST_F(GGUFCorrupt, Alignment) {
  GGUFBuilder g;
  g.kv_u32("general.alignment", 48).tensor("a", {1}, 0, f32_bytes({1}));
  EXPECT_HAS(open(g), "alignment");
  GGUFBuilder z;
  z.kv_u32("general.alignment", 0);
  EXPECT_HAS(open(z), "alignment");
  GGUFBuilder s;
  s.kv_str("general.alignment", "32");
  EXPECT_HAS(open(s), "alignment");

  GGUFBuilder off = full_builder();
  off.tensors[1].offset = 33;
  const std::string m = open(off);
  EXPECT_HAS(m, "alignment");
  EXPECT_HAS(m, "'f16'");
}

TEST_F(GGUFCorrupt, DataPastEnd) {
  Bytes b = full_builder().build();
  b.pop_back();
  const std::string m = open(b);
  EXPECT_HAS(m, "exceeds file size");
  EXPECT_HAS(m, "q4_1");

  GGUFBuilder g = full_builder();
  g.tensors[0].offset = 1ull << 63;  // aligned, but far outside; also must not overflow
  EXPECT_HAS(open(g), "exceeds file size");
  g.tensors[0].offset = ~0ull << 5;
  EXPECT_HAS(open(g), "exceeds file size");
}

TEST_F(GGUFCorrupt, Overlap) {
  GGUFBuilder g;
  g.tensor("a", {16}, 0, pattern(64, 1)).tensor("b", {8}, 0, pattern(32, 2));
  g.tensors[1].offset = 32;  // a is [0, 64)
  const std::string m = open(g);
  EXPECT_HAS(m, "overlaps");
  EXPECT_HAS(m, "'a'");
}

TEST_F(GGUFCorrupt, DuplicateTensorName) {
  GGUFBuilder g;
  g.tensor("w", {1}, 0, f32_bytes({1})).tensor("w", {1}, 0, f32_bytes({2}));
  EXPECT_HAS(open(g), "duplicate tensor name 'w'");
}

TEST_F(GGUFCorrupt, UnknownType) {
  GGUFBuilder g;
  g.tensor("weird", {4}, 77, pattern(16, 0));
  const std::string m = open(g);
  EXPECT_HAS(m, "'weird'");
  EXPECT_HAS(m, "unknown ggml type id 77");
  g.tensors[0].type = 4;  // Q4_2, removed from ggml long ago
  EXPECT_HAS(open(g), "Q4_2");
}

TEST_F(GGUFCorrupt, BadDims) {
  for (int64_t bad : {int64_t(0), int64_t(-3)}) {
    GGUFBuilder g;
    g.tensor("t", {4, bad}, 0, pattern(16, 0));
    EXPECT_HAS(open(g), "must be positive");
  }
  GGUFBuilder big;
  big.tensor("t", {1ll << 40, 1ll << 40}, 0, pattern(4, 0));
  EXPECT_HAS(open(big), "overflows");
  GGUFBuilder big_bytes;  // element count fits, byte count does not
  big_bytes.tensor("t", {1ll << 31, 1ll << 31}, 0, pattern(4, 0));
  EXPECT_HAS(open(big_bytes), "overflows");
  GGUFBuilder huge;  // fits in memory arithmetic, not in the file
  huge.tensor("t", {1ll << 20, 1ll << 20}, 0, pattern(4, 0));
  EXPECT_HAS(open(huge), "exceeds file size");

  GGUFBuilder dims;
  dims.tensor("t", {1, 1, 1, 1, 1}, 0, pattern(4, 0));
  EXPECT_HAS(open(dims), "n_dims 5");
  GGUFBuilder zero;
  zero.tensor("t", {}, 0, pattern(4, 0));
  EXPECT_HAS(open(zero), "n_dims 0");

  GGUFBuilder block;
  block.tensor("q", {48}, 8, pattern(68, 0));
  const std::string m = open(block);
  EXPECT_HAS(m, "not a multiple of the Q8_0 block size 32");
  EXPECT_HAS(m, "'q'");
}

// Every prefix of a valid file is invalid; each must be rejected cleanly.
TEST_F(GGUFCorrupt, EveryTruncation) {
  const Bytes full = full_builder().build();
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string m = open(Bytes(full.begin(), full.begin() + n));
    EXPECT_NE(m, "<no error>") << "prefix of " << n << " bytes was accepted";
  }
}

// Random byte flips: the reader may accept the file or throw skv::Error, but nothing else.
TEST_F(GGUFCorrupt, RandomFlips) {
  const Bytes full = full_builder().build();
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 600; ++iter) {
    Bytes b = full;
    const int flips = 1 + iter % 4;
    for (int k = 0; k < flips; ++k) {
      // Favour the header and metadata, where the structure is.
      const size_t limit = iter % 2 ? b.size() : std::min<size_t>(b.size(), 600);
      b[rng() % limit] = static_cast<uint8_t>(rng());
    }
    write_file(path, b);
    try {
      GGUFFile f(path);
      for (const auto& info : f.tensor_infos()) {
        try {
          skv::Tensor t = f.tensor(info.name);
          volatile uint8_t sink = static_cast<const uint8_t*>(t.data)[t.nbytes() - 1];
          (void)sink;
        } catch (const skv::Error&) {
        }
      }
    } catch (const skv::Error&) {
    }
  }
}

// ---- the real model, when it has been fetched ----

TEST(GGUFRealModel, SmolLM2) {
  const std::string path = models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present (run scripts/fetch_model.sh)";
  GGUFFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  ASSERT_EQ(f.tensor_infos().size(), 272u);
  for (const auto& info : f.tensor_infos()) {
    skv::Tensor t = f.tensor(info.name);
    if (info.name == "token_embd.weight") {
      EXPECT_EQ(t.dtype, skv::DType::Q8_0);
      EXPECT_EQ(t.shape, (std::vector<int64_t>{49152, 576}));
    } else {
      EXPECT_TRUE(t.dtype == skv::DType::Q4_1 || t.dtype == skv::DType::F32) << info.name;
    }
    EXPECT_EQ(t.nbytes(), info.nbytes) << info.name;
  }
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").shape, (std::vector<int64_t>{192, 576}));
}
