#include "tokenizer/gguf_pre_tokenizer.h"

#include "core/error.h"
#include "tokenizer/pretokenizer.h"

namespace skv::tokenizer {

namespace {

using nlohmann::json;

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

json sequence(std::vector<json> stages) { return {{"type", "Sequence"}, {"pretokenizers", std::move(stages)}}; }

}  // namespace

GgufPreTokenizer gguf_pre_tokenizer(const std::string& name) {
  GgufPreTokenizer c;
  if (name == "default" || name == "gpt2" || name == "gpt-2" || name == "mpt" || name == "olmo" || name == "jais") {
    c.pre_tokenizer = byte_level(true);
  } else if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") {
    // Llama-3: Split(regex, Isolated) + ByteLevel(use_regex=false), ignore_merges, BOS.
    const json split = {
        {"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"}, {"invert", false}};
    c.pre_tokenizer = sequence({split, byte_level(false)});
    c.ignore_merges = true;
    c.add_bos = true;
  } else if (name == "smollm" || name == "starcoder" || name == "refact" || name == "command-r" ||
             name == "codeshell" || name == "exaone" || name == "minerva") {
    // llama.cpp splits off every \p{N} character, then applies the GPT-2 regex: the same as
    // HF SmolLM2's Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)].
    const json digits = {{"type", "Digits"}, {"individual_digits", true}};
    c.pre_tokenizer = sequence({digits, byte_level(true)});
  } else {
    fail("unsupported tokenizer.ggml.pre '", name,
         "' (supported: default, gpt2, llama-bpe, llama3, smollm, starcoder, refact, command-r, codeshell, ",
         "exaone, minerva, mpt, olmo, jais)");
  }
  return c;
}

}  // namespace skv::tokenizer
