#include "tokenizer/model.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "base/check.h"

namespace gemmarun::tokenizer_internal {
namespace {

size_t TableSizeFor(size_t count) {
  // At most ~70% full, so probe sequences stay short.
  return std::bit_ceil(std::max<size_t>(16, count + count / 2));
}

// 21 bits per id (MergeTable::kMaxId), so key and rank share one word.
uint64_t PairKey(int32_t left, int32_t right) {
  return (uint64_t{static_cast<uint32_t>(left)} << 21) |
         static_cast<uint32_t>(right);
}

uint64_t MixPair(uint64_t key) {
  // MurmurHash3's finalizer: every bit of both ids reaches the low bits
  // used as the slot index.
  key ^= key >> 33;
  key *= 0xFF51AFD7ED558CCDull;
  key ^= key >> 33;
  key *= 0xC4CEB9FE1A85EC53ull;
  key ^= key >> 33;
  return key;
}

}  // namespace

void PieceIndex::Reset(const std::vector<std::string>* pieces,
                       size_t expected) {
  pieces_ = pieces;
  slots_.assign(TableSizeFor(expected), Slot{0, -1});
  mask_ = slots_.size() - 1;
  size_ = 0;
}

void PieceIndex::Insert(int32_t id) {
  if ((size_ + 1) * 10 > slots_.size() * 7) {
    std::vector<Slot> old = std::move(slots_);
    Reset(pieces_, old.size());
    for (const Slot& slot : old) {
      if (slot.id >= 0) Insert(slot.id);
    }
  }
  const std::string_view key = (*pieces_)[id];
  const uint32_t hash = Hash(key);
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    if (slot.id < 0) {
      slot = Slot{hash, id};
      ++size_;
      return;
    }
    if (slot.hash == hash && (*pieces_)[slot.id] == key) {
      slot.id = id;
      return;
    }
  }
}

uint32_t PieceIndex::Hash(std::string_view key) {
  return static_cast<uint32_t>(std::hash<std::string_view>()(key));
}

void PieceIndex::Prefetch(uint32_t hash) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask_]);
}

void PieceIndex::PrefetchPiece(uint32_t hash) const {
  if (slots_.empty()) return;
  const int32_t id = slots_[hash & mask_].id;
  if (id >= 0) __builtin_prefetch((*pieces_)[id].data());
}

int32_t PieceIndex::Find(std::string_view key) const {
  return Find(key, Hash(key));
}

int32_t PieceIndex::Find(std::string_view key, uint32_t hash) const {
  if (slots_.empty()) return -1;
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.id < 0) return -1;
    if (slot.hash == hash && (*pieces_)[slot.id] == key) return slot.id;
  }
}

void MergeTable::Reserve(size_t count) {
  GR_CHECK(count <= kMaxMerges);
  slots_.assign(TableSizeFor(count), kEmpty);
  mask_ = slots_.size() - 1;
  merged_by_rank_.assign(count, -1);
}

size_t MergeTable::SlotOf(uint64_t key) const { return MixPair(key) & mask_; }

void MergeTable::Insert(int32_t left, int32_t right, Merge merge) {
  GR_CHECK(left >= 0 && left <= kMaxId && right >= 0 && right <= kMaxId);
  GR_CHECK(merge.rank < merged_by_rank_.size());
  const uint64_t key = PairKey(left, right);
  const uint64_t value = key << kRankBits | merge.rank;
  merged_by_rank_[merge.rank] = merge.merged_id;
  for (size_t i = SlotOf(key);; i = (i + 1) & mask_) {
    if (slots_[i] == kEmpty || slots_[i] >> kRankBits == key) {
      slots_[i] = value;
      return;
    }
  }
}

bool MergeTable::Find(int32_t left, int32_t right, Merge* merge) const {
  if (slots_.empty()) return false;
  const uint64_t key = PairKey(left, right);
  for (size_t i = SlotOf(key);; i = (i + 1) & mask_) {
    const uint64_t slot = slots_[i];
    if (slot == kEmpty) return false;
    if (slot >> kRankBits == key) {
      merge->rank = static_cast<uint32_t>(slot & ((1u << kRankBits) - 1));
      merge->merged_id = merged_by_rank_[merge->rank];
      return true;
    }
  }
}

void MergeTable::Prefetch(int32_t left, int32_t right) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[SlotOf(PairKey(left, right))]);
}

