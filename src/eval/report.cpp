#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "io/read_file.h"

namespace skv::eval {
namespace {

using Json = nlohmann::ordered_json;

Json num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json task_json(const TaskResult& t) {
  Json j;
  for (const auto& [name, value] : t.metrics) j[name] = num(value);
  j["n"] = t.n;
  j["num_fewshot"] = t.num_fewshot;
  if (!t.group.empty()) j["group"] = t.group;
  j["seconds"] = num(t.seconds);
  j["items_per_second"] = num(t.seconds > 0 ? t.n / t.seconds : NAN);
  j["tokens_computed"] = t.tokens_computed;
  return j;
}

std::string format_value(const Json& v, const std::string& metric) {
  if (!v.is_number()) return "n/a";
  char buf[64];
  const bool ppl = metric.find("perplexity") != std::string::npos;
  std::snprintf(buf, sizeof buf, ppl ? "%.3f" : "%.4f", v.get<double>());
  return buf;
}

}  // namespace

Json results_json(const std::vector<TaskResult>& tasks, const std::vector<TaskResult>& groups) {
  Json out;
  Json results = Json::object();
  for (const auto& g : groups) results[g.name] = task_json(g);
  for (const auto& t : tasks) results[t.name] = task_json(t);
  out["results"] = results;
  Json group_members = Json::object();
  for (const auto& g : groups) {
    Json members = Json::array();
    for (const auto& t : tasks)
      if (t.group == g.name) members.push_back(t.name);
    group_members[g.name] = members;
  }
  out["groups"] = group_members;
  return out;
}

bool is_accuracy_metric(const std::string& metric) {
  return metric == "acc" || metric == "acc_norm" || metric == "mc2" || metric == "exact_match";
}

std::string main_metric(const std::string& task, const Json& metrics) {
  auto has = [&](const char* m) { return metrics.contains(m); };
  if (has("mc2")) return "mc2";
  if (has("exact_match")) return "exact_match";
  if (has("word_perplexity")) return "word_perplexity";
  const bool plain_acc = task == "mmlu" || task.rfind("mmlu_", 0) == 0 || task == "boolq" ||
                         task.rfind("truthfulqa", 0) == 0 || task.rfind("lambada", 0) == 0;
  if (!plain_acc && has("acc_norm")) return "acc_norm";
  if (has("acc")) return "acc";
  if (has("perplexity")) return "perplexity";
  return metrics.empty() ? "" : metrics.begin().key();
}

ResultsSets load_results_sets(const std::vector<std::string>& paths) {
  if (paths.empty()) fail("--compare needs results files: swiftkv eval --compare a.json b.json ...");
  ResultsSets r;
  for (const std::string& p : paths) {
    const std::string text = io::read_file(p, "results file");
    Json j;
    try {
      j = Json::parse(text);
    } catch (const Json::exception& e) {
      fail(p, ": not a JSON results file (", bound_message(e.what(), 300), ")");
    }
    if (!j.is_object() || !j.contains("results") || !j["results"].is_object())
      fail(p, ": not a swiftkv eval results file (no \"results\" object)");
    std::string label = std::filesystem::path(p).stem().string();
    if (j.contains("label") && j["label"].is_string() && !j["label"].get<std::string>().empty())
      label = j["label"].get<std::string>();
    for (const auto& [task, m] : j["results"].items()) {
      if (!m.is_object()) fail(p, ": results.", task, " is not an object");
      if (m.contains("group")) continue;  // shown through its group's row
      if (std::find(r.rows.begin(), r.rows.end(), task) == r.rows.end()) r.rows.push_back(task);
    }
    // Files with the same label are one model evaluated in several runs: one column.
    auto same = std::find_if(r.sets.begin(), r.sets.end(), [&](const ResultsSet& s) { return s.label == label; });
    if (same == r.sets.end()) {
      r.sets.push_back({label, j["results"], {p}});
      continue;
    }
    for (const auto& [task, m] : j["results"].items()) {
      if (same->results.contains(task))
        fail(p, ": task ", task, " is already in another results file labelled ", quote_bounded(label));
      same->results[task] = m;
    }
    same->paths.push_back(p);
  }
  return r;
}

std::vector<std::string> select_rows(const std::vector<std::string>& rows, const std::vector<std::string>& only) {
  if (only.empty()) return rows;
  std::vector<std::string> out;
  for (const std::string& t : only) {
    if (std::find(rows.begin(), rows.end(), t) == rows.end())
      fail("--tasks: no results file has task ", quote_bounded(t));
    out.push_back(t);
  }
  return out;
}

std::string compare_table(const std::vector<std::string>& paths, const std::vector<std::string>& only_tasks) {
  const ResultsSets loaded = load_results_sets(paths);
  const std::vector<std::string> rows = select_rows(loaded.rows, only_tasks);
  const std::vector<ResultsSet>& files = loaded.sets;
  std::string out = "| Task | Metric |";
  for (const auto& f : files) out += " " + f.label + " |";
  out += "\n|---|---|";
  for (size_t i = 0; i < files.size(); ++i) out += "---:|";
  out += "\n";
  // The Average row uses only the tasks every file has, so its columns compare like for like.
  std::vector<double> sums(files.size(), 0);
  int averaged = 0;
  std::vector<std::string> left_out;
  for (const std::string& task : rows) {
    std::string metric;
    for (const auto& f : files)
      if (metric.empty() && f.results.contains(task)) metric = main_metric(task, f.results[task]);
    out += "| " + task + " | " + metric + " |";
    bool in_all = is_accuracy_metric(metric);
    std::vector<double> values(files.size(), 0);
    for (size_t i = 0; i < files.size(); ++i) {
      const Json& r = files[i].results;
      if (!r.contains(task) || !r[task].contains(metric) || !r[task][metric].is_number()) {
        out += " - |";
        in_all = false;
        continue;
      }
      const Json& v = r[task][metric];
      values[i] = v.get<double>();
      std::string cell = format_value(v, metric);
      if (r[task].contains(metric + "_stderr") && r[task][metric + "_stderr"].is_number())
        cell += " ± " + format_value(r[task][metric + "_stderr"], metric);
      out += " " + cell + " |";
    }
    out += "\n";
    if (in_all) {
      for (size_t i = 0; i < files.size(); ++i) sums[i] += values[i];
      ++averaged;
    } else if (is_accuracy_metric(metric)) {
      left_out.push_back(task);
    }
  }
  out += "| Average | accuracy |";
  for (size_t i = 0; i < files.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", averaged ? sums[i] / averaged : NAN);
    out += std::string(" ") + (averaged ? buf : "-") + " |";
  }
  if (!left_out.empty()) {
    out += "\n\nNot in the average (missing from some files):";
    for (const auto& t : left_out) out += " " + t;
  }
  return out + "\n";
}

}  // namespace skv::eval
