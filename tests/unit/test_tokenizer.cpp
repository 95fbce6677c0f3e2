// Tokenizer unit tests on the committed fixtures (tests/fixtures/tokenizer/, trained by
// scripts/make_tokenizer_fixtures.py). The expected ids below were produced once with Hugging
// Face `tokenizers` (Tokenizer.from_file(...).encode(...).ids), not by swiftkv, and pasted here;
// tests/oracle/test_tokenizer_oracle.py does the large-scale comparison.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace fs = std::filesystem;
using nlohmann::json;
using skv::tokenizer::Tokenizer;
using Ids = std::vector<int32_t>;

namespace {

std::string fixture(const std::string& name) {
  return std::string(SKV_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name;
}

json load_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

// A scratch directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / (std::string("skv_tok_") + info->name() + "_" + std::to_string(::getpid()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
    return (path_ / name).string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// Expects loading `content` as tokenizer.json to throw skv::Error mentioning `needle`.
void expect_load_error(const json& content, const std::string& needle) {
  TempDir dir;
  const std::string path = dir.write("tokenizer.json", content.dump());
  try {
    Tokenizer::from_tokenizer_json(path);
    FAIL() << "no error for a tokenizer.json that should mention '" << needle << "'";
  } catch (const skv::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Minimal GGUF v3 writer for metadata-only files (no tensors).
class GGUFWriter {
 public:
  void u32(const std::string& k, uint32_t v) {
    key(k, 4), put(v);
    ++n_;
  }
  void boolean(const std::string& k, bool v) {
    key(k, 7), put<uint8_t>(v);
    ++n_;
  }
  void str(const std::string& k, const std::string& v) {
    key(k, 8), put_str(v);
    ++n_;
  }
  void strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9), put<uint32_t>(8), put<uint64_t>(v.size());
    for (const auto& s : v) put_str(s);
    ++n_;
  }
  void i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, 9), put<uint32_t>(5), put<uint64_t>(v.size());
    for (int32_t x : v) put(x);
    ++n_;
  }
  std::string bytes() const {
    std::string head = "GGUF";
    const auto raw = [&](auto v) { head.append(reinterpret_cast<const char*>(&v), sizeof v); };
    raw(uint32_t{3}), raw(uint64_t{0}), raw(uint64_t{n_});
    return head + body_;
  }

 private:
  template <class T>
  void put(T v) {
    body_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_str(const std::string& s) { put<uint64_t>(s.size()), body_ += s; }
  void key(const std::string& k, uint32_t type) { put_str(k), put(type); }
  std::string body_;
  uint64_t n_ = 0;
};

// GGUF metadata equivalent to gpt2_style.json (vocab, merges, <|endoftext|> as control token).
GGUFWriter gguf_from_gpt2_fixture(const std::string& pre) {
  const json j = load_json(fixture("gpt2_style.json"));
  std::vector<std::string> tokens(j["model"]["vocab"].size());
  for (const auto& [tok, id] : j["model"]["vocab"].items()) tokens.at(id.get<size_t>()) = tok;
  std::vector<int32_t> types(tokens.size(), 1);
  types[0] = 3;  // <|endoftext|>
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"]) merges.push_back(m.get<std::string>());
  GGUFWriter w;
  w.str("general.architecture", "llama");
  w.str("tokenizer.ggml.model", "gpt2");
  w.str("tokenizer.ggml.pre", pre);
  w.strs("tokenizer.ggml.tokens", tokens);
  w.i32s("tokenizer.ggml.token_type", types);
  w.strs("tokenizer.ggml.merges", merges);
  w.u32("tokenizer.ggml.bos_token_id", 0);
  w.u32("tokenizer.ggml.eos_token_id", 0);
  w.str("tokenizer.chat_template", "{{ messages }}");
  return w;
}

}  // namespace

TEST(Tokenizer, Llama3StyleKnownEncodings) {
  auto tok = Tokenizer::from_path(fixture("llama3_style.json"));
  EXPECT_EQ(tok->encode("Hello world! I'm you'LL 1234567890"),
            (Ids{0, 46, 445, 85, 992, 7, 306, 1242, 317, 13, 50, 50, 227, 23, 24, 25, 26, 27, 28, 29, 30, 31, 22}));
  EXPECT_EQ(tok->encode("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"),
            (Ids{0, 2, 430, 275, 3, 205, 205, 78, 79, 4}));
  EXPECT_EQ(tok->encode("  trailing \t\n\n x  ", false), (Ids{227, 1720, 2516, 227, 204, 205, 205, 227, 94, 299}));
  // parse_special=false: the special token is spelled out as ordinary text.
  EXPECT_EQ(tok->encode("<|eot_id|>x", false, false), (Ids{34, 98, 75, 311, 69, 326, 98, 36, 94}));
  EXPECT_EQ(tok->encode("", true), (Ids{0}));
  EXPECT_TRUE(tok->encode("", false).empty());
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->eos_id(), 1);  // no tokenizer_config.json: falls back to <|end_of_text|>
  EXPECT_TRUE(tok->is_special(4));
  EXPECT_FALSE(tok->is_special(46));
  EXPECT_EQ(tok->token_id("<|eot_id|>"), 4);
  EXPECT_EQ(tok->token_text(992), "Ġworld");
  EXPECT_EQ(tok->token_bytes(992), " world");
  EXPECT_EQ(tok->vocab_size(), 3001);
}

