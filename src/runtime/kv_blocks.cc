#include "runtime/kv_blocks.h"

#include <algorithm>

#include "base/check.h"

namespace gemmarun {

uint64_t HashBytes(uint64_t seed, const void* data, size_t bytes) {
  // FNV-1a over the bytes, then a splitmix finaliser: cheap, and exactness does
  // not rest on it (Find compares the tokens).
  uint64_t h = seed ^ 0xcbf29ce484222325ull;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

uint64_t HashBlock(uint64_t parent_hash, std::span<const int32_t> tokens) {
  return HashBytes(parent_hash, tokens.data(), tokens.size_bytes());
}

BlockAllocator::BlockAllocator(int64_t num_blocks, int64_t block_size)
    : block_size_(block_size), blocks_(num_blocks) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int32_t BlockAllocator::Allocate() {
  int32_t block = -1;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    block = lru_.front();
    lru_.pop_front();
    Unpublish(block);
  } else {
    return -1;
  }
  blocks_[block].refs = 1;
  return block;
}

int32_t BlockAllocator::Find(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) const {
  const auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const Block& b = blocks_[it->second];
  if (b.parent_hash != parent_hash || !std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end())) {
    return -1;
  }
  return it->second;
}

void BlockAllocator::Retain(int32_t block) {
  Block& b = blocks_[block];
  if (b.refs++ == 0 && b.published) lru_.erase(b.lru);
}

void BlockAllocator::Publish(int32_t block, uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) {
  Block& b = blocks_[block];
  if (b.published || by_hash_.count(hash) != 0) return;
  b.published = true;
  b.hash = hash;
  b.parent_hash = parent_hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, block);
}

void BlockAllocator::Unpublish(int32_t block) {
  Block& b = blocks_[block];
  if (!b.published) return;
  by_hash_.erase(b.hash);
  b.published = false;
  b.tokens.clear();
}

void BlockAllocator::Release(int32_t block) {
  Block& b = blocks_[block];
  GR_CHECK(b.refs > 0) << "block " << block << " released more often than taken";
  if (--b.refs > 0) return;
  if (b.published) {
    b.lru = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
}

KvBlockManager::KvBlockManager(std::vector<KvGroup> groups, std::vector<int64_t> blocks_per_group,
                               int64_t block_size, bool prefix_caching)
    : groups_(std::move(groups)), block_size_(block_size), prefix_caching_(prefix_caching) {
  GR_CHECK(groups_.size() == blocks_per_group.size());
  for (int64_t n : blocks_per_group) allocators_.emplace_back(n, block_size);
}

SequenceBlocks KvBlockManager::NewSequence(uint64_t first_parent, bool cacheable) const {
  SequenceBlocks seq;
  seq.tables.resize(groups_.size());
  seq.first_parent = first_parent;
  seq.cacheable = cacheable && prefix_caching_;
  return seq;
}

int64_t KvBlockManager::FirstVisibleBlock(size_t group, int64_t next_index) const {
  const int64_t window = groups_[group].window;
  if (window <= 0) return 0;
  return std::max<int64_t>(0, next_index - window + 1) / block_size_;
}

std::vector<int64_t> KvBlockManager::BlocksNeeded(const SequenceBlocks& seq, int64_t next_index,
                                                  int64_t end) const {
  std::vector<int64_t> needed(groups_.size(), 0);
  const int64_t last_block = (end + block_size_ - 1) / block_size_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::vector<int32_t>& table = seq.tables[g];
    for (int64_t b = FirstVisibleBlock(g, next_index); b < last_block; ++b) {
      if (b >= static_cast<int64_t>(table.size()) || table[b] < 0) ++needed[g];
    }
  }
  return needed;
}

bool KvBlockManager::CanReserve(const SequenceBlocks& seq, int64_t next_index, int64_t end) const {
  const std::vector<int64_t> needed = BlocksNeeded(seq, next_index, end);
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (needed[g] > allocators_[g].available()) return false;
  }
  return true;
}

bool KvBlockManager::Reserve(SequenceBlocks& seq, int64_t next_index, int64_t end) {
  if (!CanReserve(seq, next_index, end)) return false;
  const int64_t last_block = (end + block_size_ - 1) / block_size_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::vector<int32_t>& table = seq.tables[g];
    if (static_cast<int64_t>(table.size()) < last_block) table.resize(last_block, -1);
    for (int64_t b = FirstVisibleBlock(g, next_index); b < last_block; ++b) {
      if (table[b] < 0) table[b] = allocators_[g].Allocate();
      GR_CHECK(table[b] >= 0);
    }
  }
  return true;
}

