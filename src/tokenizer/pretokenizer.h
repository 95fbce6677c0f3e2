#pragma once
// Pre-tokenizers with Hugging Face `tokenizers` semantics: every stage splits each piece the
// previous stage produced; empty pieces are dropped. After a ByteLevel stage the pieces are
// spelled in the byte-level alphabet (see byte_level.h), ready for the BPE vocabulary.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace skv::tokenizer {

using Pieces = std::vector<std::string>;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(Pieces& pieces) const = 0;
  // True if the output is byte-level mapped (the chain contains a ByteLevel stage).
  virtual bool maps_bytes() const { return false; }
};

// HF SplitDelimiterBehavior: what happens to the matched delimiters.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Regex patterns used by the GPT-2 ByteLevel pre-tokenizer and by Llama-3's Split stage.
inline constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::unique_ptr<PreTokenizer> make_byte_level_pre(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_split_pre(const std::string& regex, SplitBehavior behavior, bool invert);
std::unique_ptr<PreTokenizer> make_digits_pre(bool individual_digits);
std::unique_ptr<PreTokenizer> make_sequence_pre(std::vector<std::unique_ptr<PreTokenizer>> stages);

// tokenizer.json "pre_tokenizer" object (not null). Throws skv::Error naming unsupported types.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j);

}  // namespace skv::tokenizer
