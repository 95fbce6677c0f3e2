#include "engine/block_manager.h"

#include <algorithm>

#include "core/error.h"

namespace skv::engine {

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size, bool prefix_caching)
    : block_size_(block_size), prefix_caching_(prefix_caching) {
  if (num_blocks <= 0) fail_resource("the KV cache has no blocks");
  if (block_size <= 0) fail("block size must be positive, got ", block_size);
  if (num_blocks > INT32_MAX) fail_resource("too many KV blocks: ", num_blocks);
  blocks_.resize(num_blocks);
  for (int32_t b = 0; b < static_cast<int32_t>(num_blocks); ++b) push_free(b);
}

// splitmix64-style mixing of every id into the previous block's hash: a change anywhere in
// the prefix changes every later name.
uint64_t BlockManager::chain(uint64_t prev, const int32_t* ids) const {
  uint64_t h = prev ^ 0x9e3779b97f4a7c15ULL;
  for (int64_t i = 0; i < block_size_; ++i) {
    h ^= static_cast<uint32_t>(ids[i]);
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
  }
  return h;
}

void BlockManager::unlink(int32_t b) {
  Block& k = blocks_[b];
  if (!k.on_free_list) return;
  (k.prev >= 0 ? blocks_[k.prev].next : head_) = k.next;
  (k.next >= 0 ? blocks_[k.next].prev : tail_) = k.prev;
  k.prev = k.next = -1;
  k.on_free_list = false;
  --num_free_;
}

void BlockManager::push_free(int32_t b) {
  Block& k = blocks_[b];
  k.prev = tail_;
  k.next = -1;
  (tail_ >= 0 ? blocks_[tail_].next : head_) = b;
  tail_ = b;
  k.on_free_list = true;
  ++num_free_;
}

int32_t BlockManager::take_free() {
  if (head_ < 0) fail_internal("KV block pool: no free block");
  const int32_t b = head_;
  unlink(b);
  Block& k = blocks_[b];
  if (k.named) {  // evicted: its old contents are about to be overwritten
    auto it = by_hash_.find(k.hash);
    if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
    k.named = false;
    k.tokens.clear();
  }
  k.refs = 1;
  return b;
}

bool BlockManager::allocate(BlockTable& t, const std::vector<int32_t>& tokens, int64_t max_new, bool use_cache,
                            int64_t max_cached) {
  if (!t.blocks.empty()) fail_internal("KV blocks: sequence allocated twice");
  const int64_t ntok = static_cast<int64_t>(tokens.size());
  std::vector<int32_t> hit;
  std::vector<uint64_t> hit_hashes;
  if (prefix_caching_ && use_cache) {
    // Full blocks strictly before the last token: its logits have to be computed.
    const int64_t full = std::max<int64_t>(0, std::min(ntok - 1, max_cached) / block_size_);
    uint64_t h = 0;
    for (int64_t i = 0; i < full; ++i) {
      h = chain(h, tokens.data() + i * block_size_);
      auto it = by_hash_.find(h);
      if (it == by_hash_.end()) break;
      const Block& k = blocks_[it->second];
      if (!std::equal(k.tokens.begin(), k.tokens.end(), tokens.begin() + i * block_size_)) break;
      hit.push_back(it->second);
      hit_hashes.push_back(h);
    }
    queried_ += ntok;
  }
  const int64_t cached = static_cast<int64_t>(hit.size()) * block_size_;
  const int64_t n = std::min(ntok, cached + max_new);
  const int64_t need = blocks_for(n) - static_cast<int64_t>(hit.size());
  // Hit blocks on the free list stop being free when taken, so they count against the budget.
  int64_t hit_free = 0;
  for (int32_t b : hit) hit_free += blocks_[b].on_free_list ? 1 : 0;
  if (std::max<int64_t>(0, need) + hit_free > num_free_) {
    if (prefix_caching_ && use_cache) queried_ -= ntok;  // not admitted: it will ask again
    return false;
  }
  for (int32_t b : hit) {
    unlink(b);
    ++blocks_[b].refs;
  }
  t.blocks = hit;
  t.hashes = hit_hashes;
  t.cached_tokens = cached;
  hit_ += t.cached_tokens;
  for (int64_t i = 0; i < need; ++i) t.blocks.push_back(take_free());
  return true;
}

int64_t BlockManager::blocks_needed(const BlockTable& t, int64_t n) const {
  return std::max<int64_t>(0, blocks_for(n) - static_cast<int64_t>(t.blocks.size()));
}

bool BlockManager::grow(BlockTable& t, int64_t n) {
  const int64_t need = blocks_needed(t, n);
  if (need > num_free_) return false;
  for (int64_t i = 0; i < need; ++i) t.blocks.push_back(take_free());
  return true;
}

void BlockManager::commit(BlockTable& t, const std::vector<int32_t>& tokens, int64_t computed) {
  if (!prefix_caching_) return;
  const int64_t full = std::min<int64_t>(computed / block_size_, static_cast<int64_t>(t.blocks.size()));
  for (int64_t i = static_cast<int64_t>(t.hashes.size()); i < full; ++i) {
    const uint64_t h = chain(i ? t.hashes[i - 1] : 0, tokens.data() + i * block_size_);
    t.hashes.push_back(h);
    Block& k = blocks_[t.blocks[i]];
    if (k.named) continue;  // a shared block from the cache, named already
    // An equal block computed by another sequence keeps the name; this one stays private.
    if (!by_hash_.emplace(h, t.blocks[i]).second) continue;
    k.named = true;
    k.hash = h;
    k.tokens.assign(tokens.begin() + i * block_size_, tokens.begin() + (i + 1) * block_size_);
  }
}

void BlockManager::release(BlockTable& t) {
  // Last block first: the tail of a prefix is evicted before its head, which more prompts share.
  for (auto it = t.blocks.rbegin(); it != t.blocks.rend(); ++it) {
    Block& k = blocks_[*it];
    if (k.refs <= 0) fail_internal("KV blocks: block ", *it, " released twice");
    if (--k.refs == 0) {
      if (!prefix_caching_ || !k.named) {
        // Unnamed contents are useless to anyone else: reuse these blocks first.
        k.prev = -1;
        k.next = head_;
        (head_ >= 0 ? blocks_[head_].prev : tail_) = *it;
        head_ = *it;
        k.on_free_list = true;
        ++num_free_;
      } else {
        push_free(*it);
      }
    }
  }
  t.blocks.clear();
  t.hashes.clear();
  t.cached_tokens = 0;
}

}  // namespace skv::engine
