#pragma once
// The byte-level BPE Tokenizer: added-token splitting -> normalizer -> pre-tokenizer -> BPE
// -> post-processor ids, in the order HF `tokenizers` applies them. Built either from
// tokenizer.json (tokenizer_json.cpp) or from GGUF metadata (tokenizer_gguf.cpp).
#include <memory>
#include <unordered_set>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace skv::tokenizer {

class BpeTokenizer final : public Tokenizer {
 public:
  struct Parts {
    TokenMap vocab;  // the BPE model's vocabulary
    std::vector<std::pair<std::string, std::string>> merges;
    BpeModel::Options model_opts;
    std::vector<AddedToken> added;           // may reuse ids from `vocab`
    std::unique_ptr<Normalizer> normalizer;  // null: none
    std::unique_ptr<PreTokenizer> pre;       // required, must contain a ByteLevel stage
    std::vector<int32_t> prefix, suffix;     // post-processor ids around the text (add_special)
    std::optional<int32_t> bos, eos, unk, pad;
    std::string chat_template;
    // Tokens whose text decodes verbatim instead of through the byte-level table (GGUF control
    // and user-defined tokens, as llama.cpp does). Otherwise HF's rule applies: byte-level
    // decode if every character is in the table, else the raw text.
    std::unordered_set<int32_t> raw_text_ids;
  };
  explicit BpeTokenizer(Parts parts);  // throws skv::Error on inconsistent parts

  std::vector<int32_t> encode(std::string_view text, bool add_special = true, bool parse_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  std::string token_bytes(int32_t id) const override;
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view token_text) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  bool is_special(int32_t id) const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> unk_id() const override { return unk_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  bool adds_bos() const override { return bos_ && !prefix_.empty() && prefix_.front() == *bos_; }
  std::string chat_template() const override { return chat_template_; }

  // Ids added around the text when add_special is true (post-processor / add_bos_token).
  const std::vector<int32_t>& prefix_ids() const { return prefix_; }
  const std::vector<int32_t>& suffix_ids() const { return suffix_; }

 private:
  void check_id(int32_t id) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  BpeModel model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  AddedTokenMatcher raw_added_, normalized_added_;
  TokenMap added_by_text_;
  std::vector<std::string> id_to_token_;  // "" for unused ids
  std::vector<std::string> id_to_bytes_;  // decoded bytes per id
  std::vector<uint8_t> special_;          // 1 for special added tokens
  std::vector<int32_t> prefix_, suffix_;
  std::optional<int32_t> bos_, eos_, unk_, pad_;
  std::string chat_template_;
};

}  // namespace skv::tokenizer
