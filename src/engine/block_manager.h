#pragma once
// Block accounting of the paged KV cache (vLLM's block manager, nano-vllm's BlockManager): which
// pool blocks each sequence owns, reference counts for blocks shared through the prefix cache,
// and the prefix cache itself. Storage lives in engine/kv_pool.h; this file only counts.
//
// Prefix caching: once a block is full, it is named by a hash chained over every token id from
// the start of the sequence to the end of the block, so equal names mean equal prefixes (the
// ids are compared too, so a hash collision can never hand out a wrong block). A block whose
// last user finishes keeps its contents and its name on the free list; a later prompt with the
// same prefix takes it back instead of recomputing it, until the block is evicted to hold new
// contents (least recently freed first).
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <vector>

namespace skv::engine {

// One sequence's pages.
struct BlockTable {
  std::vector<int32_t> blocks;
  std::vector<uint64_t> hashes;  // chain hash of each full block registered so far
  int64_t cached_tokens = 0;     // prompt tokens found in the prefix cache at allocation
};

class BlockManager {
 public:
  BlockManager(int64_t num_blocks, int64_t block_size, bool prefix_caching);

  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  int64_t block_size() const { return block_size_; }
  int64_t num_free() const { return num_free_; }
  bool prefix_caching() const { return prefix_caching_; }
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

  // First allocation of a sequence whose tokens are `tokens`: with use_cache, takes the longest
  // cached prefix of full blocks (never the block holding the last token, whose logits must be
  // computed), then fresh blocks for up to `max_new` more positions (all of tokens at most).
  // Returns false, changing nothing, when the free blocks do not suffice. t.cached_tokens says
  // how many positions need no computing; t.blocks covers the rest that was granted.
  // At most max_cached positions come from the cache.
  bool allocate(BlockTable& t, const std::vector<int32_t>& tokens, int64_t max_new, bool use_cache = true,
                int64_t max_cached = std::numeric_limits<int64_t>::max());
  // Grows an allocated table to cover positions [0, n); false (nothing changed) when out of blocks.
  bool grow(BlockTable& t, int64_t n);
  // Blocks grow() would need.
  int64_t blocks_needed(const BlockTable& t, int64_t n) const;
  // Names the full blocks among positions [0, computed) so later prompts can share them.
  void commit(BlockTable& t, const std::vector<int32_t>& tokens, int64_t computed);
  // Releases the table's blocks (they stay cached until evicted) and clears it.
  void release(BlockTable& t);

  // Counters for metrics: prefix-cache queries and hits, in tokens.
  int64_t queried_tokens() const { return queried_; }
  int64_t hit_tokens() const { return hit_; }

 private:
  struct Block {
    int32_t refs = 0;
    bool named = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;   // the block's ids, to verify a hash hit
    int32_t prev = -1, next = -1;  // free-list links (least recently freed at the head)
    bool on_free_list = false;
  };
  uint64_t chain(uint64_t prev, const int32_t* ids) const;
  int32_t take_free();  // evicts the head of the free list
  void unlink(int32_t b);
  void push_free(int32_t b);

  int64_t block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  int32_t head_ = -1, tail_ = -1;
  int64_t num_free_ = 0;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t queried_ = 0, hit_ = 0;
};

}  // namespace skv::engine
