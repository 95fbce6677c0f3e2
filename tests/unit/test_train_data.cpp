// Distillation training data (src/train/data.h, src/train/decontam.h): the file formats and
// their errors, packing invariants, the seeded loader's order, resume and rank split, and
// decontamination against a small evaluation directory written by the test. The tokenizer is
// the tiny fixture model's (512 tokens, no BOS added, EOS </s> = 2).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"
#include "train/decontam.h"

namespace skv::train {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

const std::string kModel = std::string(SKV_SOURCE_DIR) + "/tests/fixtures/models/llama_gqa";
const std::string kTemplate =
    std::string(SKV_SOURCE_DIR) + "/tests/fixtures/chat_templates/smollm2-135m-instruct.jinja";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scratch directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        fs::temp_directory_path() / (std::string("skv_train_data_") + info->name() + "_" + std::to_string(getpid()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    fs::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name, std::ios::binary) << content;
    return (path_ / name).string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

class TrainData : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = tokenizer::Tokenizer::from_path(kModel).release(); }
  static void TearDownTestSuite() { delete tok_; }
  LoadOptions options() const {
    LoadOptions o;
    o.chat_template = read(kTemplate);
    return o;
  }
  // Expects loading `content` (as file `name`) to fail with an error containing each needle.
  void expect_error(const std::string& name, const std::string& content, const std::vector<std::string>& needles) {
    TempDir dir;
    const std::string path = dir.write(name, content);
    try {
      load_documents({path}, tok_, options());
      ADD_FAILURE() << "no error for " << name << ": " << content;
    } catch (const Error& e) {
      for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  }
  static tokenizer::Tokenizer* tok_;
};
tokenizer::Tokenizer* TrainData::tok_ = nullptr;

TEST_F(TrainData, ReadsEveryFormat) {
  ASSERT_FALSE(tok_->adds_bos());
  ASSERT_EQ(tok_->eos_id(), 2);
  TempDir dir;
  const std::string txt = dir.write("book.txt", "Once upon a time.\nThe end.\n");
  const nlohmann::json messages = {{{"role", "user"}, {"content", "hi"}},
                                   {{"role", "assistant"}, {"content", "hello"}}};
  const std::string jsonl = dir.write("mix.jsonl", nlohmann::json{{"text", "plain <|im_end|> text"}}.dump() + "\n\n" +
                                                       nlohmann::json{{"messages", messages}}.dump() + "\n" +
                                                       nlohmann::json{{"token_ids", {5, 6, 7}}, {"id", 3}}.dump());
  LoadStats stats;
  std::vector<Document> docs = load_documents({txt, jsonl}, tok_, options(), &stats);
  ASSERT_EQ(docs.size(), 4u);

  Ids book = tok_->encode("Once upon a time.\nThe end.\n", true, false);
  book.push_back(2);
  EXPECT_EQ(docs[0].ids, book);
  EXPECT_EQ(docs[0].source, txt);

  // Plain text keeps special-token strings as text.
  Ids plain = tok_->encode("plain <|im_end|> text", true, false);
  plain.push_back(2);
  EXPECT_EQ(docs[1].ids, plain);
  EXPECT_EQ(docs[1].source, jsonl + ":1");

  // Chat: the template's own rendering, no generation prompt, no EOS appended.
  const std::string rendered = tokenizer::apply_chat_template_json(read(kTemplate), messages, false, "<s>", "</s>");
  EXPECT_TRUE(rendered.ends_with("<|im_start|>assistant\nhello<|im_end|>\n")) << rendered;
  EXPECT_EQ(docs[2].ids, tok_->encode(rendered, false, true));
  EXPECT_EQ(docs[2].source, jsonl + ":3");  // the blank line 2 is skipped but counted

  EXPECT_EQ(docs[3].ids, (Ids{5, 6, 7}));  // used as given; other keys ignored
  EXPECT_EQ(docs[3].source, jsonl + ":4");

  EXPECT_EQ(stats.files, 2);
  EXPECT_EQ(stats.documents, 4);
  EXPECT_EQ(stats.tokens, count_tokens(docs));
  EXPECT_EQ(stats.dropped_documents, 0);
}

TEST_F(TrainData, BadInputNamesFileAndLine) {
  const std::string ok = R"({"text": "fine"})"
                         "\n";
  expect_error("a.jsonl", ok + "{not json\n", {"a.jsonl:2", "invalid JSON"});
  expect_error("a.jsonl", ok + ok + R"({"prompt": "x"})", {"a.jsonl:3", "no text, messages or token_ids"});
  expect_error("a.jsonl", R"({"text": "x", "token_ids": [1]})", {"a.jsonl:1", "several keys"});
  expect_error("a.jsonl", R"({"text": ""})", {"a.jsonl:1", "empty text"});
  expect_error("a.jsonl", R"({"text": "  \n "})", {"a.jsonl:1", "empty text"});
  expect_error("a.jsonl", R"({"text": 5})", {"a.jsonl:1", "text must be a string"});
  expect_error("a.jsonl", "[1, 2]", {"a.jsonl:1", "JSON object"});
  expect_error("a.jsonl", ok + R"({"token_ids": [1, 512]})", {"a.jsonl:2", "512", "out of range", "512"});
  expect_error("a.jsonl", R"({"token_ids": [-1]})", {"a.jsonl:1", "-1", "out of range"});
  expect_error("a.jsonl", R"({"token_ids": [1, 2.5]})", {"a.jsonl:1", "not an integer", "2.5"});
  expect_error("a.jsonl", R"({"token_ids": ["3"]})", {"a.jsonl:1", "not an integer"});
  expect_error("a.jsonl", R"({"token_ids": []})", {"a.jsonl:1", "empty token_ids"});
  expect_error("a.jsonl", R"({"messages": []})", {"a.jsonl:1", "messages must be a non-empty list"});
  expect_error("a.jsonl", R"({"messages": [{"role": "user"}]})", {"a.jsonl:1", "messages[0]"});
  expect_error("a.txt", "", {"a.txt", "empty text"});
  expect_error("a.csv", "text\n", {"a.csv", "unknown extension '.csv'"});
  try {
    load_documents({"/nonexistent/dir/x.jsonl"}, tok_, options());
    ADD_FAILURE() << "no error for a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.jsonl"), std::string::npos) << e.what();
  }
  TempDir dir;
  fs::create_directories(dir.path() + "/d.txt");
  EXPECT_THROW(load_documents({dir.path() + "/d.txt"}, tok_, options()), Error);
  EXPECT_THROW(load_documents({}, tok_, options()), Error);
}