void KvBlockManager::ReleaseBehindWindows(SequenceBlocks& seq, int64_t next_index) {
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::vector<int32_t>& table = seq.tables[g];
    const int64_t first = std::min<int64_t>(FirstVisibleBlock(g, next_index), table.size());
    for (int64_t b = 0; b < first; ++b) {
      if (table[b] < 0) continue;
      allocators_[g].Release(table[b]);
      table[b] = -1;
    }
  }
}

int64_t KvBlockManager::TakeCachedPrefix(SequenceBlocks& seq, std::span<const int32_t> tokens) {
  if (!seq.cacheable || tokens.size() < 2) return 0;
  const int64_t candidates = (static_cast<int64_t>(tokens.size()) - 1) / block_size_;
  std::vector<uint64_t> hashes(candidates);
  uint64_t parent = seq.first_parent;
  for (int64_t b = 0; b < candidates; ++b) {
    parent = hashes[b] = HashBlock(parent, tokens.subspan(b * block_size_, block_size_));
  }
  const auto parent_of = [&](int64_t b) { return b == 0 ? seq.first_parent : hashes[b - 1]; };
  const auto block_tokens = [&](int64_t b) { return tokens.subspan(b * block_size_, block_size_); };
  // found[g][b]: the cached block of logical block b in group g, or -1.
  std::vector<std::vector<int32_t>> found(groups_.size(), std::vector<int32_t>(candidates, -1));
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (int64_t b = 0; b < candidates; ++b) found[g][b] = allocators_[g].Find(hashes[b], parent_of(b), block_tokens(b));
  }
  // The longest m whose blocks every group can supply: global groups all of
  // 0..m-1, windowed groups those a query at m * block_size still sees.
  for (int64_t m = candidates; m > 0; --m) {
    const int64_t next_index = m * block_size_;
    bool complete = true;
    for (size_t g = 0; g < groups_.size() && complete; ++g) {
      for (int64_t b = FirstVisibleBlock(g, next_index); b < m && complete; ++b) complete = found[g][b] >= 0;
    }
    if (!complete) continue;
    for (size_t g = 0; g < groups_.size(); ++g) {
      std::vector<int32_t>& table = seq.tables[g];
      table.assign(m, -1);
      for (int64_t b = FirstVisibleBlock(g, next_index); b < m; ++b) {
        table[b] = found[g][b];
        allocators_[g].Retain(table[b]);
      }
    }
    seq.hashes.assign(hashes.begin(), hashes.begin() + m);
    return next_index;
  }
  return 0;
}

void KvBlockManager::PublishFullBlocks(SequenceBlocks& seq, std::span<const int32_t> tokens) {
  if (!seq.cacheable) return;
  const int64_t full = static_cast<int64_t>(tokens.size()) / block_size_;
  for (int64_t b = static_cast<int64_t>(seq.hashes.size()); b < full; ++b) {
    const uint64_t parent = b == 0 ? seq.first_parent : seq.hashes[b - 1];
    const std::span<const int32_t> block_tokens = tokens.subspan(b * block_size_, block_size_);
    const uint64_t hash = HashBlock(parent, block_tokens);
    seq.hashes.push_back(hash);
    for (size_t g = 0; g < groups_.size(); ++g) {
      const std::vector<int32_t>& table = seq.tables[g];
      if (b < static_cast<int64_t>(table.size()) && table[b] >= 0) {
        allocators_[g].Publish(table[b], hash, parent, block_tokens);
      }
    }
  }
}

void KvBlockManager::Free(SequenceBlocks& seq) {
  for (size_t g = 0; g < seq.tables.size(); ++g) {  // none yet for a sequence never admitted
    for (int32_t block : seq.tables[g]) {
      if (block >= 0) allocators_[g].Release(block);
    }
    seq.tables[g].clear();
  }
  seq.hashes.clear();
}

std::vector<int64_t> KvBlockManager::WorstCaseBlocks(int64_t tokens, int64_t chunk) const {
  std::vector<int64_t> blocks(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const int64_t window = groups_[g].window;
    if (window <= 0) {
      blocks[g] = (tokens + block_size_ - 1) / block_size_;
    } else {
      // A window plus a chunk, which can straddle one more block boundary than its length.
      const int64_t positions = std::min<int64_t>(tokens, window + chunk - 1);
      blocks[g] = std::min((tokens + block_size_ - 1) / block_size_, (positions + block_size_ - 1) / block_size_ + 1);
    }
  }
  return blocks;
}

int64_t KvBlockManager::total_blocks() const {
  int64_t total = 0;
  for (const auto& a : allocators_) total += a.num_blocks();
  return total;
}

int64_t KvBlockManager::used_blocks() const {
  int64_t used = 0;
  for (const auto& a : allocators_) used += a.used();
  return used;
}

int64_t KvBlockManager::cached_blocks() const {
  int64_t cached = 0;
  for (const auto& a : allocators_) cached += a.cached();
  return cached;
}

}  // namespace gemmarun
