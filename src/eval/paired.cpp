#include "eval/paired.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "eval/report.h"
#include "io/read_file.h"

namespace skv::eval {
namespace {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

// (task, doc_id) -> the sample's numeric per-item metrics.
using ItemKey = std::pair<std::string, int64_t>;
using Items = std::map<ItemKey, std::map<std::string, double>>;

void read_samples(const std::string& path, Items& items) {
  std::istringstream in(io::read_file(path, "samples file"));
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::exception& e) {
      fail(path, ":", line_no, ": not a JSON line (", e.what(), ")");
    }
    if (!j.is_object() || !j.contains("task") || !j["task"].is_string() || !j.contains("doc_id") ||
        !j["doc_id"].is_number_integer())
      fail(path, ":", line_no, ": not a swiftkv eval sample (needs \"task\" and \"doc_id\")");
    const ItemKey key{j["task"].get<std::string>(), j["doc_id"].get<int64_t>()};
    auto& metrics = items[key];
    if (!metrics.empty()) fail(path, ":", line_no, ": item ", key.first, " #", key.second, " appears twice");
    for (const auto& [name, v] : j.items())
      if (v.is_number() && is_accuracy_metric(name)) metrics[name] = v.get<double>();
  }
}

// The tasks whose items make up `row` in one model's results: a group's members, else itself.
std::vector<std::string> row_tasks(const Json& results, const std::string& row) {
  std::vector<std::string> members;
  for (const auto& [task, m] : results.items())
    if (m.is_object() && m.contains("group") && m["group"] == row) members.push_back(task);
  if (members.empty()) members.push_back(row);
  return members;
}

std::map<ItemKey, double> row_values(const ResultsSet& set, const Items& items, const std::string& row,
                                     const std::string& metric) {
  std::map<ItemKey, double> out;
  for (const std::string& task : row_tasks(set.results, row))
    for (auto it = items.lower_bound({task, INT64_MIN}); it != items.end() && it->first.first == task; ++it) {
      const auto m = it->second.find(metric);
      if (m != it->second.end()) out[it->first] = m->second;
    }
  return out;
}

std::string diff_cell(double mean, double se) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.4f ± %.4f", mean, se);
  return buf;
}

}  // namespace

std::string samples_path_for(const std::string& results_path) {
  std::ifstream in(results_path, std::ios::binary);
  Json j = Json::parse(in, nullptr, false);
  std::vector<fs::path> tried;
  if (j.is_object() && j.contains("config") && j["config"].is_object() && j["config"].contains("log_samples") &&
      j["config"]["log_samples"].is_string()) {
    const fs::path p = j["config"]["log_samples"].get<std::string>();
    tried.push_back(p);
    if (p.is_relative()) tried.push_back(fs::path(results_path).parent_path() / p.filename());
  }
  fs::path sibling = results_path;
  sibling.replace_extension(".samples.jsonl");
  tried.push_back(sibling);
  std::string list;
  for (const auto& p : tried) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
    list += (list.empty() ? "" : ", ") + p.string();
  }
  fail("no per-item samples for ", results_path, " (looked for ", list,
       "); run swiftkv eval with --log-samples to compare models item by item");
}

std::string paired_table(const std::vector<std::string>& results_paths, const std::vector<std::string>& only_tasks) {
  const ResultsSets loaded = load_results_sets(results_paths);
  if (loaded.sets.size() < 2) fail("--paired needs results of at least two models (different labels)");
  const std::vector<std::string> rows = select_rows(loaded.rows, only_tasks);
  std::vector<Items> items(loaded.sets.size());
  for (size_t i = 0; i < loaded.sets.size(); ++i)
    for (const std::string& p : loaded.sets[i].paths) read_samples(samples_path_for(p), items[i]);

  const ResultsSet& base = loaded.sets[0];
  const size_t others = loaded.sets.size() - 1;
  std::string out = "| Task | Metric | n |";
  for (size_t k = 1; k <= others; ++k) out += " " + loaded.sets[k].label + " - " + base.label + " |";
  out += "\n|---|---|---:|";
  for (size_t k = 0; k < others; ++k) out += "---:|";
  out += "\n";

  std::vector<double> diff_sum(others, 0), var_sum(others, 0);
  int averaged = 0;
  std::vector<std::string> left_out;
  for (const std::string& row : rows) {
    std::string metric;
    for (const auto& s : loaded.sets)
      if (metric.empty() && s.results.contains(row)) metric = main_metric(row, s.results[row]);
    if (!is_accuracy_metric(metric)) continue;
    const auto base_values = row_values(base, items[0], row, metric);
    out += "| " + row + " | " + metric + " | " + std::to_string(base_values.size()) + " |";
    bool in_all = base_values.size() >= 2;
    std::vector<double> mean(others, 0), se(others, 0);
    for (size_t k = 0; k < others; ++k) {
      const auto values = row_values(loaded.sets[k + 1], items[k + 1], row, metric);
      std::vector<double> d;
      for (const auto& [key, v] : values) {
        const auto b = base_values.find(key);
        if (b != base_values.end()) d.push_back(v - b->second);
      }
      if (d.size() < 2) {
        out += " - |";
        in_all = false;
        continue;
      }
      const double n = static_cast<double>(d.size());
      double sum = 0, sq = 0;
      for (double x : d) sum += x;
      mean[k] = sum / n;
      for (double x : d) sq += (x - mean[k]) * (x - mean[k]);
      se[k] = std::sqrt(sq / (n - 1) / n);
      out += ' ';
      out += diff_cell(mean[k], se[k]);
      if (d.size() != base_values.size()) out += " (n " + std::to_string(d.size()) + ")";
      out += " |";
    }
    out += "\n";
    if (!in_all) {
      left_out.push_back(row);
      continue;
    }
    for (size_t k = 0; k < others; ++k) {
      diff_sum[k] += mean[k];
      var_sum[k] += se[k] * se[k];
    }
    ++averaged;
  }
  out += "| Average | accuracy | " + std::to_string(averaged) + " tasks |";
  for (size_t k = 0; k < others; ++k) {
    out += ' ';
    out += averaged ? diff_cell(diff_sum[k] / averaged, std::sqrt(var_sum[k]) / averaged) : std::string("-");
    out += " |";
  }
  if (!left_out.empty()) {
    out += "\n\nNot in the average (fewer than two shared items in some model):";
    for (const auto& t : left_out) out += " " + t;
  }
  return out + "\n";
}

}  // namespace skv::eval
