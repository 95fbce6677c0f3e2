#include "tokenizer/bpe_model.h"

#include <queue>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace skv::tokenizer {
namespace {

constexpr size_t kMaxCacheEntries = 1 << 18;  // bounded so huge inputs cannot grow it without limit
constexpr size_t kMaxCachedWordLen = 256;

}  // namespace

BpeModel::BpeModel(TokenMap vocab, const std::vector<std::pair<std::string, std::string>>& merges, Options opts)
    : vocab_(std::move(vocab)), opts_(opts) {
  merges_.reserve(merges.size());
  const auto id_of = [&](const std::string& tok, size_t rank) {
    auto it = vocab_.find(tok);
    if (it == vocab_.end())
      fail("merge #", rank, " uses token ", quote_bounded(tok), " which is not in the vocabulary");
    return it->second;
  };
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    // Later duplicates overwrite earlier ones, as in HF's HashMap collect.
    merges_[key(id_of(a, rank), id_of(b, rank))] = {static_cast<int32_t>(rank), id_of(a + b, rank)};
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (opts_.ignore_merges) {
    if (auto it = vocab_.find(word); it != vocab_.end()) return out.push_back(it->second);
  }
  const bool cacheable = word.size() <= kMaxCachedWordLen;
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
  }
}

// Port of HF's Word::merge_all: always apply the lowest-ranked merge present, leftmost first,
// over a doubly linked list of symbols; stale queue entries are detected and skipped.
void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t len = utf8::char_len(word.substr(i));
    if (!len) len = 1;  // not UTF-8 (only possible without a ByteLevel stage): one byte at a time
    auto it = vocab_.find(word.substr(i, len));
    i += len;
    if (it == vocab_.end()) {
      if (!opts_.unk_id) continue;  // HF drops characters it cannot represent when there is no unk
      if (opts_.fuse_unk && last_unk) continue;
      sym.push_back({*opts_.unk_id, 0, 0, true});
      last_unk = true;
      continue;
    }
    sym.push_back({it->second, 0, 0, true});
    last_unk = false;
  }
  const int32_t n = static_cast<int32_t>(sym.size());
  for (int32_t i = 0; i < n; ++i) sym[i].prev = i - 1, sym[i].next = i + 1 < n ? i + 1 : -1;

  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> queue;
  const auto lookup = [&](int32_t pos) {
    auto it = merges_.find(key(sym[pos].id, sym[sym[pos].next].id));
    if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < n; ++i) lookup(i);

  while (!queue.empty()) {
    const Cand top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    auto it = merges_.find(key(left.id, right.id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0) lookup(left.prev);
    if (left.next >= 0) lookup(top.pos);
  }
  for (const auto& s : sym)
    if (s.alive) out.push_back(s.id);
}

}  // namespace skv::tokenizer
