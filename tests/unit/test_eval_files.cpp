// The generic mc: file format and its errors, the --tasks list syntax, and the CSV reader MMLU
// uses.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/csv.h"
#include "eval/datasets.h"
#include "eval/mc_file.h"

namespace skv::eval {
namespace {

class McFile : public ::testing::Test {
 protected:
  std::string write(const std::string& body) {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("skv_mc_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                               std::to_string(counter_++) + ".jsonl"))
                                 .string();
    std::ofstream(path, std::ios::binary) << body;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
  }
  // The error message read_mc_file throws for `body` (empty if none).
  std::string error_of(const std::string& body, std::string* path = nullptr) {
    const std::string p = write(body);
    if (path) *path = p;
    try {
      read_mc_file(p);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::vector<std::string> paths_;
  int counter_ = 0;
};

TEST_F(McFile, ReadsItems) {
  const std::string p = write(
      "{\"context\": \"2+2=\", \"choices\": [\"4\", \"5\"], \"label\": 0}\n"
      "\n"
      "{\"context\": \"Sky:\", \"choices\": [\" blue\", \" green\", \" red\"], \"label\": 0, \"extra\": 1}\r\n");
  auto docs = read_mc_file(p);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "2+2=");
  EXPECT_EQ(docs[1].choices, (std::vector<std::string>{" blue", " green", " red"}));
  EXPECT_EQ(docs[1].gold, 0);
  Task t = mc_task(p, "");
  EXPECT_EQ(t.name, "mc:" + p);
  EXPECT_EQ(t.target_delimiter, "");
  EXPECT_TRUE(t.fewshot_docs.empty());
}

TEST_F(McFile, ErrorsNameFileAndLine) {
  const std::string good = "{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0}\n";
  struct Case {
    std::string line, why;
  } cases[] = {
      {"{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0", "invalid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {"{\"choices\": [\"b\"], \"label\": 0}", "\"context\" must be a string"},
      {"{\"context\": 3, \"choices\": [\"b\"], \"label\": 0}", "\"context\" must be a string"},
      {"{\"context\": \"a\", \"label\": 0}", "\"choices\" must be a list"},
      {"{\"context\": \"a\", \"choices\": [], \"label\": 0}", "\"choices\" is empty"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"\"], \"label\": 0}", "choice 1 is empty"},
      {"{\"context\": \"a\", \"choices\": [\"b\", 7], \"label\": 0}", "list of strings"},
      {"{\"context\": \"a\", \"choices\": [\"b\"]}", "\"label\" must be an integer"},
      {"{\"context\": \"a\", \"choices\": [\"b\"], \"label\": \"0\"}", "\"label\" must be an integer"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 2}", "label 2 is out of range for 2 choices"},
      {"{\"context\": \"a\", \"choices\": [\"b\"], \"label\": -1}", "out of range"},
  };
  for (const auto& c : cases) {
    std::string path;
    const std::string msg = error_of(good + good + c.line + "\n", &path);
    EXPECT_NE(msg.find(path + ":3: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.why), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  std::string path;
  EXPECT_NE(error_of("\n\n", &path).find("no items"), std::string::npos);
  EXPECT_NE(error_of("\xFF\xFE{", &path).find(path + ":1: invalid JSON"), std::string::npos);
  EXPECT_THROW(read_mc_file("/nonexistent/dir/x.jsonl"), Error);
}

TEST(EvalTaskList, SplitsOnCommasAndAttachesFewshot) {
  auto r = parse_task_list("arc_easy,mc:a.jsonl,fewshot=b.jsonl,mc:c.jsonl,piqa");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].name, "arc_easy");
  EXPECT_EQ(r[1].name, "mc:a.jsonl");
  EXPECT_EQ(r[1].fewshot_path, "b.jsonl");
  EXPECT_EQ(r[2].fewshot_path, "");
  EXPECT_EQ(r[3].name, "piqa");
  EXPECT_THROW(parse_task_list("arc_easy,,piqa"), Error);
  EXPECT_THROW(parse_task_list("fewshot=b.jsonl"), Error);
  EXPECT_THROW(parse_task_list("arc_easy,fewshot=b.jsonl"), Error);
  EXPECT_THROW(parse_task_list("mc:a,fewshot=b,fewshot=c"), Error);
  EXPECT_THROW(load_task("nope", "/tmp"), Error);
  EXPECT_THROW(load_task("mc:", "/tmp"), Error);
}

TEST(EvalCsv, QuotesCommasAndNewlines) {
  auto rows = parse_csv("\xEF\xBB\xBFq,a\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",z\nlast,row", "t.csv");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"q", "a"}));
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"x, y", "say \"hi\""}));
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{"two\nlines", "z"}));
  EXPECT_EQ(rows[2].line, 3);
  EXPECT_EQ(rows[3].line, 5);
  EXPECT_EQ(rows[3].fields, (std::vector<std::string>{"last", "row"}));
  EXPECT_EQ(parse_csv("a,,b\n", "t").at(0).fields, (std::vector<std::string>{"a", "", "b"}));
  EXPECT_THROW(parse_csv("a,\"open\n", "t.csv"), Error);
}

}  // namespace
}  // namespace skv::eval
