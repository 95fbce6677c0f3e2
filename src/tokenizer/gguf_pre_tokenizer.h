#pragma once
// GGUF stores only a pre-tokenizer name (`tokenizer.ggml.pre`); llama.cpp implements each name
// with a hard-coded regex list. This maps the names to the Hugging Face tokenizer.json
// pre-tokenizers those lists implement, in one place, so the GGUF tokenizer and the
// tokenizer.json that `swiftkv convert` writes for GGUF input cannot disagree.
#include <nlohmann/json.hpp>
#include <string>

namespace skv::tokenizer {

struct GgufPreTokenizer {
  nlohmann::json pre_tokenizer;  // a tokenizer.json "pre_tokenizer" object
  bool ignore_merges = false;    // tokenizer.json model.ignore_merges
  bool add_bos = false;          // llama.cpp's default when tokenizer.ggml.add_bos_token is absent
};

// Throws skv::Error listing the supported names for an unknown one.
GgufPreTokenizer gguf_pre_tokenizer(const std::string& name);

}  // namespace skv::tokenizer
