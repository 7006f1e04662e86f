// Encode and decode pipelines. tokenizer.json models follow HF tokenizers'
// order (added tokens -> normalizer -> pre-tokenizer -> BPE); tokenizer.model
// and GGUF vocabularies follow SentencePiece's (normalizer -> BPE -> byte
// fallback). Loaders live in hf_json.cc and sentencepiece_model.cc.
//
// ref: HF tokenizers, tokenizers/src/tokenizer/{mod.rs (encode_single_sequence,
//      decode), added_vocabulary.rs (split_with_indices)}
#include "tokenizer/tokenizer.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>
#include <utility>

#include "base/check.h"
#include "tokenizer/bpe.h"
#include "tokenizer/model.h"
#include "tokenizer/utf8.h"

namespace gemmarun {

using tokenizer_internal::BpeScratch;
using tokenizer_internal::Model;
using tokenizer_internal::SplitPreTokenizer;

namespace {

// HF's Split pre-tokenizer on a string pattern: cuts the text into matches
// and the gaps between them, then groups them by the split's behavior.
template <class F>
void PreTokenize(const Model& model, std::string_view text, F&& word) {
  if (!model.pre_tokenizer || model.pre_tokenizer->pattern.empty()) {
    word(text);
    return;
  }
  using Behavior = SplitPreTokenizer::Behavior;
  const Behavior behavior = model.pre_tokenizer->behavior;
  const std::string_view pattern = model.pre_tokenizer->pattern;
  struct Span {
    size_t begin, end;
    bool match;
  };
  std::vector<Span> spans;
  size_t start = 0;
  for (size_t hit; (hit = text.find(pattern, start)) != std::string_view::npos;
       start = hit + pattern.size()) {
    if (hit > start) spans.push_back({start, hit, false});
    spans.push_back({hit, hit + pattern.size(), true});
  }
  if (start < text.size()) spans.push_back({start, text.size(), false});

  std::vector<Span> words;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& span = spans[i];
    const bool after_match = i > 0 && spans[i - 1].match;
    bool joins_previous = false;  // extends words.back()
    switch (behavior) {
      case Behavior::kRemoved:
        if (span.match) continue;
        break;
      case Behavior::kIsolated:
        break;
      case Behavior::kMergedWithPrevious:
        joins_previous = span.match && i > 0 && !after_match;
        break;
      case Behavior::kMergedWithNext:
        joins_previous = !span.match && after_match;
        break;
      case Behavior::kContiguous:
        joins_previous = span.match && after_match;
        break;
    }
    if (joins_previous) {
      words.back().end = span.end;
    } else {
      words.push_back(span);
    }
  }
  for (const Span& w : words) word(text.substr(w.begin, w.end - w.begin));
}

// Splits `text` at literal tokens, longest match first, like HF's
// AddedVocabulary (aho-corasick, leftmost-longest).
template <class Segment, class Literal>
void SplitOnLiterals(const tokenizer_internal::LiteralMatcher& literals,
                     std::string_view text, Segment&& segment,
                     Literal&& literal) {
  if (literals.empty()) {
    if (!text.empty()) segment(text);
    return;
  }
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    size_t length = 0;
    const int32_t id = literals.Match(text, i, &length);
    if (id < 0) {
      ++i;
      continue;
    }
    if (i > start) segment(text.substr(start, i - start));
    literal(id);
    i += length;
    start = i;
  }
  if (start < text.size()) segment(text.substr(start));
}

// SentencePiece's Normalizer::Normalize for identity rules: optional dummy
// prefix, whitespace squeezing and " " -> "▁". User-defined symbols are
// copied whole, which only matters for the whitespace bookkeeping.
std::string SpmNormalize(const Model& model, std::string_view input) {
  const auto& spec = model.spm_normalizer;
  constexpr std::string_view kSpace = "\xE2\x96\x81";
  std::string out;
  if (spec.remove_extra_whitespaces) {
    while (!input.empty() && input[0] == ' ') input.remove_prefix(1);
  }
  if (input.empty()) return out;
  out.reserve(input.size() * 3 / 2 + 3);
  if (spec.add_dummy_prefix) {
    out.append(spec.escape_whitespaces ? kSpace : std::string_view(" "));
  }
  bool previous_space = spec.remove_extra_whitespaces;
  while (!input.empty()) {
    size_t length = 0;
    if (model.literals.empty() || model.literals.Match(input, 0, &length) < 0) {
      length = std::min<size_t>(
          tokenizer_internal::Utf8SequenceLength(static_cast<uint8_t>(input[0])),
          input.size());
    }
    std::string_view piece = input.substr(0, length);
    input.remove_prefix(length);
    while (previous_space && !piece.empty() && piece[0] == ' ') {
      piece.remove_prefix(1);
    }
    if (!piece.empty()) {
      for (const char c : piece) {
        if (spec.escape_whitespaces && c == ' ') {
          out.append(kSpace);
        } else {
          out.push_back(c);
        }
      }
      previous_space = piece.back() == ' ';
    }
    if (!spec.remove_extra_whitespaces) previous_space = false;
  }
  if (spec.remove_extra_whitespaces) {
    const std::string_view space =
        spec.escape_whitespaces ? kSpace : std::string_view(" ");
    std::string_view kept = out;
    while (kept.ends_with(space)) kept.remove_suffix(space.size());
    out.erase(kept.size());
  }
  return out;
}

