#include "train/decontam.h"

#include <filesystem>

#include "core/error.h"
#include "eval/datasets.h"
#include "train/data.h"

namespace skv::train {
namespace {

bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

// Calls fn(begin, end) for each word of s.
template <class Fn>
void for_each_word(std::string_view s, Fn fn) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && !word_byte(s[i])) ++i;
    const size_t b = i;
    while (i < s.size() && word_byte(s[i])) ++i;
    if (i > b) fn(b, i);
  }
}

std::vector<uint64_t> word_hashes(std::string_view s) {
  std::vector<uint64_t> out;
  for_each_word(s, [&](size_t b, size_t e) {
    uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the lowercased bytes
    for (size_t i = b; i < e; ++i) h = (h ^ lower(s[i])) * 0x100000001b3ULL;
    out.push_back(h);
  });
  return out;
}

// The hash of a word sequence, extended one word at a time, so a document's windows of every
// length from one start cost one step per word.
uint64_t extend(uint64_t h, uint64_t word) { return splitmix64(h ^ word); }
constexpr uint64_t kStart = 0x243f6a8885a308d3ULL;
uint64_t nonzero(uint64_t h) { return h ? h : 1; }

// A leading lm-eval prompt label: "Question:", "Answer:", "Q:", "A:" or a choice letter "A." .. "D.".
size_t label_length(std::string_view line) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string_view::npos) return 0;
  for (std::string_view l : {"Question:", "Answer:", "Q:", "A:", "A.", "B.", "C.", "D."})
    if (line.substr(i, l.size()) == l) return i + l.size();
  return 0;
}

}  // namespace

std::vector<std::string> ngram_words(std::string_view text) {
  std::vector<std::string> out;
  for_each_word(text, [&](size_t b, size_t e) {
    std::string w(text.substr(b, e - b));
    for (char& c : w) c = static_cast<char>(lower(c));
    out.push_back(std::move(w));
  });
  return out;
}

void Decontaminator::insert(uint64_t h) {
  if (table_.empty() || (count_ + 1) * 2 > static_cast<int64_t>(table_.size())) {
    std::vector<uint64_t> old = std::move(table_);
    table_.assign(std::max<size_t>(1 << 16, old.size() * 2), 0);
    count_ = 0;
    for (uint64_t x : old)
      if (x) insert(x);
  }
  const size_t mask = table_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    if (table_[i] == h) return;
    if (table_[i] == 0) {
      table_[i] = h;
      ++count_;
      return;
    }
  }
}

bool Decontaminator::contains(uint64_t h) const {
  if (table_.empty()) return false;
  const size_t mask = table_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    if (table_[i] == h) return true;
    if (table_[i] == 0) return false;
  }
}

void Decontaminator::add_item_text(std::string_view text) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    const std::vector<uint64_t> w = word_hashes(line.substr(label_length(line)));
    const size_t n = w.size();
    if (n >= static_cast<size_t>(kNgram)) {
      for (size_t i = 0; i + kNgram <= n; ++i) {
        uint64_t h = kStart;
        for (int k = 0; k < kNgram; ++k) h = extend(h, w[i + k]);
        insert(nonzero(h));
      }
    } else if (n >= static_cast<size_t>(kMinShort)) {
      uint64_t h = kStart;
      for (uint64_t x : w) h = extend(h, x);
      insert(nonzero(h));
      short_lengths_ |= 1u << n;
    }
  }
}

bool Decontaminator::contaminated(std::string_view text) const {
  if (count_ == 0) return false;
  const std::vector<uint64_t> w = word_hashes(text);
  const size_t n = w.size();
  for (size_t i = 0; i < n; ++i) {
    uint64_t h = kStart;
    const int max_k = static_cast<int>(std::min<size_t>(kNgram, n - i));
    for (int k = 1; k <= max_k; ++k) {
      h = extend(h, w[i + k - 1]);
      if ((k == kNgram || (short_lengths_ >> k & 1u)) && contains(nonzero(h))) return true;
    }
  }
  return false;
}

Decontaminator Decontaminator::from_eval_dir(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(data_dir, ec)) fail("evaluation data directory ", data_dir, " does not exist");
  // Each task with the file whose presence means its data is there. Both TruthfulQA variants
  // are read: mc1 and mc2 list different answer sets.
  static const std::pair<const char*, const char*> kTasks[] = {
      {"arc_easy", "arc/ARC-Easy-Test.jsonl"},
      {"arc_challenge", "arc/ARC-Challenge-Test.jsonl"},
      {"piqa", "piqa/valid_labeled.jsonl"},
      {"boolq", "boolq/val.jsonl"},
      {"mmlu", "mmlu/test"},
      {"truthfulqa_mc1", "truthfulqa/mc_task.json"},
      {"truthfulqa_mc2", "truthfulqa/mc_task.json"},
      {"gsm8k_cot", "gsm8k/test.jsonl"},
      {"lambada_openai", "lambada/lambada_openai_llmfoundry.jsonl"},
      {"wikitext2", "wikitext2/wiki.test.raw"},
  };
  Decontaminator d;
  for (const auto& [name, file] : kTasks) {
    if (!fs::exists(fs::path(data_dir) / file, ec)) continue;
    for (const eval::Task& t : eval::load_task(name, data_dir)) {
      for (const auto* docs : {&t.docs, &t.fewshot_docs}) {
        for (const eval::Doc& doc : *docs) {
          d.add_item_text(doc.text);
          for (const std::string& c : doc.choices) d.add_item_text(c);
          if (!doc.target.empty()) d.add_item_text(doc.target);
          ++d.items_;
        }
      }
    }
    d.tasks_.push_back(name);
  }
  return d;
}

}  // namespace skv::train
