#pragma once
// Keeps evaluation items out of training data, by word n-gram overlap as GPT-3 did (Brown et
// al. 2020, appendix C): text is lowercased and split into words at every character that is
// not a letter or digit, and a training document that shares a 13-word sequence with an
// evaluation item is dropped whole.
//
// Item texts are split at line breaks into segments first, and a leading lm-eval prompt label
// ("Question:", "Answer:", "Q:", "A:", "A." .. "D.") is removed from each segment, so that the
// n-grams are those of the item's own words: a question that a training document quotes
// matches even though the prompt wraps it in "Question: ... Answer:".
//
// Short segments: one of 8 to 12 words counts as a single n-gram of its own length (a document
// containing that exact word sequence is dropped); one under 8 words is ignored, as such
// sequences ("which of the following is true") occur in ordinary prose and would drop
// innocent documents.
//
// N-grams are kept as 64-bit hashes in an open-addressing table: a few MB of training text
// is checked in well under a second.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace skv::train {

class Decontaminator {
 public:
  static constexpr int kNgram = 13;
  static constexpr int kMinShort = 8;

  // The items of every evaluation task whose data is present under data_dir (the layout of
  // ../shared/data: arc, piqa, boolq, mmlu, truthfulqa, gsm8k, lambada, wikitext2 test):
  // prompts, answer choices, targets and the few-shot examples the prompts show. A task whose
  // data file is absent is skipped and not listed in tasks(); a missing data_dir or a present
  // but malformed file is an error.
  static Decontaminator from_eval_dir(const std::string& data_dir);

  // Adds one evaluation text (split into segments as described above).
  void add_item_text(std::string_view text);
  // Whether text shares an n-gram with any item added.
  bool contaminated(std::string_view text) const;

  int64_t size() const { return count_; }  // distinct n-grams held
  const std::vector<std::string>& tasks() const { return tasks_; }
  int64_t items() const { return items_; }

 private:
  void insert(uint64_t h);
  bool contains(uint64_t h) const;

  std::vector<uint64_t> table_;  // 0 = empty slot; hashes are never 0
  int64_t count_ = 0;
  uint32_t short_lengths_ = 0;  // bit k set: some short segment has k words
  std::vector<std::string> tasks_;
  int64_t items_ = 0;
};

// Lowercased words of text (ASCII letters and digits; bytes of multi-byte UTF-8 characters
// count as letters, so "café" stays one word).
std::vector<std::string> ngram_words(std::string_view text);

}  // namespace skv::train