TEST_F(TrainData, ModelVocabularyBoundsTokenIds) {
  TempDir dir;
  const std::string path = dir.write("ids.jsonl", R"({"token_ids": [99, 100]})");
  LoadOptions o;
  o.vocab_size = 100;
  EXPECT_THROW(load_documents({path}, tok_, o), Error);
  o.vocab_size = 101;
  EXPECT_EQ(load_documents({path}, nullptr, o).at(0).ids, (Ids{99, 100}));
}

std::vector<Document> synthetic_docs(const std::vector<int>& lengths) {
  std::vector<Document> docs;
  int32_t next = 0;
  for (int n : lengths) {
    Document d;
    for (int i = 0; i < n; ++i) d.ids.push_back(next++);
    docs.push_back(std::move(d));
  }
  return docs;
}

TEST(TrainPacking, EveryTokenOnceWithPerDocumentPositions) {
  const int64_t max_len = 16;
  const std::vector<int> lengths = {5, 7, 3, 16, 1, 40, 9, 9, 2, 33, 15};
  std::vector<Document> docs = synthetic_docs(lengths);
  std::vector<PackedSequence> seqs = pack_documents(docs, max_len);
  EXPECT_EQ(count_tokens(seqs), count_tokens(docs));

  // Concatenated, the sequences are the documents in order (ids were numbered 0, 1, 2, ...).
  int32_t expect = 0;
  std::vector<int64_t> pieces;  // lengths of the documents as packed
  for (const auto& s : seqs) {
    ASSERT_GT(s.size(), 0);
    ASSERT_LE(s.size(), max_len);
    ASSERT_EQ(s.positions.size(), s.ids.size());
    ASSERT_EQ(s.doc_start.size(), s.ids.size());
    for (int64_t i = 0; i < s.size(); ++i) {
      EXPECT_EQ(s.ids[i], expect++);
      EXPECT_EQ(s.positions[i], i - s.doc_start[i]);
      if (i == 0 || s.doc_start[i] != s.doc_start[i - 1]) {
        EXPECT_EQ(s.doc_start[i], i);
        pieces.push_back(1);
      } else {
        ++pieces.back();
      }
    }
  }
  EXPECT_EQ(expect, count_tokens(docs));
  // A 40-token document becomes 16 + 16 + 8, a 33-token one 16 + 16 + 1; the rest stay whole.
  EXPECT_EQ(pieces, (std::vector<int64_t>{5, 7, 3, 16, 1, 16, 16, 8, 9, 9, 2, 16, 16, 1, 15}));
  // Next-fit: 5 + 7 + 3 share a sequence; 16 alone; 1 then the 40-token pieces start new ones.
  std::vector<int64_t> sizes;
  for (const auto& s : seqs) sizes.push_back(s.size());
  EXPECT_EQ(sizes, (std::vector<int64_t>{15, 16, 1, 16, 16, 8, 9, 11, 16, 16, 16}));

  EXPECT_THROW(pack_documents(docs, 0), Error);
  EXPECT_TRUE(pack_documents({}, 8).empty());
}

