// The two BPE merge loops: HF's (merge ranks) and SentencePiece's (piece
// scores). Both keep the word as a linked list of symbols and a heap of
// candidate merges that is invalidated lazily, so a word of n characters
// costs O(n log n) however long it is (one 1 MB "word" is routine: Gemma
// does not pre-tokenize).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/model.h"

namespace gemmarun::tokenizer_internal {

// Buffers reused across the words of one Encode call.
struct BpeScratch {
  struct Symbol {
    int32_t id;      // token id (kMergeRanks; literal id when frozen)
    int32_t prev;    // -1: first
    int32_t next;    // -1: last
    uint32_t start;  // byte offset in the word (kScores)
    uint32_t length; // bytes; 0 once merged into its left neighbour
    bool frozen;     // a literal token, never merged (kScores)
  };
  struct RankCandidate {
    uint64_t key;  // rank << 32 | position: the smallest merges first
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
  };
  struct ScoreCandidate {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
  };
  std::vector<Symbol> symbols;
  std::vector<RankCandidate> rank_heap;
  std::vector<ScoreCandidate> score_heap;
};

// HF tokenizers' BPE::merge_word + Word::merge_all: characters missing from
// the vocabulary become <0xXX> byte tokens (or <unk>), then the pair with the
// lowest merge rank is merged first, the leftmost among equals.
void EncodeWordByRanks(const Model& model, std::string_view word,
                       BpeScratch* scratch, std::vector<int32_t>* out);

// SentencePiece's bpe::Model::SampleEncode followed by the byte fallback of
// SentencePieceProcessor: merges the adjacent pair whose concatenation is the
// highest-scoring piece, the leftmost among equals; literal tokens stay whole.
void EncodeByScores(const Model& model, std::string_view normalized,
                    BpeScratch* scratch, std::vector<int32_t>* out);

}  // namespace gemmarun::tokenizer_internal