// Runs HF BPE over the words of one Encode call: cuts them at spaces where
// that is exact (Model::split_at_spaces) and remembers the ids of short
// pieces, since running text repeats its words.
class WordEncoder {
 public:
  WordEncoder(const Model& model, std::vector<int32_t>* out)
      : model_(model), out_(out) {}

  void Encode(std::string_view word) {
    if (!model_.split_at_spaces) {
      EncodePiece(word);
      return;
    }
    constexpr std::string_view kSpace = "\xE2\x96\x81";
    size_t start = 0;
    for (size_t pos = word.find(kSpace, 1); pos != std::string_view::npos;
         pos = word.find(kSpace, pos + kSpace.size())) {
      size_t previous = pos - 1;
      while (previous > start &&
             (static_cast<uint8_t>(word[previous]) & 0xC0) == 0x80) {
        --previous;
      }
      const std::string_view joiner = word.substr(previous, pos - previous);
      if (joiner == kSpace || IsJoiner(joiner)) continue;
      EncodePiece(word.substr(start, pos - start));
      start = pos;
    }
    EncodePiece(word.substr(start));
  }

 private:
  static constexpr size_t kMaxCachedLength = 64;

  bool IsJoiner(std::string_view c) const {
    for (const std::string& joiner : model_.space_joiners) {
      if (joiner == c) return true;
    }
    return false;
  }

  void EncodePiece(std::string_view piece) {
    if (piece.size() > kMaxCachedLength) {
      tokenizer_internal::EncodeWordByRanks(model_, piece, &scratch_, out_);
      return;
    }
    const auto [it, inserted] = cache_.try_emplace(std::string(piece));
    if (inserted) {
      const size_t begin = out_->size();
      tokenizer_internal::EncodeWordByRanks(model_, piece, &scratch_, out_);
      it->second.assign(out_->begin() + begin, out_->end());
    } else {
      out_->insert(out_->end(), it->second.begin(), it->second.end());
    }
  }

  const Model& model_;
  std::vector<int32_t>* out_;
  BpeScratch scratch_;
  std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<const Model> model)
    : model_(std::move(model)) {
  GR_CHECK(model_ != nullptr);
}

Tokenizer::~Tokenizer() = default;

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                               bool add_bos) const {
  if (const size_t bad = tokenizer_internal::FindInvalidUtf8(text);
      bad != std::string_view::npos) {
    return InvalidArgument("text is not valid UTF-8 at byte offset " +
                           std::to_string(bad));
  }
  const Model& model = *model_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_bos) {
    if (model.ids.bos < 0) {
      return InvalidArgument("this vocabulary has no BOS token");
    }
    ids.push_back(model.ids.bos);
  }
  if (model.algorithm == Model::Algorithm::kScores) {
    // SentencePiece normalizes the whole text at once (the dummy prefix and
    // whitespace squeezing see it whole); literals are frozen symbols.
    BpeScratch scratch;
    tokenizer_internal::EncodeByScores(model, SpmNormalize(model, text),
                                       &scratch, &ids);
    return ids;
  }
  // HF: the raw text is split at added tokens first, so "<start_of_turn>"
  // is never normalized; each piece between them is normalized, split again
  // at normalized added tokens, pre-tokenized and BPE-encoded on its own.
  WordEncoder words(model, &ids);
  auto encode_normalized = [&](std::string_view normalized) {
    PreTokenize(model, normalized,
                [&](std::string_view word) { words.Encode(word); });
  };
  auto push_literal = [&](int32_t id) { ids.push_back(id); };
  SplitOnLiterals(
      model.literals, text,
      [&](std::string_view segment) {
        const std::string normalized =
            tokenizer_internal::ApplyNormalizer(model.normalizer, segment);
        SplitOnLiterals(model.normalized_literals, normalized,
                        encode_normalized, push_literal);
      },
      push_literal);
  return ids;
}

