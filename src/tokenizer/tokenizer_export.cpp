#include "tokenizer/tokenizer_export.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/gguf_pre_tokenizer.h"

namespace skv::tokenizer {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// llama_token_type values stored in tokenizer.ggml.token_type.
enum : int64_t { kNormal = 1, kControl = 3, kUserDefined = 4 };

struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::optional<int64_t> bos, eos, unk, pad;
  bool add_bos = false, add_eos = false;
};

GgufVocab read_vocab(const io::GGUFFile& gguf, bool default_add_bos) {
  GgufVocab v;
  const std::string model = gguf.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    fail("tokenizer.ggml.model ", quote_bounded(model),
         " is not supported (swiftkv supports 'gpt2' byte-level BPE only)");
  v.tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  v.types.assign(v.tokens.size(), kNormal);
  if (gguf.has("tokenizer.ggml.token_type")) {
    v.types = gguf.get_int_array("tokenizer.ggml.token_type");
    if (v.types.size() != v.tokens.size())
      fail("tokenizer.ggml.token_type has ", v.types.size(), " entries but there are ", v.tokens.size(), " tokens");
  }
  const auto opt_id = [&](const char* key) -> std::optional<int64_t> {
    const int64_t id = gguf.get_int(key, -1);
    if (id < 0 || id >= static_cast<int64_t>(v.tokens.size())) return std::nullopt;
    return id;
  };
  v.bos = opt_id("tokenizer.ggml.bos_token_id");
  v.eos = opt_id("tokenizer.ggml.eos_token_id");
  v.unk = opt_id("tokenizer.ggml.unknown_token_id");
  v.pad = opt_id("tokenizer.ggml.padding_token_id");
  v.add_bos = gguf.get_int("tokenizer.ggml.add_bos_token", default_add_bos) != 0;
  v.add_eos = gguf.get_int("tokenizer.ggml.add_eos_token", 0) != 0;
  if (v.add_bos && !v.bos) fail("tokenizer.ggml.add_bos_token is set but there is no valid bos_token_id");
  if (v.add_eos && !v.eos) fail("tokenizer.ggml.add_eos_token is set but there is no valid eos_token_id");
  return v;
}

bool is_added(int64_t type) { return type == kControl || type == kUserDefined; }

// Control tokens are HF special tokens; user-defined ones are plain added tokens. Neither is
// normalised, matching Tokenizer::from_gguf.
ojson added_token(const GgufVocab& v, size_t id) {
  return {{"id", id},
          {"content", v.tokens[id]},
          {"single_word", false},
          {"lstrip", false},
          {"rstrip", false},
          {"normalized", false},
          {"special", v.types[id] == kControl}};
}

// BOS / EOS come from the post-processor in HF tokenizers (tokenizer_config's add_bos_token
// is advisory), so tokenizer.ggml.add_bos_token becomes a TemplateProcessing step.
ojson post_processor(const GgufVocab& v) {
  if (!v.add_bos && !v.add_eos)
    return {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  ojson special = ojson::object();
  const auto piece = [&](int64_t id, int type_id) {
    const std::string& content = v.tokens[static_cast<size_t>(id)];
    special[content] = {{"id", content}, {"ids", {id}}, {"tokens", {content}}};
    return ojson{{"SpecialToken", {{"id", content}, {"type_id", type_id}}}};
  };
  const auto sequence = [](const char* id, int type_id) {
    return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  // The layout transformers' LlamaTokenizerFast.update_post_processor builds.
  ojson single = ojson::array();
  if (v.add_bos) single.push_back(piece(*v.bos, 0));
  single.push_back(sequence("A", 0));
  if (v.add_eos) single.push_back(piece(*v.eos, 0));
  ojson pair = single;
  if (v.add_bos) pair.push_back(piece(*v.bos, 1));
  pair.push_back(sequence("B", 1));
  if (v.add_eos) pair.push_back(piece(*v.eos, 1));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", special}};
}

std::string tokenizer_json(const io::GGUFFile& gguf, const GgufVocab& v, const GgufPreTokenizer& pre) {
  // std::map-backed: tens of thousands of vocab keys would make ordered_json's linear
  // lookups quadratic. Key order does not matter to any tokenizer.json reader.
  json vocab = json::object();
  for (size_t id = 0; id < v.tokens.size(); ++id)
    vocab.emplace(v.tokens[id], id);  // first occurrence wins, as in Tokenizer::from_gguf
  json merges = json::array();
  for (const auto& m : gguf.get_string_array("tokenizer.ggml.merges")) {
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
      fail("malformed merge \"", m, "\" in tokenizer.ggml.merges");
    merges.push_back(m);
  }
  json added = json::array();
  for (size_t id = 0; id < v.tokens.size(); ++id)
    if (is_added(v.types[id])) added.push_back(json(added_token(v, id)));

  json j = json::object();
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = std::move(added);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = pre.pre_tokenizer;
  j["post_processor"] = json(post_processor(v));
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", pre.ignore_merges},
                {"vocab", std::move(vocab)},
                {"merges", std::move(merges)}};
  return j.dump(1) + "\n";
}

std::string tokenizer_config_json(const io::GGUFFile& gguf, const GgufVocab& v) {
  ojson j = ojson::object();
  j["add_bos_token"] = v.add_bos;
  j["add_eos_token"] = v.add_eos;
  ojson decoder = ojson::object();
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (!is_added(v.types[id])) continue;
    ojson t = added_token(v, id);
    t.erase("id");
    decoder[std::to_string(id)] = std::move(t);
  }
  j["added_tokens_decoder"] = std::move(decoder);
  const std::pair<const char*, std::optional<int64_t>> specials[] = {
      {"bos_token", v.bos}, {"eos_token", v.eos}, {"unk_token", v.unk}, {"pad_token", v.pad}};
  for (const auto& [key, id] : specials)
    if (id) j[key] = v.tokens[static_cast<size_t>(*id)];
  const std::string chat_template = gguf.get_string("tokenizer.chat_template", "");
  if (!chat_template.empty()) j["chat_template"] = chat_template;
  j["clean_up_tokenization_spaces"] = false;
  const std::string ctx_key = gguf.get_string("general.architecture", "") + ".context_length";
  if (gguf.has(ctx_key)) j["model_max_length"] = gguf.get_int(ctx_key);
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  return j.dump(2) + "\n";
}

}  // namespace

std::map<std::string, std::string> hf_tokenizer_files_from_gguf(const io::GGUFFile& gguf) {
  try {
    const GgufPreTokenizer pre = gguf_pre_tokenizer(gguf.get_string("tokenizer.ggml.pre", "default"));
    const GgufVocab v = read_vocab(gguf, pre.add_bos);
    return {{"tokenizer.json", tokenizer_json(gguf, v, pre)},
            {"tokenizer_config.json", tokenizer_config_json(gguf, v)}};
  } catch (const nlohmann::json::exception& e) {
    // Only dump() throws here: a token or template that is not valid UTF-8.
    fail(gguf.path(), ": cannot write the tokenizer as JSON: ", e.what());
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(gguf.path(), 0) == 0) throw;  // GGUFFile errors already name the file
    fail_like(e, gguf.path(), ": ", msg);
  }
}

}  // namespace skv::tokenizer