TEST(TrainRandom, MatchesReferenceValues) {
  // splitmix64's first output from state 0, and xoshiro256** from a splitmix64-seeded state,
  // computed by a separate Python transcription of Vigna's reference code.
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafULL);
  Xoshiro256 x(42);
  EXPECT_EQ(x.next(), 0xbe15272cdf80b6c2ULL);
  EXPECT_EQ(x.next(), 0xaf6e2ee49ff5d0e3ULL);
  EXPECT_EQ(x.next(), 0xca56edd0338a318fULL);
  DataLoader loader(pack_documents(synthetic_docs(std::vector<int>(10, 4)), 4), 7);
  EXPECT_EQ(loader.permutation(0), (std::vector<int64_t>{9, 4, 5, 8, 7, 2, 6, 3, 1, 0}));
  EXPECT_EQ(loader.permutation(1), (std::vector<int64_t>{2, 7, 4, 1, 0, 9, 6, 8, 5, 3}));
  Xoshiro256 y(1);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(y.below(7), 7u);
}

// n sequences of one document each, 1 to 13 tokens long.
std::vector<PackedSequence> some_sequences(int n) {
  std::vector<PackedSequence> out;
  for (int i = 0; i < n; ++i) {
    PackedSequence s;
    for (int j = 0; j <= (i * 7) % 13; ++j) {
      s.ids.push_back(i * 20 + j);
      s.positions.push_back(j);
      s.doc_start.push_back(0);
    }
    out.push_back(std::move(s));
  }
  return out;
}

TEST(TrainLoader, DeterministicEpochsAndCursor) {
  auto seqs = some_sequences(23);
  ASSERT_EQ(seqs.size(), 23u);
  DataLoader a(seqs, 5), b(seqs, 5), c(seqs, 6);
  std::vector<int64_t> stream;
  for (int step = 0; step < 10; ++step) {
    Batch ba = a.next_batch(5), bb = b.next_batch(5);
    EXPECT_EQ(ba.indices, bb.indices);
    ASSERT_EQ(ba.sequences.size(), 5u);
    for (size_t i = 0; i < ba.indices.size(); ++i) EXPECT_EQ(ba.sequences[i], &a.sequences()[ba.indices[i]]);
    stream.insert(stream.end(), ba.indices.begin(), ba.indices.end());
  }
  EXPECT_NE(a.permutation(0), c.permutation(0));
  EXPECT_NE(a.permutation(0), a.permutation(1));
  // The stream is epoch 0's permutation, then epoch 1's, ... (a step runs across the boundary).
  std::vector<int64_t> expect;
  for (int e = 0; e < 3; ++e) {
    auto p = a.permutation(e);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 23; ++i) ASSERT_EQ(sorted[i], i);
    expect.insert(expect.end(), p.begin(), p.end());
  }
  expect.resize(50);
  EXPECT_EQ(stream, expect);
  EXPECT_EQ(a.cursor(), (Cursor{2, 4}));
}

