// ref: HF tokenizers, tokenizers/src/models/bpe/{model.rs (merge_word),
//      word.rs (merge_all)}
// ref: SentencePiece, src/bpe_model.cc (SampleEncode) and
//      src/sentencepiece_processor.cc (PopulateSentencePieceText)
#include "tokenizer/bpe.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

#include "tokenizer/utf8.h"

namespace gemmarun::tokenizer_internal {
namespace {

using Symbol = BpeScratch::Symbol;

// Appends a symbol to the linked list (which starts as a plain array).
void AddSymbol(int32_t id, uint32_t start, uint32_t length, bool frozen,
               std::vector<Symbol>* symbols) {
  const auto index = static_cast<int32_t>(symbols->size());
  if (index > 0) symbols->back().next = index;
  symbols->push_back(Symbol{id, index - 1, -1, start, length, frozen});
}

// Unlinks symbols[right] after its bytes were appended to symbols[left].
void Absorb(int32_t left, std::vector<Symbol>* symbols) {
  Symbol& a = (*symbols)[left];
  Symbol& b = (*symbols)[a.next];
  a.length += b.length;
  b.length = 0;
  a.next = b.next;
  if (b.next >= 0) (*symbols)[b.next].prev = left;
}

// std::*_heap build max-heaps; this comparator makes the top the smallest
// key, i.e. the lowest rank and, among equal ranks, the leftmost position,
// which is HF's Merge ordering.
struct RankGreater {
  bool operator()(const BpeScratch::RankCandidate& a,
                  const BpeScratch::RankCandidate& b) const {
    return a.key > b.key;
  }
};

struct ScoreLess {
  // SentencePiece's SymbolPairComparator.
  bool operator()(const BpeScratch::ScoreCandidate& a,
                  const BpeScratch::ScoreCandidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void EncodeWordByRanks(const Model& model, std::string_view word,
                       BpeScratch* scratch, std::vector<int32_t>* out) {
  if (word.empty()) return;
  if (model.ignore_merges) {
    const int32_t id = model.index.Find(word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<Symbol>& symbols = scratch->symbols;
  symbols.clear();

  // Characters to initial symbols. The order of the pending-<unk> flush
  // follows HF exactly: byte-fallback tokens do not flush it.
  int32_t unk_length = 0;  // > 0: an <unk> not yet added
  const int32_t unk_id = model.ids.unk;
  for (size_t i = 0; i < word.size();) {
    const auto lead = static_cast<uint8_t>(word[i]);
    size_t length = 1;
    int32_t id;
    if (lead < 0x80) {
      id = model.ascii_ids[lead];
    } else {
      length = std::min<size_t>(Utf8SequenceLength(lead), word.size() - i);
      id = model.index.Find(word.substr(i, length));
    }
    if (id >= 0) {
      if (unk_length > 0) AddSymbol(unk_id, 0, unk_length, false, &symbols);
      unk_length = 0;
      AddSymbol(id, 0, static_cast<uint32_t>(length), false, &symbols);
    } else {
      bool bytes_known = model.byte_fallback;
      for (size_t k = 0; bytes_known && k < length; ++k) {
        bytes_known = model.byte_ids[static_cast<uint8_t>(word[i + k])] >= 0;
      }
      if (bytes_known) {
        for (size_t k = 0; k < length; ++k) {
          AddSymbol(model.byte_ids[static_cast<uint8_t>(word[i + k])], 0, 1,
                    false, &symbols);
        }
      } else if (unk_id >= 0) {
        if (unk_length > 0 && !model.fuse_unk) {
          AddSymbol(unk_id, 0, unk_length, false, &symbols);
          unk_length = 0;
        }
        unk_length += static_cast<int32_t>(length);
      }
      // Without an <unk> token HF drops the character; so do we.
    }
    i += length;
  }
  if (unk_length > 0) AddSymbol(unk_id, 0, unk_length, false, &symbols);
  if (symbols.empty()) return;

  // Candidates carry the ids they were computed for, so a stale one (a
  // neighbour merged in the meantime) is recognised when popped instead of
  // being removed from the heap eagerly.
  std::vector<BpeScratch::RankCandidate>& heap = scratch->rank_heap;
  heap.clear();
  auto candidate = [&](int32_t pos) {
    const Symbol& a = symbols[pos];
    const Symbol& b = symbols[a.next];
    MergeTable::Merge merge;
    if (!model.merges.Find(a.id, b.id, &merge)) return false;
    heap.push_back({(uint64_t{merge.rank} << 32) | static_cast<uint32_t>(pos),
                    a.id, b.id, merge.merged_id});
    return true;
  };
  // The first lookups are independent, so their cache misses can overlap:
  // prefetch a few pairs ahead of the probe.
  constexpr int32_t kAhead = 8;
  const auto n = static_cast<int32_t>(symbols.size());
  for (int32_t pos = 0; pos + 1 < n && pos < kAhead; ++pos) {
    model.merges.Prefetch(symbols[pos].id, symbols[pos + 1].id);
  }
  for (int32_t pos = 0; pos + 1 < n; ++pos) {
    if (pos + kAhead + 1 < n) {
      model.merges.Prefetch(symbols[pos + kAhead].id,
                            symbols[pos + kAhead + 1].id);
    }
    candidate(pos);
  }
  // One O(n) heapify instead of n pushes.
  std::make_heap(heap.begin(), heap.end(), RankGreater());

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), RankGreater());
    const BpeScratch::RankCandidate top = heap.back();
    heap.pop_back();
    const auto pos = static_cast<int32_t>(top.key & 0xFFFFFFFF);
    Symbol& a = symbols[pos];
    // Stale entry: one side has merged since (symbols only grow, so equal
    // ids at both ends mean the very same pair).
    if (a.length == 0 || a.next < 0) continue;
    if (a.id != top.left_id || symbols[a.next].id != top.right_id) continue;
    a.id = top.merged_id;
    Absorb(pos, &symbols);
    // Only the two pairs that touch the new symbol can be new candidates.
    if (a.prev >= 0 && candidate(a.prev)) {
      std::push_heap(heap.begin(), heap.end(), RankGreater());
    }
    if (a.next >= 0 && candidate(pos)) {
      std::push_heap(heap.begin(), heap.end(), RankGreater());
    }
  }
  for (int32_t i = 0; i != -1; i = symbols[i].next) out->push_back(symbols[i].id);
}

void EncodeByScores(const Model& model, std::string_view normalized,
                    BpeScratch* scratch, std::vector<int32_t>* out) {
  if (normalized.empty()) return;
  std::vector<Symbol>& symbols = scratch->symbols;
  symbols.clear();
  // One symbol per character, except that a literal token (user-defined
  // symbol) is one frozen symbol that never merges.
  for (size_t i = 0; i < normalized.size();) {
    size_t length = 0;
    const int32_t literal = model.literals.empty()
                                ? -1
                                : model.literals.Match(normalized, i, &length);
    if (literal >= 0) {
      AddSymbol(literal, static_cast<uint32_t>(i),
                static_cast<uint32_t>(length), true, &symbols);
    } else {
      length = std::min<size_t>(
          Utf8SequenceLength(static_cast<uint8_t>(normalized[i])),
          normalized.size() - i);
      AddSymbol(-1, static_cast<uint32_t>(i), static_cast<uint32_t>(length),
                false, &symbols);
    }
    i += length;
  }

  auto text_of = [&](const Symbol& s) {
    return normalized.substr(s.start, s.length);
  };
  // Only UNUSED pieces need this: they may be merged through but are
  // split back into the two halves they were made of.
  std::unordered_map<std::string_view,
                     std::pair<std::string_view, std::string_view>>
      rev_merge;

  // SentencePiece has no merge list: any adjacent pair whose concatenation
  // is a piece may merge, the best-scoring piece first.
  std::vector<BpeScratch::ScoreCandidate>& heap = scratch->score_heap;
  heap.clear();
  auto maybe_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& a = symbols[left];
    const Symbol& b = symbols[right];
    if (a.frozen || b.frozen) return;
    const std::string_view piece =
        normalized.substr(a.start, a.length + b.length);
    const int32_t id = model.index.Find(piece);
    if (id < 0 || !model.Mergeable(id)) return;
    heap.push_back({model.scores[id], left, right,
                    static_cast<uint32_t>(piece.size())});
    std::push_heap(heap.begin(), heap.end(), ScoreLess());
    if (model.has_unused && model.types[id] == PieceType::kUnused) {
      rev_merge[piece] = {text_of(a), text_of(b)};
    }
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) {
    maybe_add(i - 1, i);
  }

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), ScoreLess());
    const BpeScratch::ScoreCandidate top = heap.back();
    heap.pop_back();
    const Symbol& a = symbols[top.left];
    const Symbol& b = symbols[top.right];
    // Stale: a side was absorbed, or grew (symbols at fixed starts only
    // grow, so an unchanged total size means an unchanged pair).
    if (a.length == 0 || b.length == 0 || a.length + b.length != top.size) {
      continue;
    }
    Absorb(top.left, &symbols);
    maybe_add(symbols[top.left].prev, top.left);
    maybe_add(top.left, symbols[top.left].next);
  }

  // Final pieces to ids, as SentencePieceProcessor does: unknown pieces
  // become their UTF-8 bytes (byte fallback) or one <unk> per run.
  bool previous_unknown = false;
  auto emit = [&](std::string_view piece, int32_t id) {
    const bool unknown = id < 0 || model.types[id] == PieceType::kUnknown;
    if (unknown && model.byte_fallback) {
      for (const char c : piece) {
        const int32_t byte_id = model.byte_ids[static_cast<uint8_t>(c)];
        // SentencePiece insists on all 256 byte pieces; a GGUF vocabulary
        // may lack some (Gemma's has "\t" where <0x09> would be).
        if (byte_id >= 0) {
          out->push_back(byte_id);
        } else if (model.ids.unk >= 0) {
          out->push_back(model.ids.unk);
        }
      }
    } else if (!unknown) {
      out->push_back(id);
    } else if (!previous_unknown && model.ids.unk >= 0) {
      // SentencePiece fuses a run of unknown pieces into one <unk>.
      out->push_back(model.ids.unk);
    }
    previous_unknown = unknown;
  };
  auto resegment = [&](auto& self, std::string_view piece) -> void {
    const int32_t id = model.index.Find(piece);
    if (id >= 0 && model.types[id] == PieceType::kUnused) {
      if (auto it = rev_merge.find(piece); it != rev_merge.end()) {
        self(self, it->second.first);
        self(self, it->second.second);
        return;
      }
    }
    emit(piece, id);
  };
  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.frozen) {
      out->push_back(s.id);
      previous_unknown = false;
    } else {
      resegment(resegment, text_of(s));
    }
  }
}

}  // namespace gemmarun::tokenizer_internal
