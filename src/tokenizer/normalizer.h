#pragma once
// The few tokenizer.json normalizers that need no Unicode tables. Byte-level BPE models
// (GPT-2, Llama-3, SmolLM2) ship `"normalizer": null`; Unicode normalization forms (NFC, ...)
// and Lowercase are rejected at load time rather than silently skipped.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace skv::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};

// tokenizer.json "normalizer" object (not null): Sequence, Prepend, Replace (String or Regex).
std::unique_ptr<Normalizer> normalizer_from_json(const nlohmann::json& j);

}  // namespace skv::tokenizer