TEST(TrainLoader, SaveAndRestoreCursor) {
  auto seqs = some_sequences(17);
  DataLoader a(seqs, 11);
  for (int step = 0; step < 7; ++step) a.next_batch(4);
  const std::string saved = a.to_json().dump();
  std::vector<std::vector<int64_t>> rest;
  for (int step = 0; step < 9; ++step) rest.push_back(a.next_batch(4).indices);

  DataLoader b(seqs, 11);
  b.from_json(nlohmann::json::parse(saved));
  EXPECT_EQ(b.cursor(), (Cursor{1, 11}));
  for (int step = 0; step < 9; ++step) EXPECT_EQ(b.next_batch(4).indices, rest[step]) << step;

  // Another seed or other data is refused.
  DataLoader other_seed(seqs, 12);
  EXPECT_THROW(other_seed.from_json(nlohmann::json::parse(saved)), Error);
  auto changed = seqs;
  changed[3].ids[0] += 1;
  DataLoader other_data(changed, 11);
  EXPECT_THROW(other_data.from_json(nlohmann::json::parse(saved)), Error);
  DataLoader fewer(some_sequences(16), 11);
  EXPECT_THROW(fewer.from_json(nlohmann::json::parse(saved)), Error);
  auto bad = nlohmann::json::parse(saved);
  bad["index"] = 17;
  EXPECT_THROW(b.from_json(bad), Error);
  bad.erase("index");
  EXPECT_THROW(b.from_json(bad), Error);
  EXPECT_THROW(b.from_json(nlohmann::json::parse("[1]")), Error);
}

TEST(TrainLoader, RanksSplitTheGlobalBatch) {
  auto seqs = some_sequences(29);
  const int64_t global = 12;
  DataLoader single(seqs, 3);
  std::vector<std::vector<int64_t>> reference;
  for (int step = 0; step < 8; ++step) reference.push_back(single.next_batch(global).indices);
  for (int world : {2, 3, 4, 5, 12}) {
    std::vector<DataLoader> ranks;
    for (int r = 0; r < world; ++r) ranks.emplace_back(seqs, 3);
    for (int step = 0; step < 8; ++step) {
      std::vector<int64_t> merged(global, -1);
      for (int r = 0; r < world; ++r) {
        Batch b = ranks[r].next_batch(global, r, world);
        for (size_t k = 0; k < b.indices.size(); ++k) merged.at(r + k * world) = b.indices[k];
      }
      EXPECT_EQ(merged, reference[step]) << "world " << world << " step " << step;
    }
    for (int r = 0; r < world; ++r) EXPECT_EQ(ranks[r].cursor(), single.cursor());
  }
  DataLoader l(seqs, 3);
  EXPECT_THROW(l.next_batch(4, 2, 2), Error);
  EXPECT_THROW(l.next_batch(0), Error);
  DataLoader empty({}, 1);
  EXPECT_THROW(empty.next_batch(1), Error);
}

// A small evaluation directory in the layout of ../shared/data.
class TrainDecontam : public TrainData {
 protected:
  void SetUp() override {
    // ARC: a 15-word question (13-grams) and a 10-word one (a short sequence: "Question:" is
    // the prompt's label, not the item's words).
    eval_.write(
        "arc/ARC-Easy-Test.jsonl",
        nlohmann::json{{"question",
                        {{"stem",
                          "Which property of a mineral can be determined just by looking at it "
                          "under bright light?"},
                         {"choices", {{{"text", "luster"}, {"label", "A"}}, {{"text", "mass"}, {"label", "B"}}}}}},
                       {"answerKey", "A"}}
                .dump() +
            "\n" +
            nlohmann::json{{"question",
                            {{"stem", "Why do owls hunt mostly at night in dense forests?"},
                             {"choices", {{{"text", "x"}, {"label", "A"}}, {{"text", "y"}, {"label", "B"}}}}}},
                           {"answerKey", "B"}}
                .dump() +
            "\n");
    // PIQA: a goal under 8 words is ignored; its 9-word solution counts.
    eval_.write("piqa/valid_labeled.jsonl", nlohmann::json{{"goal", "how to boil an egg"},
                                                           {"sol1", "put the egg in cold water and heat it slowly"},
                                                           {"sol2", "fry it"},
                                                           {"label", 0}}
                                                    .dump() +
                                                "\n");
  }
  TempDir eval_;
};