TEST(Tokenizer, Gpt2StyleKnownEncodings) {
  // This fixture stores merges as "a b" strings; llama3_style.json uses [a, b] pairs.
  auto tok = Tokenizer::from_path(fixture("gpt2_style.json"));
  EXPECT_EQ(tok->encode("Hello, world!\n\n  x"), (Ids{40, 435, 79, 12, 977, 1, 199, 199, 221, 221, 88}));
  // [MASK] has lstrip (takes the two spaces); xyzzy is single_word (not matched inside "axyzzy").
  EXPECT_EQ(tok->encode("a  [MASK] b xyzzy axyzzy"), (Ids{65, 2000, 270, 221, 2001, 259, 88, 89, 90, 90, 89}));
  EXPECT_EQ(tok->encode("Ünïcödé 日本 😀"), (Ids{128, 251, 78, 128, 108, 67,  128, 115, 68,  128, 103, 221,
                                                163, 246, 99, 163, 251, 106, 221, 173, 254, 247, 223}));
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_FALSE(tok->adds_bos());
}

TEST(Tokenizer, DecodeRoundTripAndSkipSpecial) {
  auto tok = Tokenizer::from_path(fixture("llama3_style.json"));
  for (std::string s : {"Hello world", "  x\n\n\ty ", "日本語 👨‍👩‍👧 e\u0301", "1,000,000 and 3.14"})
    EXPECT_EQ(tok->decode(tok->encode(s, false)), s);
  const Ids ids = tok->encode("<|start_header_id|>hi<|eot_id|>", true);
  EXPECT_EQ(tok->decode(ids), "<|begin_of_text|><|start_header_id|>hi<|eot_id|>");
  EXPECT_EQ(tok->decode(ids, true), "hi");
  EXPECT_THROW(tok->decode({999999}), skv::Error);
}

TEST(Tokenizer, DecodeKeepsPartialUtf8) {
  auto tok = Tokenizer::from_path(fixture("gpt2_style.json"));
  // 😀 is four byte-level tokens: F0 9F 98 80. Half of it decodes to the raw bytes.
  EXPECT_EQ(tok->decode({173, 254}), "\xF0\x9F");
  EXPECT_FALSE(skv::tokenizer::utf8::is_valid(tok->decode({173, 254})));
}

TEST(StreamDecoder, HoldsSplitCharacterUntilComplete) {
  auto tok = Tokenizer::from_path(fixture("gpt2_style.json"));
  // "😀👍🏽 é": every emoji is split over several byte tokens (HF ids).
  const Ids ids = {173, 254, 247, 223, 173, 254, 240, 236, 173, 254, 238, 122, 221, 128, 103};
  skv::tokenizer::StreamDecoder dec(*tok);
  std::vector<std::string> parts;
  for (int32_t id : ids) parts.push_back(dec.push(id));
  EXPECT_EQ(parts[0], "");
  EXPECT_EQ(parts[2], "");
  EXPECT_EQ(parts[3], "😀");
  EXPECT_EQ(parts[7], "👍");
  EXPECT_EQ(parts[11], "🏽");
  EXPECT_EQ(parts[14], "é");
  std::string all;
  for (const auto& p : parts) {
    EXPECT_TRUE(skv::tokenizer::utf8::is_valid(p));
    all += p;
  }
  EXPECT_EQ(all + dec.flush(), "😀👍🏽 é");
}

TEST(StreamDecoder, FlushReplacesIncompleteAndSkipsSpecial) {
  auto tok = Tokenizer::from_path(fixture("gpt2_style.json"));
  skv::tokenizer::StreamDecoder dec(*tok);
  EXPECT_EQ(dec.push(65), "a");
  EXPECT_EQ(dec.push(173), "");  // lead byte of a 4-byte character
  EXPECT_EQ(dec.push(0), "");    // <|endoftext|> is special: skipped by default
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.flush(), "");
  // A byte that can never start a character is replaced at once, not held.
  const auto bad = tok->token_id("Ģ");  // byte-level spelling of 0x80 (a lone continuation byte)
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(dec.push(*bad), "\xEF\xBF\xBD");
  skv::tokenizer::StreamDecoder keep(*tok, false);
  EXPECT_EQ(keep.push(0), "<|endoftext|>");
}