Result<std::string> Tokenizer::Decode(std::span<const int32_t> ids,
                                      bool skip_special_tokens) const {
  const Model& model = *model_;
  const auto& decoder = model.decoder;
  std::string text;
  std::string bytes;       // a run of byte-fallback tokens
  size_t byte_tokens = 0;  // tokens in that run
  auto flush_bytes = [&] {
    // HF's ByteFallback: the run as UTF-8 if valid, else U+FFFD per token.
    if (tokenizer_internal::FindInvalidUtf8(bytes) == std::string::npos) {
      text += bytes;
    } else {
      for (size_t i = 0; i < byte_tokens; ++i) {
        text += tokenizer_internal::kReplacementChar;
      }
    }
    bytes.clear();
    byte_tokens = 0;
  };
  std::string piece;
  std::string replaced;
  // The decoder chain, token by token: Replace, then ByteFallback gathering
  // runs of <0xXX> tokens, then Fuse (concatenation) and Strip.
  for (const int32_t id : ids) {
    // HF silently drops unknown ids; an id from nowhere is a caller bug
    // worth reporting.
    if (id < 0 || id >= model.size()) {
      return InvalidArgument("token id " + std::to_string(id) +
                             " is outside the vocabulary of " +
                             std::to_string(model.size()));
    }
    if (skip_special_tokens && model.special[id]) continue;
    piece = model.pieces[id];
    for (const auto& [pattern, content] : decoder.replacements) {
      if (piece.find(pattern) == std::string::npos) continue;
      replaced.clear();
      tokenizer_internal::ReplaceAll(piece, pattern, content, &replaced);
      piece.swap(replaced);
    }
    if (decoder.byte_fallback) {
      if (const auto byte = tokenizer_internal::ParseBytePiece(piece)) {
        bytes.push_back(static_cast<char>(*byte));
        ++byte_tokens;
        continue;
      }
      if (byte_tokens > 0) flush_bytes();
    }
    text += piece;
  }
  if (byte_tokens > 0) flush_bytes();

  // HF's Strip decoder, after Fuse: on the whole text.
  if (!decoder.strip_content.empty()) {
    const std::string& c = decoder.strip_content;
    size_t begin = 0;
    for (int i = 0; i < decoder.strip_start &&
                    std::string_view(text).substr(begin).starts_with(c);
         ++i) {
      begin += c.size();
    }
    size_t end = text.size();
    for (int i = 0; i < decoder.strip_stop && end >= begin + c.size() &&
                    std::string_view(text).substr(0, end).ends_with(c);
         ++i) {
      end -= c.size();
    }
    text = text.substr(begin, end - begin);
  }
  return text;
}

std::string_view Tokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= model_->size()) return {};
  return model_->pieces[id];
}

int32_t Tokenizer::vocab_size() const { return model_->size(); }
int32_t Tokenizer::bos_id() const { return model_->ids.bos; }
int32_t Tokenizer::eos_id() const { return model_->ids.eos; }
int32_t Tokenizer::pad_id() const { return model_->ids.pad; }
int32_t Tokenizer::unk_id() const { return model_->ids.unk; }

std::optional<int32_t> Tokenizer::TokenId(std::string_view piece) const {
  const int32_t id = model_->index.Find(piece);
  if (id < 0) return std::nullopt;
  return id;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < model_->size() && model_->special[id] != 0;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::LoadForModel(
    const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    const fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json", error)) {
      return FromTokenizerJson((dir / "tokenizer.json").string());
    }
    if (fs::exists(dir / "tokenizer.model", error)) {
      return FromSentencePieceModel((dir / "tokenizer.model").string());
    }
    return NotFound(path + ": no tokenizer.json or tokenizer.model in folder");
  }
  if (!fs::exists(path, error)) return NotFound(path + ": no such file or folder");
  // A FIFO would block the read below forever.
  if (!fs::is_regular_file(path, error)) return InvalidArgument(path + ": not a regular file");
  // Decide by content, not name: a tokenizer.json is JSON, a .model is a
  // protobuf whose first byte is a field tag (0x0A: pieces).
  std::string head(64, '\0');
  {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"),
                                               &std::fclose);
    if (file == nullptr) return NotFound(path + ": cannot open");
    head.resize(std::fread(head.data(), 1, head.size(), file.get()));
  }
  const size_t first = head.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    return Corrupt(path + ": the file is empty, expected a tokenizer.json or a SentencePiece tokenizer.model");
  }
  if (first != std::string::npos && head[first] == '{') {
    return FromTokenizerJson(path);
  }
  if (head.starts_with("GGUF")) {
    return Unsupported(path +
                       ": a GGUF file; its vocabulary is read by the GGUF "
                       "loader (Tokenizer::FromVocabulary)");
  }
  return FromSentencePieceModel(path);
}

}  // namespace gemmarun
