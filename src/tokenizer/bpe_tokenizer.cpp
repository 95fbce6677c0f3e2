#include "tokenizer/bpe_tokenizer.h"

#include "core/error.h"
#include "tokenizer/byte_level.h"

namespace skv::tokenizer {
namespace {

std::vector<AddedToken> select(const std::vector<AddedToken>& all, bool normalized) {
  std::vector<AddedToken> out;
  for (const auto& t : all)
    if (t.normalized == normalized) out.push_back(t);
  return out;
}

}  // namespace

BpeTokenizer::BpeTokenizer(Parts p)
    : model_(std::move(p.vocab), p.merges, p.model_opts),
      normalizer_(std::move(p.normalizer)),
      pre_(std::move(p.pre)),
      raw_added_(select(p.added, false)),
      normalized_added_(select(p.added, true)),
      prefix_(std::move(p.prefix)),
      suffix_(std::move(p.suffix)),
      bos_(p.bos),
      eos_(p.eos),
      unk_(p.unk),
      pad_(p.pad),
      chat_template_(std::move(p.chat_template)) {
  if (!pre_ || !pre_->maps_bytes())
    fail("only byte-level BPE tokenizers are supported (the pre_tokenizer has no ByteLevel stage)");
  int32_t max_id = -1;
  for (const auto& [tok, id] : model_.vocab()) {
    if (id < 0) fail("negative token id ", id, " for ", quote_bounded(tok));
    max_id = std::max(max_id, id);
  }
  for (const auto& t : p.added) {
    if (t.id < 0) fail("added token ", quote_bounded(t.content), " has no valid id");
    max_id = std::max(max_id, t.id);
  }
  id_to_token_.assign(max_id + 1, "");
  special_.assign(max_id + 1, 0);
  for (const auto& [tok, id] : model_.vocab()) id_to_token_[id] = tok;
  for (const auto& t : p.added) {
    id_to_token_[t.id] = t.content;
    special_[t.id] = t.special;
    added_by_text_.emplace(t.content, t.id);
  }
  id_to_bytes_.resize(id_to_token_.size());
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    const std::string& tok = id_to_token_[id];
    if (p.raw_text_ids.count(static_cast<int32_t>(id)) || !byte_level::decode(tok, id_to_bytes_[id]))
      id_to_bytes_[id] = tok;
  }
  for (auto* opt : {&bos_, &eos_, &unk_, &pad_})
    if (*opt && (**opt < 0 || **opt > max_id)) fail("special token id ", **opt, " is outside the vocabulary");
  for (int32_t id : prefix_) check_id(id);
  for (int32_t id : suffix_) check_id(id);
}

void BpeTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id ", id, " is outside the vocabulary (size ", vocab_size(), ")");
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  Pieces pieces{std::string(text)};
  pre_->apply(pieces);
  for (const auto& p : pieces) model_.encode_word(p, out);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> ids;
  if (add_special) ids = prefix_;
  // Tokens with normalized=false are found in the raw text, the others after normalization.
  for (const auto& seg : raw_added_.split(text, parse_special)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string_view piece = text.substr(seg.begin, seg.end - seg.begin);
    std::string normalized;
    if (normalizer_) {
      normalized.assign(piece);
      normalizer_->apply(normalized);
      piece = normalized;
    }
    for (const auto& sub : normalized_added_.split(piece, parse_special)) {
      if (sub.id >= 0)
        ids.push_back(sub.id);
      else
        encode_plain(piece.substr(sub.begin, sub.end - sub.begin), ids);
    }
  }
  if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    check_id(id);
    if (skip_special && special_[id]) continue;
    out += id_to_bytes_[id];
  }
  return out;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  check_id(id);
  return id_to_bytes_[id];
}

std::string BpeTokenizer::token_text(int32_t id) const {
  check_id(id);
  return id_to_token_[id];
}

std::optional<int32_t> BpeTokenizer::token_id(std::string_view text) const {
  if (auto it = added_by_text_.find(text); it != added_by_text_.end()) return it->second;
  if (auto it = model_.vocab().find(text); it != model_.vocab().end()) return it->second;
  return std::nullopt;
}

bool BpeTokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && special_[id]; }

}  // namespace skv::tokenizer
