// config.json: the input is the file's text. Every architecture's fields (Llama, Qwen2, Qwen3,
// Mistral and the SwiftKV variants, rope scaling in transformers 4.x and 5.x form, a
// quantisation_config block) are read and validated; a config that reads must survive the
// trip back through config_to_json_text unchanged (what convert writes, a later load reads).
#include "fuzz_common.h"
#include "io/config.h"
#include "io/config_json.h"

using namespace skv;

namespace {

std::string describe(const io::ModelConfig& c) {
  std::string s = c.model_type();
  for (int64_t v :
       {c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
        c.max_position_embeddings, c.sliding_window, c.bos_token_id, c.num_key_value_layers, c.key_value_group_size,
        int64_t(c.tie_word_embeddings), int64_t(c.attention_bias), int64_t(c.swiftkv)})
    s += " " + std::to_string(v);
  s += " eos";
  for (int64_t e : c.eos_token_ids) s += " " + std::to_string(e);
  return s + " " + c.rope_scaling.type + " " + c.torch_dtype;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  io::ModelConfig c;
  if (!fuzz::guarded([&] { c = io::config_from_json_text(text, "config.json"); })) return 0;
  if (!fuzz::guarded([&] { c.validate(); })) return 0;
  std::string again;
  fuzz::guarded([&] { again = io::config_to_json_text(c, text); });
  if (again.empty()) return 0;
  io::ModelConfig d;
  if (!fuzz::guarded([&] { d = io::config_from_json_text(again, "config.json (written back)"); }))
    fuzz::finding("a config that reads does not read back once written:\n" + again);
  if (describe(c) != describe(d))
    fuzz::finding("config changes on the way back: " + describe(c) + " vs " + describe(d));
  return 0;
}