// A byte trie with child lists: Gemma 3's 6.4k literals share long prefixes
// ("<unused"), nodes have few children, and most text positions are
// rejected by can_start_ before the trie is touched.
void LiteralMatcher::Add(std::string_view literal, int32_t id) {
  GR_CHECK(!literal.empty());
  can_start_[static_cast<uint8_t>(literal[0])] = true;
  int32_t node = 0;
  for (const char c : literal) {
    const auto byte = static_cast<uint8_t>(c);
    int32_t next = -1;
    for (const auto& [label, child] : nodes_[node].children) {
      if (label == byte) next = child;
    }
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(byte, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  nodes_[node].id = id;
}

int32_t LiteralMatcher::Match(std::string_view text, size_t pos,
                              size_t* length) const {
  if (!can_start_[static_cast<uint8_t>(text[pos])]) return -1;
  int32_t node = 0;
  int32_t best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<uint8_t>(text[i]);
    int32_t next = -1;
    for (const auto& [label, child] : nodes_[node].children) {
      if (label == byte) {
        next = child;
        break;
      }
    }
    if (next < 0) break;
    node = next;
    if (nodes_[node].id >= 0) {
      best = nodes_[node].id;
      *length = i + 1 - pos;
    }
  }
  return best;
}

void BuildLookupTables(Model* model) {
  const int32_t n = model->size();
  GR_CHECK(static_cast<int32_t>(model->types.size()) == n);
  model->special.resize(n, 0);
  model->index.Reset(&model->pieces, n);
  // Three passes give the precedence described in model.h.
  for (int pass = 0; pass < 3; ++pass) {
    for (int32_t id = 0; id < n; ++id) {
      const PieceType t = model->types[id];
      const int rank = t == PieceType::kNormal || t == PieceType::kUnused ? 0
                       : t == PieceType::kUserDefined                    ? 1
                                                                         : 2;
      if (rank == pass && !model->pieces[id].empty()) model->index.Insert(id);
    }
  }
  // Byte fallback and the ASCII fast path of the merge loop look ids up
  // by table instead of hashing strings.
  model->byte_ids.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    model->byte_ids[b] = model->index.Find(name);
  }
  for (int c = 0; c < 128; ++c) {
    const char s[1] = {static_cast<char>(c)};
    model->ascii_ids[c] = model->index.Find(std::string_view(s, 1));
  }
}

Status CheckSpecialIds(const Model& model) {
  for (const int32_t id :
       {model.ids.bos, model.ids.eos, model.ids.pad, model.ids.unk}) {
    if (id < -1 || id >= model.size()) {
      return Corrupt("special token id " + std::to_string(id) +
                     " is outside the vocabulary of " +
                     std::to_string(model.size()));
    }
  }
  return Status::Ok();
}

void FindSpaceBoundaries(Model* model) {
  constexpr std::string_view kSpace = "\xE2\x96\x81";
  model->space_joiners.clear();
  // Collect every character that some piece has right before a "▁" (Gemma:
  // none; Gemma 3: ">" from ">▁</").
  for (const std::string& piece : model->pieces) {
    for (size_t pos = piece.find(kSpace, 1); pos != std::string::npos;
         pos = piece.find(kSpace, pos + kSpace.size())) {
      size_t start = pos - 1;
      while (start > 0 && (static_cast<uint8_t>(piece[start]) & 0xC0) == 0x80) {
        --start;
      }
      const std::string joiner = piece.substr(start, pos - start);
      if (joiner != kSpace &&
          std::find(model->space_joiners.begin(), model->space_joiners.end(),
                    joiner) == model->space_joiners.end()) {
        model->space_joiners.push_back(joiner);
      }
    }
  }
  // Cutting changes nothing only if merges decide everything: whole-word
  // lookups (ignore_merges) see the uncut word, and an unknown "▁" would
  // fall back to bytes or <unk>.
  model->split_at_spaces =
      model->algorithm == Model::Algorithm::kMergeRanks &&
      !model->ignore_merges && model->index.Find(kSpace) >= 0;
}

void ReplaceAll(std::string_view text, std::string_view pattern,
                std::string_view content, std::string* out) {
  size_t start = 0;
  for (size_t hit; (hit = text.find(pattern, start)) != std::string_view::npos;
       start = hit + pattern.size()) {
    out->append(text.substr(start, hit - start));
    out->append(content);
  }
  out->append(text.substr(start));
}

std::string ApplyNormalizer(const std::vector<NormalizerStep>& steps,
                            std::string_view text) {
  std::string current(text);
  std::string next;
  for (const NormalizerStep& step : steps) {
    if (step.kind == NormalizerStep::Kind::kReplace) {
      next.clear();
      ReplaceAll(current, step.pattern, step.content, &next);
      current.swap(next);
    } else if (!current.empty()) {
      // HF's Prepend leaves an empty string empty.
      current.insert(0, step.content);
    }
  }
  return current;
}

std::optional<uint8_t> ParseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') {
    return std::nullopt;
  }
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  // Rust's u8::from_str_radix, which HF uses, also takes a leading '+'.
  const int hi = piece[3] == '+' ? 0 : hex(piece[3]);
  const int lo = hex(piece[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

// stdio rather than iostreams: a single large read, no locale machinery.
Result<std::string> ReadFile(const std::string& path) {
  std::error_code error;
  if (std::filesystem::exists(path, error) && !std::filesystem::is_regular_file(path, error)) {
    return InvalidArgument(path + ": not a regular file");  // a FIFO would block fopen forever
  }
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"),
                                             &std::fclose);
  if (file == nullptr) return NotFound(path + ": cannot open");
  std::string data;
  // One read into a buffer of the final size: the big tokenizer.json files
  // are 17-33 MB.
  if (std::fseek(file.get(), 0, SEEK_END) == 0) {
    const long size = std::ftell(file.get());
    if (size > 0) data.reserve(static_cast<size_t>(size));
    std::rewind(file.get());
  }
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    data.append(buffer, n);
  }
  if (std::ferror(file.get())) return Corrupt(path + ": read error");
  return data;
}

}  // namespace gemmarun::tokenizer_internal
