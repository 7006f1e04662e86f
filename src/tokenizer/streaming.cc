#include <string>

#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace gemmarun {

using tokenizer_internal::Model;

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer,
                                   bool skip_special_tokens)
    : tokenizer_(&tokenizer),
      skip_special_tokens_(skip_special_tokens),
      strip_left_(tokenizer.model().decoder.strip_start) {}

std::string StreamingDecoder::Push(int32_t id) {
  const Model& model = tokenizer_->model();
  // Decode() rejects such ids; a stream has no error channel and HF's own
  // decode drops them, so they are skipped.
  if (id < 0 || id >= model.size()) return {};
  if (skip_special_tokens_ && model.special[id]) return {};
  std::string piece = model.pieces[id];
  for (const auto& [pattern, content] : model.decoder.replacements) {
    if (piece.find(pattern) == std::string::npos) continue;
    std::string replaced;
    tokenizer_internal::ReplaceAll(piece, pattern, content, &replaced);
    piece.swap(replaced);
  }
  std::string out;
  if (model.decoder.byte_fallback) {
    if (const auto byte = tokenizer_internal::ParseBytePiece(piece)) {
      pending_bytes_.push_back(static_cast<char>(*byte));
      // Emit every complete character; keep a prefix that more bytes may
      // still complete; a byte that can never be part of a valid character
      // becomes U+FFFD now.
      size_t i = 0;
      while (i < pending_bytes_.size()) {
        const std::string_view rest = std::string_view(pending_bytes_).substr(i);
        if (const int n = tokenizer_internal::ValidUtf8CharLength(rest); n > 0) {
          out.append(rest.substr(0, n));
          i += n;
        } else if (tokenizer_internal::IsIncompleteUtf8Char(rest)) {
          break;
        } else {
          out += tokenizer_internal::kReplacementChar;
          ++i;
        }
      }
      pending_bytes_.erase(0, i);
      return Emit(std::move(out));
    }
  }
  out = Flush();
  out += piece;
  return Emit(std::move(out));
}

std::string StreamingDecoder::Flush() {
  // An unfinished character: HF's ByteFallback gives U+FFFD per byte token.
  std::string out;
  for (size_t i = 0; i < pending_bytes_.size(); ++i) {
    out += tokenizer_internal::kReplacementChar;
  }
  pending_bytes_.clear();
  return Emit(std::move(out));
}

std::string StreamingDecoder::Emit(std::string text) {
  // The decoder's Strip(start) applies to the start of the whole text, which
  // may span several pushes.
  const std::string& content = tokenizer_->model().decoder.strip_content;
  while (strip_left_ > 0 && !text.empty()) {
    if (text.starts_with(content)) {
      text.erase(0, content.size());
      --strip_left_;
    } else {
      strip_left_ = 0;
    }
  }
  return text;
}

}  // namespace gemmarun
