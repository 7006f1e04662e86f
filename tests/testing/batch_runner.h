// Drives Model::Forward directly for tests: a block pool for a few sequences,
// each fed any pieces of tokens, several sequences per forward pass, with the
// logits of every fed token returned per sequence.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/engine_core.h"
#include "runtime/kv_blocks.h"

namespace gemmarun::testing {

class BatchRunner {
 public:
  struct Piece {
    int sequence = 0;
    std::vector<int32_t> tokens;
    int64_t prefix_end = 0;             // the sequence's bidirectional prefix (PaliGemma)
    const TensorView* image = nullptr;  // features of its image tokens in this piece
  };

  // The pool lives on `memory` (the model's backend's device).
  BatchRunner(const Model& model, int max_sequences, int64_t max_tokens, DType cache_type,
              int64_t max_batch_tokens = 512, DeviceMemory& memory = HostMemory())
      : model_(model),
        shape_(ShapeFor(model.config(), max_sequences, max_tokens, cache_type, max_batch_tokens)),
        blocks_(KvGroups(model.config()), shape_.blocks_per_group, kKvBlockSize, false),
        lengths_(max_sequences, 0),
        tokens_(max_sequences) {
    auto pool = KvPool::Create(model.config(), shape_, memory);
    EXPECT_TRUE(pool.ok()) << pool.status().message();
    pool_ = std::make_unique<KvPool>(std::move(*pool));
    for (int s = 0; s < max_sequences; ++s) {
      sequences_.push_back(blocks_.NewSequence(0, false));
      pool_->ResetSlot(s);
    }
    auto ws = model.NewWorkspace(max_batch_tokens, max_batch_tokens);
    EXPECT_TRUE(ws.ok()) << ws.status().message();
    workspace_ = std::move(*ws);
  }

  // One forward pass over the pieces; returns, per piece, the logits of each of
  // its tokens ([tokens, vocab] flattened).
  std::vector<std::vector<float>> Step(const std::vector<Piece>& pieces) {
    std::vector<SequenceChunk> chunks;
    for (const Piece& p : pieces) {
      SequenceBlocks& seq = sequences_[p.sequence];
      const int64_t first = lengths_[p.sequence];
      const int64_t end = first + static_cast<int64_t>(p.tokens.size());
      blocks_.ReleaseBehindWindows(seq, first);
      EXPECT_TRUE(blocks_.Reserve(seq, first, end));
      std::vector<int32_t>& all = tokens_[p.sequence];
      all.insert(all.end(), p.tokens.begin(), p.tokens.end());
    }
    for (const Piece& p : pieces) {
      SequenceChunk chunk;
      const int64_t first = lengths_[p.sequence];
      chunk.tokens = std::span<const int32_t>(tokens_[p.sequence]).subspan(first, p.tokens.size());
      chunk.first_index = first;
      for (const auto& table : sequences_[p.sequence].tables) chunk.block_tables.emplace_back(table);
      chunk.recurrent_slot = p.sequence;
      chunk.prefix_end = p.prefix_end;
      chunk.image_features = p.image;
      chunk.logits = SequenceChunk::Logits::kAll;
      chunks.push_back(chunk);
    }
    auto logits = model_.Forward(chunks, *pool_, *workspace_);
    EXPECT_TRUE(logits.ok()) << logits.status().message();
    std::vector<std::vector<float>> out;
    if (!logits.ok()) return out;
    const int64_t vocab = logits->shape.cols();
    int64_t row = 0;
    for (const Piece& p : pieces) {
      const float* begin = reinterpret_cast<const float*>(logits->row(row));
      out.emplace_back(begin, begin + p.tokens.size() * vocab);
      row += static_cast<int64_t>(p.tokens.size());
      lengths_[p.sequence] += static_cast<int64_t>(p.tokens.size());
    }
    return out;
  }

  // Feeds one sequence its tokens `chunk` at a time; all logits rows.
  std::vector<float> Feed(int sequence, const std::vector<int32_t>& tokens, size_t chunk) {
    std::vector<float> all;
    for (size_t begin = 0; begin < tokens.size(); begin += chunk) {
      const size_t n = std::min(chunk, tokens.size() - begin);
      auto out = Step({Piece{sequence, std::vector<int32_t>(tokens.begin() + begin, tokens.begin() + begin + n)}});
      if (out.empty()) return all;
      all.insert(all.end(), out[0].begin(), out[0].end());
    }
    return all;
  }

  static KvPoolShape ShapeFor(const ModelConfig& config, int max_sequences, int64_t max_tokens, DType cache_type,
                              int64_t max_batch_tokens) {
    const std::vector<KvGroup> groups = KvGroups(config);
    KvBlockManager probe(groups, std::vector<int64_t>(groups.size(), 0), kKvBlockSize, false);
    KvPoolShape shape;
    shape.dtype = cache_type;
    shape.block_size = kKvBlockSize;
    shape.blocks_per_group = probe.WorstCaseBlocks(max_tokens, max_batch_tokens);
    for (int64_t& b : shape.blocks_per_group) b *= max_sequences;
    shape.recurrent_slots = max_sequences;
    return shape;
  }

  size_t pool_bytes() const { return pool_->bytes(); }
  const KvPool& pool() const { return *pool_; }

 private:
  const Model& model_;
  KvPoolShape shape_;
  std::unique_ptr<KvPool> pool_;
  KvBlockManager blocks_;
  std::vector<SequenceBlocks> sequences_;
  std::vector<int64_t> lengths_;
  std::vector<std::vector<int32_t>> tokens_;
  std::unique_ptr<Workspace> workspace_;
};

}  // namespace gemmarun::testing
