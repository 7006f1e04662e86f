// Who owns which block of the KV pool. Each KV group (global layers, the
// sliding layers of one window) has its own allocator; a sequence holds one
// block table per group. Blocks are reference-counted: a full block is keyed by
// a hash of its tokens chained with the hash of the block before it (vLLM's
// prefix caching), so a new sequence whose prompt starts with the same tokens
// takes the same physical blocks instead of recomputing them. A block nobody
// references stays cached until the pool needs it back (least recently used
// first). Sliding groups hand back blocks that fell out of every query's
// window, so a long sequence holds window-many positions there.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/kv_cache.h"

namespace gemmarun {

class BlockAllocator {
 public:
  BlockAllocator(int64_t num_blocks, int64_t block_size);

  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  // Blocks that Allocate can hand out: never used, or cached and unreferenced.
  int64_t available() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
  int64_t cached() const { return static_cast<int64_t>(lru_.size()); }
  int64_t used() const { return num_blocks() - available(); }

  // A block with one reference, or -1 when none is available. Takes a
  // never-used block first, else evicts the least recently used cached one.
  int32_t Allocate();
  // The block holding exactly these tokens after the block of `parent_hash`, or -1.
  int32_t Find(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) const;
  // Adds a reference to a block (a cached one leaves the LRU list).
  void Retain(int32_t block);
  // Makes a full block findable by Find (first one wins for a hash).
  void Publish(int32_t block, uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens);
  void Release(int32_t block);

 private:
  struct Block {
    int refs = 0;
    bool published = false;
    uint64_t hash = 0, parent_hash = 0;
    std::vector<int32_t> tokens;       // of a published block, to rule out hash collisions
    std::list<int32_t>::iterator lru;  // valid while cached (refs == 0 and published)
  };
  void Unpublish(int32_t block);

  int64_t block_size_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // never used or unpublished, refs == 0
  std::list<int32_t> lru_;     // published with refs == 0, least recently used first
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

// One sequence's blocks.
struct SequenceBlocks {
  std::vector<std::vector<int32_t>> tables;  // per group: logical -> physical, -1 when not held
  std::vector<uint64_t> hashes;              // chained hash of each published logical block
  uint64_t first_parent = 0;                 // seeds the chain: an image, a bidirectional prefix
  bool cacheable = true;                     // false: never publish or look up (recurrent state)
};

class KvBlockManager {
 public:
  KvBlockManager(std::vector<KvGroup> groups, std::vector<int64_t> blocks_per_group, int64_t block_size,
                 bool prefix_caching);

  int64_t block_size() const { return block_size_; }
  const std::vector<BlockAllocator>& allocators() const { return allocators_; }
  bool prefix_caching() const { return prefix_caching_; }

  // Blocks each group needs so a sequence holding `seq` can store positions
  // [0, end) with its next query at `next_index` (windowed groups need only
  // the blocks that query and later ones can see).
  std::vector<int64_t> BlocksNeeded(const SequenceBlocks& seq, int64_t next_index, int64_t end) const;
  bool CanReserve(const SequenceBlocks& seq, int64_t next_index, int64_t end) const;
  // Allocates those blocks; false (and nothing allocated) when the pool lacks them.
  bool Reserve(SequenceBlocks& seq, int64_t next_index, int64_t end);
  // Windowed groups: hands back blocks that no query at next_index or later sees.
  void ReleaseBehindWindows(SequenceBlocks& seq, int64_t next_index);
  // Takes the longest cached prefix of `tokens` (whole blocks, leaving at least
  // one token to compute); returns its length in tokens.
  int64_t TakeCachedPrefix(SequenceBlocks& seq, std::span<const int32_t> tokens);
  // Publishes the blocks of `tokens` (the sequence so far, its K/V written) that
  // became full.
  void PublishFullBlocks(SequenceBlocks& seq, std::span<const int32_t> tokens);
  void Free(SequenceBlocks& seq);
  // Blocks a sequence of `tokens` positions needs at most in each group, were it alone.
  std::vector<int64_t> WorstCaseBlocks(int64_t tokens, int64_t chunk) const;
  // Over all groups.
  int64_t total_blocks() const;
  int64_t used_blocks() const;
  int64_t cached_blocks() const;

  SequenceBlocks NewSequence(uint64_t first_parent, bool cacheable) const;

 private:
  int64_t FirstVisibleBlock(size_t group, int64_t next_index) const;

  std::vector<KvGroup> groups_;
  std::vector<BlockAllocator> allocators_;
  int64_t block_size_;
  bool prefix_caching_;
};

// Chains a block's tokens onto its parent's hash.
uint64_t HashBlock(uint64_t parent_hash, std::span<const int32_t> tokens);
uint64_t HashBytes(uint64_t seed, const void* data, size_t bytes);

}  // namespace gemmarun
