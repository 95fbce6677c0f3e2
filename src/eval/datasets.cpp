#include "eval/datasets.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "eval/csv.h"
#include "eval/gsm8k.h"
#include "eval/mc_file.h"
#include "eval/prompts.h"
#include "eval/wikitext.h"
#include "io/read_file.h"

namespace skv::eval {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // TruthfulQA answers keep the order of the file (mc1: true first)

std::string read_text(const std::string& path) {
  try {
    return io::read_file(path, "data file");
  } catch (const Error& e) {
    fail_like(e, e.what(), " (is --data-dir / SKV_DATA the shared data folder?)");
  }
}

// Calls fn(json, line_no) per non-blank line; a line that is not JSON is an error naming it.
void for_each_jsonl(const std::string& path, const std::function<void(const Json&, int64_t)>& fn) {
  std::istringstream in(read_text(path));
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::exception& e) {
      fail(path, ":", no, ": invalid JSON (", bound_message(e.what(), 300), ")");
    }
    try {
      fn(j, no);
    } catch (const Json::exception& e) {
      fail(path, ":", no, ": unexpected item layout (", bound_message(e.what(), 300), ")");
    }
  }
}

std::vector<Doc> arc_docs(const std::string& path) {
  std::vector<Doc> docs;
  for_each_jsonl(path, [&](const Json& j, int64_t no) {
    Doc d;
    d.text = arc_text(j.at("question").at("stem").get<std::string>());
    std::vector<std::string> labels;
    for (const auto& c : j.at("question").at("choices")) {
      d.choices.push_back(c.at("text").get<std::string>());
      labels.push_back(c.at("label").get<std::string>());
    }
    const std::string key = j.at("answerKey").get<std::string>();
    auto it = std::find(labels.begin(), labels.end(), key);
    if (it == labels.end())
      fail(path, ":", no, ": answerKey ", quote_bounded(key, 40), " is not one of the choice labels");
    d.gold = static_cast<int>(it - labels.begin());
    docs.push_back(std::move(d));
  });
  return docs;
}

Task arc_task(const std::string& data_dir, const std::string& name, const std::string& subset) {
  Task t;
  t.name = name;
  t.docs = arc_docs(data_dir + "/arc/ARC-" + subset + "-Test.jsonl");
  // lm-eval draws ARC few-shot examples from the train split, which the shared data lacks;
  // the validation (Dev) split stands in, and stays disjoint from the test items.
  const std::string dev = data_dir + "/arc/ARC-" + subset + "-Dev.jsonl";
  if (fs::exists(dev)) t.fewshot_docs = arc_docs(dev);
  t.metrics = {"acc", "acc_norm"};
  return t;
}

Task piqa_task(const std::string& data_dir) {
  Task t;
  t.name = "piqa";
  const std::string path = data_dir + "/piqa/valid_labeled.jsonl";
  for_each_jsonl(path, [&](const Json& j, int64_t no) {
    Doc d;
    d.text = piqa_text(j.at("goal").get<std::string>());
    d.choices = {j.at("sol1").get<std::string>(), j.at("sol2").get<std::string>()};
    // An integer first: converting a float such as 1e300 to int is undefined.
    const Json& label = j.at("label");
    if (!label.is_number_integer() || (label != 0 && label != 1)) fail(path, ":", no, ": label must be 0 or 1");
    d.gold = label.get<int>();
    t.docs.push_back(std::move(d));
  });
  t.metrics = {"acc", "acc_norm"};
  return t;
}

Task boolq_task(const std::string& data_dir) {
  Task t;
  t.name = "boolq";
  const std::string path = data_dir + "/boolq/val.jsonl";
  for_each_jsonl(path, [&](const Json& j, int64_t no) {
    Doc d;
    d.text = boolq_text(j.at("passage").get<std::string>(), j.at("question").get<std::string>());
    d.choices = {"no", "yes"};
    // This copy stores the label as the string "true" / "false"; accept a JSON bool as well.
    const Json& l = j.at("label");
    if (l.is_boolean()) {
      d.gold = l.get<bool>();
    } else if (l.is_string() && (l == "true" || l == "false")) {
      d.gold = l == "true";
    } else {
      fail(path, ":", no, ": label must be true or false");
    }
    t.docs.push_back(std::move(d));
  });
  t.metrics = {"acc"};
  return t;
}