TEST(Tokenizer, ModelDirectoryUsesTokenizerConfig) {
  TempDir dir;
  fs::copy_file(fixture("llama3_style.json"), fs::path(dir.path()) / "tokenizer.json");
  dir.write("tokenizer_config.json", json{{"bos_token", {{"content", "<|begin_of_text|>"}}},
                                          {"eos_token", "<|eot_id|>"},
                                          {"pad_token", "<|end_of_text|>"},
                                          {"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                                                         {{"name", "default"}, {"template", "D"}}})}}
                                         .dump());
  auto tok = Tokenizer::from_path(dir.path());
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), 4);
  EXPECT_EQ(tok->pad_id(), 1);
  EXPECT_FALSE(tok->unk_id().has_value());
  EXPECT_EQ(tok->chat_template(), "D");
}

TEST(Tokenizer, BadTokenizerJsonIsAClearError) {
  json good = load_json(fixture("gpt2_style.json"));
  {
    json j = good;
    j.erase("model");
    expect_load_error(j, "model");
  }
  {
    json j = good;
    j["model"]["type"] = "Unigram";
    expect_load_error(j, "Unigram");
  }
  {
    json j = good;
    j["model"]["merges"][3] = "nospace";
    expect_load_error(j, "merges[3]");
  }
  {
    json j = good;
    j["model"]["merges"][5] = json::array({"a"});
    expect_load_error(j, "merges[5]");
  }
  {
    json j = good;
    j["model"]["merges"].push_back("zzzq zzzr");
    expect_load_error(j, "zzzq");
  }
  {
    json j = good;
    j["normalizer"] = {{"type", "NFC"}};
    expect_load_error(j, "NFC");
  }
  {
    json j = good;
    j["pre_tokenizer"] = {{"type", "Metaspace"}};
    expect_load_error(j, "Metaspace");
  }
  {
    json j = good;
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    expect_load_error(j, "(unclosed");
  }
  TempDir dir;
  EXPECT_THROW(Tokenizer::from_tokenizer_json(dir.write("bad.json", "{not json")), skv::Error);
  EXPECT_THROW(Tokenizer::from_path(dir.path() + "/missing.json"), skv::Error);
  EXPECT_THROW(Tokenizer::from_path(dir.path()), skv::Error);  // directory without tokenizer.json
}

TEST(Tokenizer, GgufMatchesTokenizerJson) {
  TempDir dir;
  const std::string path = dir.write("tok.gguf", gguf_from_gpt2_fixture("gpt2").bytes());
  auto g = Tokenizer::from_path(path);
  auto j = Tokenizer::from_path(fixture("gpt2_style.json"));
  for (std::string s : {"Hello, world!\n\n  x", "Ünïcödé 日本 😀", "I'm 12345 tokens<|endoftext|>!"})
    EXPECT_EQ(g->encode(s), j->encode(s)) << s;
  EXPECT_EQ(g->encode("<|endoftext|>", true, false), j->encode("<|endoftext|>", true, false));
  EXPECT_TRUE(g->is_special(0));
  EXPECT_EQ(g->bos_id(), 0);
  EXPECT_FALSE(g->adds_bos());  // gpt2 pre without tokenizer.ggml.add_bos_token
  EXPECT_EQ(g->chat_template(), "{{ messages }}");
  EXPECT_EQ(g->decode(g->encode("round trip ✓")), "round trip ✓");
}

TEST(Tokenizer, GgufPreTokenizerNames) {
  TempDir dir;
  // smollm splits every digit before the GPT-2 regex; gpt2 keeps digit runs together.
  auto smol = Tokenizer::from_path(dir.write("s.gguf", gguf_from_gpt2_fixture("smollm").bytes()));
  auto gpt2 = Tokenizer::from_path(dir.write("g.gguf", gguf_from_gpt2_fixture("gpt2").bytes()));
  // HF ids: ByteLevel alone gives [Ġ1, 8, 00]; Digits(individual) + ByteLevel gives [Ġ, 1, 8, 0, 0].
  EXPECT_EQ(gpt2->encode(" 1800", false), (Ids{976, 24, 1842}));
  EXPECT_EQ(smol->encode(" 1800", false), (Ids{221, 17, 24, 16, 16}));
  try {
    Tokenizer::from_path(dir.write("u.gguf", gguf_from_gpt2_fixture("nonesuch-pre").bytes()));
    FAIL() << "unknown tokenizer.ggml.pre accepted";
  } catch (const skv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nonesuch-pre"), std::string::npos) << e.what();
  }
}
