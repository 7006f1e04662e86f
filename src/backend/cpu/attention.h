// Attention over the paged KV cache, and the cache writes (WriteKv), for the
// CPU backend. Keys and values stay in the cache's dtype (f32, f16, bf16,
// q8_0) and are converted in registers as they are read.
//
// Work is cut into items of one sequence and one KV head, so each key and value
// row is read once for all the query heads that share it (GQA/MQA):
//  - decode (a sequence with at most kDecodeMaxRows rows): the item's queries
//    are all its rows x heads; the context is cut at multiples of split_keys
//    (flash-decoding), one item per piece, and the partial (max, sum, acc)
//    results are merged afterwards;
//  - prefill: one item per block of query_rows rows, over all the keys its
//    rows see.
// Inside an item, keys go in tiles of key_tile (flash attention): scores of a
// tile, an online softmax update, the weighted values; a query only touches
// the keys of a tile that it sees, and skips a tile it sees none of. No buffer
// grows with the context.
//
// Batch invariance: every cut (pieces, tiles, query blocks) is at a fixed
// multiple of a sequence index or row of the sequence itself, never of the
// call or the thread count, so a sequence's output is bit-identical alone, in
// any batch and with any number of threads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ops/backend.h"

namespace gemmarun {

class ThreadPool;

namespace cpu {

struct AttentionTileSizes {
  int64_t query_rows = 16;   // rows of a sequence per prefill item
  int64_t key_tile = 64;     // keys per online-softmax step
  int64_t split_keys = 1024; // decode: the context is cut at multiples of this (a multiple of key_tile)
};
inline constexpr AttentionTileSizes kAttentionTileSizes{};
// Sequences with at most this many rows in a call take the decode path.
inline constexpr int64_t kDecodeMaxRows = 4;

// Test hook: smaller tiles make small inputs cross many tiles. Not thread-safe;
// call before the backend runs. Pass kAttentionTileSizes to restore.
void SetAttentionTileSizesForTest(const AttentionTileSizes& sizes);

// One work item: rows [row_begin, row_end) of a sequence (relative to its
// first row), one KV head, keys [key_begin, key_end) (sequence indices).
struct AttentionItem {
  int32_t sequence = 0;
  int32_t kv_head = 0;
  int64_t row_begin = 0, row_end = 0;
  int64_t key_begin = 0, key_end = 0;
  int64_t partial = -1;  // decode: offset of its (max, sum, acc) in the partials; -1: write out directly
};

// A decode sequence x KV head whose pieces are merged into the output.
struct AttentionMerge {
  int32_t sequence = 0;
  int32_t kv_head = 0;
  int64_t first_item = 0, num_items = 0;
};

// Buffers reused across calls: no allocation once the largest call was seen.
struct AttentionWorkspace {
  explicit AttentionWorkspace(int num_threads) : thread_scratch(num_threads), thread_rows(num_threads) {}
  std::vector<AttentionItem> items;
  std::vector<AttentionMerge> merges;
  std::vector<float> partials;
  std::vector<std::vector<float>> thread_scratch;
  std::vector<std::vector<const uint8_t*>> thread_rows;
};

void Attention(ThreadPool& pool, AttentionWorkspace& workspace, const AttentionArgs& args);
void WriteKv(ThreadPool& pool, const TensorView& k, const TensorView& v, std::span<const int64_t> slots,
             const KvCacheView& cache);

}  // namespace cpu
}  // namespace gemmarun