std::vector<Doc> mmlu_docs(const std::string& path) {
  std::vector<Doc> docs;
  std::vector<CsvRow> rows = parse_csv(read_text(path), path);
  if (rows.empty()) fail(path, ": empty file");
  size_t first = 0;
  if (!rows[0].fields.empty() && rows[0].fields[0] == "question") first = 1;  // header row
  for (size_t r = first; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    if (row.fields.size() == 1 && row.fields[0].empty()) continue;
    if (row.fields.size() != 6)
      fail(path, ":", row.line, ": expected 6 columns (question, 4 choices, answer), got ", row.fields.size());
    std::vector<std::string> choices(row.fields.begin() + 1, row.fields.begin() + 5);
    Doc d;
    d.text = mmlu_text(row.fields[0], choices);
    d.choices = {"A", "B", "C", "D"};
    const std::string& a = row.fields[5];
    if (a.size() == 1 && a[0] >= '0' && a[0] <= '3') {
      d.gold = a[0] - '0';
    } else if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'D') {
      d.gold = a[0] - 'A';
    } else {
      fail(path, ":", row.line, ": answer must be 0-3 or A-D, got ", quote_bounded(a));
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<std::string> mmlu_subjects(const std::string& data_dir) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(data_dir) / "mmlu" / "test";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    const std::string suffix = "_test.csv";
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(f.substr(0, f.size() - suffix.size()));
  }
  if (ec || out.empty())
    fail("no MMLU subjects in ", dir.string(), " (is --data-dir / SKV_DATA the shared data folder?)");
  std::sort(out.begin(), out.end());
  return out;
}

Task mmlu_task(const std::string& data_dir, const std::string& subject) {
  Task t;
  t.name = "mmlu_" + subject;
  t.group = "mmlu";
  t.description = mmlu_description(subject);
  t.docs = mmlu_docs(data_dir + "/mmlu/test/" + subject + "_test.csv");
  t.fewshot_docs = mmlu_docs(data_dir + "/mmlu/dev/" + subject + "_dev.csv");
  t.fewshot_first_n = true;
  t.default_fewshot = 5;
  t.metrics = {"acc"};
  return t;
}

Task truthfulqa_task(const std::string& data_dir, bool mc2) {
  Task t;
  t.name = mc2 ? "truthfulqa_mc2" : "truthfulqa_mc1";
  const std::string path = data_dir + "/truthfulqa/mc_task.json";
  Json all;
  try {
    all = Json::parse(read_text(path));
  } catch (const Json::exception& e) {
    fail(path, ": invalid JSON (", bound_message(e.what(), 300), ")");
  }
  if (!all.is_array()) fail(path, ": expected a JSON list of questions");
  for (size_t i = 0; i < all.size(); ++i) {
    try {
      const Json& q = all[i];
      Doc d;
      d.text = truthfulqa_text(q.at("question").get<std::string>());
      const Json& targets = q.at(mc2 ? "mc2_targets" : "mc1_targets");
      std::vector<int> labels;
      for (const auto& [answer, label] : targets.items()) {
        d.choices.push_back(answer);
        if (!label.is_number_integer() || (label != 0 && label != 1))
          fail(path, ": question ", i, ": the label of each answer must be 0 or 1");
        labels.push_back(label.get<int>());
      }
      if (d.choices.empty()) fail(path, ": question ", i, " has no answers");
      // mc1: lm-eval's doc_to_target is 0, the first answer, which is the true one.
      auto first_true = std::find(labels.begin(), labels.end(), 1);
      if (first_true == labels.end()) fail(path, ": question ", i, " has no true answer");
      d.gold = static_cast<int>(first_true - labels.begin());
      if (mc2) d.labels = std::move(labels);  // only mc2 scores the probability mass
      t.docs.push_back(std::move(d));
    } catch (const Json::exception& e) {
      fail(path, ": question ", i, ": unexpected layout (", bound_message(e.what(), 300), ")");
    }
  }
  t.metrics = {mc2 ? "mc2" : "acc"};
  return t;
}

Task lambada_task(const std::string& data_dir) {
  Task t;
  t.name = "lambada_openai";
  t.kind = TaskKind::kLoglikelihood;
  const std::string path = data_dir + "/lambada/lambada_openai_llmfoundry.jsonl";
  for_each_jsonl(path, [&](const Json& j, int64_t) {
    // lm-eval: context = text.split(' ')[:-1] joined, target = ' ' + last word; this file has
    // the text already split there.
    Doc d;
    d.text = j.at("context").get<std::string>();
    d.choices = {" " + j.at("continuation").get<std::string>()};
    t.docs.push_back(std::move(d));
  });
  t.metrics = {"perplexity", "acc"};
  return t;
}

