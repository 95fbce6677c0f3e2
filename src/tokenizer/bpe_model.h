#pragma once
// The BPE model proper: vocabulary, ranked merges, and the merge loop applied to one
// pre-token (already spelled in the byte-level alphabet). Results are cached per pre-token
// because natural text repeats the same words over and over.
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace skv::tokenizer {

struct StringHash {
  using is_transparent = void;  // lets unordered_map::find take a string_view without a copy
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  struct Options {
    bool ignore_merges = false;     // Llama-3: a pre-token that is itself in the vocab is emitted whole
    std::optional<int32_t> unk_id;  // for characters missing from the vocab (else they are dropped)
    bool fuse_unk = false;
  };
  // vocab: token string -> id. merges: pairs in rank order; both halves and their concatenation
  // must be in the vocab (throws skv::Error naming the merge otherwise).
  BpeModel(TokenMap vocab, const std::vector<std::pair<std::string, std::string>>& merges, Options opts);

  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  const TokenMap& vocab() const { return vocab_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

  TokenMap vocab_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left,right) -> (rank, merged id)
  Options opts_;

  // encode() is const and may be called from several threads, hence the mutex.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace skv::tokenizer
