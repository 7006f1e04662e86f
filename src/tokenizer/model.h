// The tokenizer's internal representation, shared by the loaders
// (tokenizer.json, tokenizer.model, GGUF arrays) and the encoder/decoders.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gemmarun/status.h"
#include "tokenizer/tokenizer.h"

namespace gemmarun::tokenizer_internal {

using PieceType = TokenType;

// Piece string -> id, open addressing over ids into `pieces`. Built once at
// load; std::unordered_map costs about 3x more to fill for 262k pieces.
class PieceIndex {
 public:
  void Reset(const std::vector<std::string>* pieces, size_t expected);
  // Maps pieces[id] to id, replacing an earlier id with the same string.
  void Insert(int32_t id);
  int32_t Find(std::string_view key) const;  // -1 when absent

  // Split lookup for bulk work (resolving 580k merges at load): hashing and
  // prefetching a batch of keys before probing hides the cache misses.
  static uint32_t Hash(std::string_view key);
  void Prefetch(uint32_t hash) const;
  // Once the slot is cached: prefetches the piece it points to.
  void PrefetchPiece(uint32_t hash) const;
  int32_t Find(std::string_view key, uint32_t hash) const;

 private:
  struct Slot {
    uint32_t hash;
    int32_t id;  // -1: empty
  };
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// (left id, right id) -> (rank, merged id) for HF BPE merges. Encoding is
// bound by this table's cache misses, so a slot is one 8-byte word (21-bit
// ids, 22-bit rank; Gemma's 580k merges take 8 MB) and the merged ids sit
// apart, indexed by rank.
class MergeTable {
 public:
  static constexpr int32_t kMaxId = (1 << 21) - 2;
  static constexpr size_t kMaxMerges = (size_t{1} << 22) - 1;
  struct Merge {
    uint32_t rank;
    int32_t merged_id;
  };
  // Room for `count` merges, ranked 0..count-1 (at most kMaxMerges).
  void Reserve(size_t count);
  // Ids up to kMaxId. A later duplicate replaces an earlier one, as in HF's
  // HashMap collect.
  void Insert(int32_t left, int32_t right, Merge merge);
  bool Find(int32_t left, int32_t right, Merge* merge) const;
  void Prefetch(int32_t left, int32_t right) const;

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static constexpr int kRankBits = 22;
  size_t SlotOf(uint64_t key) const;
  std::vector<uint64_t> slots_;  // key << kRankBits | rank
  std::vector<int32_t> merged_by_rank_;
  size_t mask_ = 0;
};

// Tokens matched verbatim in the text before anything else (HF added
// tokens, SentencePiece user-defined symbols), longest match first.
class LiteralMatcher {
 public:
  void Add(std::string_view literal, int32_t id);
  bool empty() const { return nodes_.size() <= 1; }
  // The id of the longest literal starting at text[pos] (and its length),
  // or -1.
  int32_t Match(std::string_view text, size_t pos, size_t* length) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node
    int32_t id = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> can_start_{};
};

// HF normalizers we implement; Gemma's is one Replace(" ", "▁").
struct NormalizerStep {
  enum class Kind { kReplace, kPrepend } kind;
  std::string pattern;  // kReplace only
  std::string content;
};

// HF's Split pre-tokenizer with a string pattern (Gemma 3 declares one, but
// it looks for " " after the normalizer has turned every space into "▁").
struct SplitPreTokenizer {
  enum class Behavior {
    kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous
  };
  std::string pattern;
  Behavior behavior;
};

// The decoder chain Replace* -> ByteFallback? -> Fuse? -> Strip?, the one
// shape every SentencePiece-derived tokenizer.json uses.
struct DecoderSpec {
  std::vector<std::pair<std::string, std::string>> replacements;
  bool byte_fallback = false;
  std::string strip_content;  // one character
  int strip_start = 0;
  int strip_stop = 0;
};

// SentencePiece's NormalizerSpec flags (identity normalization only).
struct SpmNormalizer {
  bool add_dummy_prefix = false;
  bool remove_extra_whitespaces = false;
  bool escape_whitespaces = true;
};

struct Model {
  Model() = default;
  // `index` points into `pieces`, so a Model stays where it was built.
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  enum class Algorithm {
    kMergeRanks,  // HF BPE: lowest merge rank first
    kScores,      // SentencePiece BPE: highest merged-piece score first
  };
  Algorithm algorithm = Algorithm::kMergeRanks;

  std::vector<std::string> pieces;  // by id
  std::vector<PieceType> types;     // by id
  std::vector<uint8_t> special;     // by id: IsSpecial
  std::vector<float> scores;        // by id, kScores only
  PieceIndex index;
  MergeTable merges;                          // kMergeRanks only
  std::array<int32_t, 256> byte_ids;          // "<0xXX>" pieces, -1 if none
  std::array<int32_t, 128> ascii_ids;         // one-character ASCII pieces
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  bool has_unused = false;  // kScores: UNUSED pieces need resegmenting
  // kMergeRanks: a word may be cut before each "▁" that follows another
  // character, because no piece spans such a boundary (so the merges on
  // either side never interact), except after the characters listed here.
  // Short pieces can then be cached: Gemma does not pre-tokenize, so its
  // "words" are whole lines.
  bool split_at_spaces = false;
  std::vector<std::string> space_joiners;

  LiteralMatcher literals;             // matched in the raw text
  LiteralMatcher normalized_literals;  // HF added tokens with normalized=true
  std::vector<NormalizerStep> normalizer;
  std::optional<SplitPreTokenizer> pre_tokenizer;
  SpmNormalizer spm_normalizer;  // kScores only
  DecoderSpec decoder;
  SpecialIds ids;

  int32_t size() const { return static_cast<int32_t>(pieces.size()); }
  bool Mergeable(int32_t id) const {
    // SentencePiece merges only into pieces of these types (its pieces_ map).
    const PieceType t = types[id];
    return t == PieceType::kNormal || t == PieceType::kUserDefined ||
           t == PieceType::kUnused;
  }
};

// Fills the lookup tables (index, byte_ids, ascii_ids) from `pieces` and
// `types`. When two ids share a string, a
// user-defined piece wins over a normal one and a control/unknown/byte piece
// over both (SentencePiece looks up its reserved pieces first; HF its added
// tokens).
void BuildLookupTables(Model* model);

// Corrupt unless every special id is -1 or inside the vocabulary.
Status CheckSpecialIds(const Model& model);

// Sets split_at_spaces/space_joiners from the pieces (kMergeRanks).
void FindSpaceBoundaries(Model* model);

// Appends `text` to `out` with every `pattern` replaced by `content`.
void ReplaceAll(std::string_view text, std::string_view pattern,
                std::string_view content, std::string* out);

// Runs HF normalizer steps over `text`.
std::string ApplyNormalizer(const std::vector<NormalizerStep>& steps,
                            std::string_view text);

// Parses "<0xXX>" the way HF's ByteFallback decoder does.
std::optional<uint8_t> ParseBytePiece(std::string_view piece);

// Reads a whole file; NotFound when it cannot be opened.
Result<std::string> ReadFile(const std::string& path);

}  // namespace gemmarun::tokenizer_internal