Task wikitext_task(const std::string& data_dir) {
  Task t;
  t.name = "wikitext2";
  t.kind = TaskKind::kRolling;
  for (std::string& page : wikitext_documents(read_text(data_dir + "/wikitext2/wiki.test.raw"))) {
    Doc d;
    d.text = wikitext_detokenize(page);
    d.page = std::move(page);
    t.docs.push_back(std::move(d));
  }
  t.metrics = {"word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"};
  return t;
}

Task gsm8k_task(const std::string& data_dir) {
  Task t;
  t.name = "gsm8k_cot";
  t.kind = TaskKind::kGenerate;
  for_each_jsonl(data_dir + "/gsm8k/test.jsonl", [&](const Json& j, int64_t) {
    Doc d;
    d.text = gsm8k_text(j.at("question").get<std::string>());
    d.target = gsm8k_target(j.at("answer").get<std::string>());
    t.docs.push_back(std::move(d));
  });
  t.fewshot_docs = gsm8k_exemplars();
  t.fewshot_first_n = true;
  t.default_fewshot = 8;
  t.until = {"Q:", "</s>", "<|im_end|>"};
  t.max_gen_tokens = 256;
  t.metrics = {"exact_match", "exact_match_flexible"};
  return t;
}

}  // namespace

const std::vector<std::string>& builtin_task_names() {
  static const std::vector<std::string> kNames = {"arc_easy",  "arc_challenge",  "piqa",           "boolq",
                                                  "mmlu",      "mmlu_<subject>", "truthfulqa_mc1", "truthfulqa_mc2",
                                                  "wikitext2", "lambada_openai", "gsm8k_cot"};
  return kNames;
}

std::vector<Task> load_task(const std::string& name, const std::string& data_dir, const std::string& mc_fewshot) {
  if (name.rfind("mc:", 0) == 0) {
    if (name.size() == 3) fail("task 'mc:' needs a file: mc:PATH");
    return {mc_task(name.substr(3), mc_fewshot)};
  }
  if (!mc_fewshot.empty()) fail("fewshot=", mc_fewshot, " only applies to mc:PATH tasks, not ", name);
  if (name == "arc_easy") return {arc_task(data_dir, name, "Easy")};
  if (name == "arc_challenge") return {arc_task(data_dir, name, "Challenge")};
  if (name == "piqa") return {piqa_task(data_dir)};
  if (name == "boolq") return {boolq_task(data_dir)};
  if (name == "truthfulqa_mc1") return {truthfulqa_task(data_dir, false)};
  if (name == "truthfulqa_mc2") return {truthfulqa_task(data_dir, true)};
  if (name == "lambada" || name == "lambada_openai") return {lambada_task(data_dir)};
  if (name == "wikitext" || name == "wikitext2") return {wikitext_task(data_dir)};
  if (name == "gsm8k" || name == "gsm8k_cot") return {gsm8k_task(data_dir)};
  if (name == "mmlu") {
    std::vector<Task> out;
    for (const std::string& s : mmlu_subjects(data_dir)) out.push_back(mmlu_task(data_dir, s));
    return out;
  }
  if (name.rfind("mmlu_", 0) == 0) {
    const std::string subject = name.substr(5);
    const auto subjects = mmlu_subjects(data_dir);
    if (!std::binary_search(subjects.begin(), subjects.end(), subject))
      fail("unknown MMLU subject ", quote_bounded(subject), " (the files in ", data_dir, "/mmlu/test name them)");
    return {mmlu_task(data_dir, subject)};
  }
  std::string known;
  for (const auto& n : builtin_task_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown task ", quote_bounded(name), " (known: ", known, ", mc:PATH)");
}

std::vector<TaskRequest> parse_task_list(const std::string& list) {
  std::vector<TaskRequest> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = list.find(',', pos);
    const std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (item.empty()) fail("--tasks has an empty entry in ", quote_bounded(list));
    if (item.rfind("fewshot=", 0) == 0) {
      if (out.empty() || out.back().name.rfind("mc:", 0) != 0)
        fail("--tasks: ", quote_bounded(item), " must follow an mc:PATH task");
      if (!out.back().fewshot_path.empty()) fail("--tasks: two fewshot= files for ", out.back().name);
      out.back().fewshot_path = item.substr(8);
      if (out.back().fewshot_path.empty()) fail("--tasks: fewshot= needs a file");
      continue;
    }
    out.push_back({item, ""});
  }
  return out;
}

}  // namespace skv::eval
