// Training-data and evaluation JSONL. The first byte picks the reader, the rest is the file:
//   0: a distillation training file (.jsonl: text / messages / token_ids lines), tokenised with a
//      fixture tokenizer and the SmolLM2 chat template, then packed into sequences;
//   1: an mc:PATH multiple-choice file (it is also its own few-shot pool);
//   2..: a built-in task's data file (ARC, PIQA, BoolQ, TruthfulQA, LAMBADA, GSM8K, MMLU's CSV),
//      loaded as `swiftkv eval` does and every item's few-shot prompt built.
#include <memory>

#include "eval/datasets.h"
#include "eval/fewshot.h"
#include "eval/mc_file.h"
#include "fuzz_common.h"
#include "io/read_file.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

using namespace skv;

namespace {

const tokenizer::Tokenizer& tok() {
  static const auto t =
      tokenizer::Tokenizer::from_tokenizer_json(fuzz::source_dir() + "/tests/fixtures/tokenizer/gpt2_style.json");
  return *t;
}

struct BuiltinTask {
  const char* name;
  std::vector<const char*> files;  // under the data folder; each gets the input
};
const std::vector<BuiltinTask>& builtin() {
  static const std::vector<BuiltinTask> tasks = {
      {"arc_easy", {"arc/ARC-Easy-Test.jsonl", "arc/ARC-Easy-Dev.jsonl"}},
      {"piqa", {"piqa/valid_labeled.jsonl"}},
      {"boolq", {"boolq/val.jsonl"}},
      {"truthfulqa_mc2", {"truthfulqa/mc_task.json"}},
      {"truthfulqa_mc1", {"truthfulqa/mc_task.json"}},
      {"lambada_openai", {"lambada/lambada_openai_llmfoundry.jsonl"}},
      {"gsm8k_cot", {"gsm8k/test.jsonl"}},
      {"mmlu_anatomy", {"mmlu/test/anatomy_test.csv", "mmlu/dev/anatomy_dev.csv"}},
  };
  return tasks;
}

void prompts(const eval::Task& t) {
  for (size_t i = 0; i < t.docs.size() && i < 8; ++i) {
    eval::fewshot_answer(t, t.docs[i]);
    const size_t pool = t.fewshot_docs.empty() ? t.docs.size() - 1 : t.fewshot_docs.size();
    eval::build_context(t, i, static_cast<int>(std::min<size_t>(pool, 3)), 1234);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t mode = data[0] % (2 + builtin().size());
  if (mode == 0) {
    const std::string path = fuzz::write_file("train.jsonl", rest);
    static const std::string tmpl =
        io::read_file(fuzz::source_dir() + "/tests/fixtures/chat_templates/smollm2-135m-instruct.jinja");
    train::LoadOptions opts;
    opts.chat_template = tmpl;
    fuzz::guarded([&] {
      const auto docs = train::load_documents({path}, &tok(), opts);
      for (const auto& d : docs)
        for (int32_t id : d.ids)
          if (id < 0 || id >= tok().vocab_size()) fuzz::finding("document token id out of range");
      const auto seqs = train::pack_documents(docs, 16);
      if (train::count_tokens(seqs) != train::count_tokens(docs)) fuzz::finding("packing lost or added tokens");
    });
  } else if (mode == 1) {
    const std::string path = fuzz::write_file("mc.jsonl", rest);
    fuzz::guarded([&] {
      for (const eval::Task& t : eval::load_task("mc:" + path, "", path)) prompts(t);
    });
  } else {
    const BuiltinTask& b = builtin()[mode - 2];
    for (const char* f : b.files) fuzz::write_file(std::string("data/") + f, rest);
    fuzz::guarded([&] {
      for (const eval::Task& t : eval::load_task(b.name, fuzz::temp_dir() + "/data")) prompts(t);
    });
  }
  return 0;
}