TEST_F(TrainDecontam, DropsDocumentsHoldingAnEvaluationItem) {
  Decontaminator d = Decontaminator::from_eval_dir(eval_.path());
  EXPECT_EQ(d.tasks(), (std::vector<std::string>{"arc_easy", "piqa"}));
  EXPECT_EQ(d.items(), 3);
  // Case, punctuation and line breaks do not hide a 13-gram.
  EXPECT_TRUE(
      d.contaminated("Notes. WHICH property of a mineral -- can be determined just by\nlooking at it, "
                     "under bright light? Luster."));
  EXPECT_TRUE(d.contaminated("owls: why do owls hunt mostly at night in dense forests"));
  EXPECT_TRUE(d.contaminated("Put the egg in cold water, and heat it slowly."));
  EXPECT_FALSE(d.contaminated("How to boil an egg: ask someone else."));  // 5-word goal: ignored
  EXPECT_FALSE(d.contaminated("Which property of a mineral can be determined by weighing it?"));
  EXPECT_FALSE(d.contaminated("do owls hunt mostly at night in dense forests"));  // 9 of the 10 words
  EXPECT_FALSE(d.contaminated(""));

  TempDir dir;
  const std::string path = dir.write(
      "train.jsonl",
      nlohmann::json{{"text",
                      "The miner asked: which property of a mineral can be "
                      "determined just by looking at it under bright light?"}}
              .dump() +
          "\n" + nlohmann::json{{"text", "A mineral is a naturally occurring solid."}}.dump() + "\n" +
          nlohmann::json{{"messages",
                          {{{"role", "user"}, {"content", "How do I cook an egg?"}},
                           {{"role", "assistant"}, {"content", "Put the egg in cold water and heat it slowly."}}}}}
              .dump() +
          "\n" +
          nlohmann::json{{"token_ids", tok_->encode(" why do owls hunt mostly at night in "
                                                    "dense forests",
                                                    false, false)}}
              .dump() +
          "\n");
  LoadOptions o = options();
  o.decontaminator = &d;
  LoadStats stats;
  std::vector<Document> docs = load_documents({path}, tok_, o, &stats);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].source, path + ":2");
  EXPECT_EQ(stats.documents, 1);
  EXPECT_EQ(stats.dropped_documents, 3);
  EXPECT_EQ(stats.dropped_sources, (std::vector<std::string>{path + ":1", path + ":3", path + ":4"}));
}

TEST(TrainDecontamWords, SplitAndLowercase) {
  EXPECT_EQ(ngram_words("Hello, World! it's 2024-x café"),
            (std::vector<std::string>{"hello", "world", "it", "s", "2024", "x", "café"}));
  EXPECT_THROW(Decontaminator::from_eval_dir("/nonexistent/eval/dir"), Error);
}

// On the shared data (skipped without it): every task loads, a real ARC question is caught,
// and checking a few MB of prose takes well under a second.
TEST(TrainDecontamShared, RealEvaluationData) {
  std::string data = std::string(SKV_SOURCE_DIR) + "/../shared/data";
  if (const char* env = std::getenv("SKV_DATA"); env && *env) data = env;
  if (!fs::is_directory(data + "/arc") || !fs::exists(data + "/prose/gutenberg_bodies.txt"))
    GTEST_SKIP() << "no shared data at " << data;
  const auto t_build = std::chrono::steady_clock::now();
  Decontaminator d = Decontaminator::from_eval_dir(data);
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_build).count();
  std::printf("%lld n-grams from %lld items of %zu tasks in %.2f s\n", (long long)d.size(), (long long)d.items(),
              d.tasks().size(), build_s);
  EXPECT_EQ(d.tasks().size(), 10u);
  EXPECT_GT(d.size(), 100000);
  EXPECT_TRUE(d.contaminated("Which statement best explains why photosynthesis is the foundation of most food webs?"));
  const std::string prose = read(data + "/prose/gutenberg_bodies.txt");
  const auto t0 = std::chrono::steady_clock::now();
  size_t dropped = 0, chunks = 0;
  for (size_t pos = 0; pos < prose.size(); pos += 4096, ++chunks) dropped += d.contaminated(prose.substr(pos, 4096));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("decontaminated %zu bytes of prose in %.3f s: %zu of %zu 4 KiB chunks match\n", prose.size(), s, dropped,
              chunks);
  EXPECT_LT(dropped, chunks / 10);
}

}  // namespace
}  // namespace skv::train
