#pragma once
// An evaluation task as data: its items already rendered to lm-eval's doc_to_text /
// doc_to_choice / doc_to_target strings, plus how prompts are assembled and scored.
#include <cstdint>
#include <string>
#include <vector>

namespace skv::eval {

enum class TaskKind {
  kMultipleChoice,  // score every choice as a continuation (acc, acc_norm, mc2)
  kLoglikelihood,   // one continuation: loglik and is_greedy (lambada)
  kRolling,         // whole-document rolling loglik (wikitext)
  kGenerate,        // greedy generation, answer extraction, exact match (gsm8k)
};

struct Doc {
  std::string text;                  // doc_to_text: the item's own prompt
  std::vector<std::string> choices;  // multiple choice: doc_to_choice; loglikelihood: {target}
  int gold = 0;                      // index into choices
  std::vector<int> labels;           // truthfulqa_mc2: 1 = true answer, per choice
  std::string target;                // generate: the reference answer, or a few-shot exemplar's answer
  std::string page;                  // rolling: the original document (words / bytes are counted on it)
};

struct Task {
  std::string name;   // "arc_easy", "mmlu_anatomy", "mc:path/to/file.jsonl"
  std::string group;  // "mmlu" for its subjects: results are also aggregated over the group
  TaskKind kind = TaskKind::kMultipleChoice;
  std::string description;             // prepended to every prompt (mmlu's subject line)
  std::string target_delimiter = " ";  // between a prompt and its answer (lm-eval default)
  std::string fewshot_delimiter = "\n\n";
  int default_fewshot = 0;
  // first_n sampler (mmlu, gsm8k): the first k few-shot docs in order. Otherwise k are drawn
  // with a seeded generator per item, never the item itself.
  bool fewshot_first_n = false;
  std::vector<Doc> docs;
  // Few-shot pool from another split (mmlu dev, gsm8k's fixed exemplars, a --tasks fewshot=
  // file). Empty: draw from `docs`, excluding the item being evaluated.
  std::vector<Doc> fewshot_docs;
  std::vector<std::string> metrics;  // reported, in order: "acc", "acc_norm", "mc2", ...
  std::vector<std::string> until;    // generate: stop strings
  int64_t max_gen_tokens = 256;
};

// The answer a few-shot example shows after its prompt: the gold choice, or the target.
inline const std::string& fewshot_answer(const Task& t, const Doc& d) {
  return t.kind == TaskKind::kGenerate || d.choices.empty() ? d.target : d.choices.at(d.gold);
}

}  // namespace skv::eval
