#include "eval/mc_file.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/read_file.h"

namespace skv::eval {

std::vector<Doc> read_mc_file(const std::string& path) {
  std::istringstream in(io::read_file(path, "multiple-choice file"));
  std::vector<Doc> docs;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto bad = [&](const std::string& why) { fail(path, ":", no, ": ", why); };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      bad(std::string("invalid JSON (") + bound_message(e.what(), 300) + ")");
    }
    if (!j.is_object()) bad("expected a JSON object {\"context\", \"choices\", \"label\"}");
    if (!j.contains("context") || !j["context"].is_string()) bad("\"context\" must be a string");
    if (!j.contains("choices") || !j["choices"].is_array()) bad("\"choices\" must be a list of strings");
    if (!j.contains("label") || !j["label"].is_number_integer()) bad("\"label\" must be an integer");
    Doc d;
    d.text = j["context"].get<std::string>();
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) bad("\"choices\" must be a list of strings");
      if (c.get<std::string>().empty()) bad("choice " + std::to_string(d.choices.size()) + " is empty");
      d.choices.push_back(c.get<std::string>());
    }
    if (d.choices.empty()) bad("\"choices\" is empty");
    const int64_t label = j["label"].get<int64_t>();
    if (label < 0 || label >= static_cast<int64_t>(d.choices.size()))
      bad("label " + std::to_string(label) + " is out of range for " + std::to_string(d.choices.size()) + " choices");
    d.gold = static_cast<int>(label);
    docs.push_back(std::move(d));
  }
  if (docs.empty()) fail(path, ": no items (expected JSON Lines of {\"context\", \"choices\", \"label\"})");
  return docs;
}

Task mc_task(const std::string& path, const std::string& fewshot_path) {
  Task t;
  t.name = "mc:" + path;
  t.kind = TaskKind::kMultipleChoice;
  t.target_delimiter = "";
  t.docs = read_mc_file(path);
  if (!fewshot_path.empty()) t.fewshot_docs = read_mc_file(fewshot_path);
  t.metrics = {"acc", "acc_norm"};
  return t;
}

}  // namespace skv::eval
