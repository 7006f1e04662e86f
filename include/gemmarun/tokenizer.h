// Gemma's tokenizer: SentencePiece-style BPE with byte fallback, loaded from
// a HuggingFace tokenizer.json, a SentencePiece tokenizer.model or a GGUF
// vocabulary. Encoding and decoding match HF `tokenizers` (and spm_encode for
// tokenizer.model files) id for id.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gemmarun/status.h"

namespace gemmarun {

namespace tokenizer_internal {
struct Model;
}  // namespace tokenizer_internal

// Ids of the tokens with a fixed role; -1 where the vocabulary has none.
struct SpecialIds {
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t pad = -1;
  int32_t unk = -1;
};

// Piece types of a GGUF `tokenizer.ggml.token_type` array (they are
// SentencePiece's ModelProto.SentencePiece.Type numbers).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Immutable once loaded: Encode/Decode may run from several threads at once.
class Tokenizer {
 public:
  // A HuggingFace tokenizer.json. The names of the bos/eos/pad/unk tokens
  // come from a tokenizer_config.json next to it when there is one (as
  // AutoTokenizer does: Gemma 3's eos is <end_of_turn> there), else from
  // Gemma's defaults <bos>, <eos>, <pad>, <unk>.
  static Result<std::unique_ptr<Tokenizer>> FromTokenizerJson(
      const std::string& path);
  // A SentencePiece tokenizer.model (BPE models with identity
  // normalization, as Gemma's; encodes like spm_encode).
  static Result<std::unique_ptr<Tokenizer>> FromSentencePieceModel(
      const std::string& path);
  // A vocabulary given as arrays, as GGUF stores it (tokenizer.ggml.tokens,
  // .scores, .token_type with TokenType values). Encodes with SentencePiece's
  // score-ordered BPE; control and user-defined tokens written in the text
  // are matched as tokens (as llama.cpp with parse_special and HF do).
  // `add_space_prefix` is GGUF's tokenizer.ggml.add_space_prefix (false for
  // Gemma).
  static Result<std::unique_ptr<Tokenizer>> FromVocabulary(
      std::vector<std::string> pieces, std::vector<float> scores,
      std::vector<int32_t> token_types, SpecialIds ids,
      bool add_space_prefix = false);
  // A model folder (tokenizer.json preferred over tokenizer.model) or one of
  // those files.
  static Result<std::unique_ptr<Tokenizer>> LoadForModel(
      const std::string& path);

  // Built by the loaders above.
  explicit Tokenizer(std::unique_ptr<const tokenizer_internal::Model> model);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Invalid UTF-8 is an InvalidArgument naming the byte offset. Special
  // tokens written in the text ("<start_of_turn>") become their ids.
  Result<std::vector<int32_t>> Encode(std::string_view text,
                                      bool add_bos) const;
  // HF's decode(ids, skip_special_tokens=...): special tokens print as their
  // text unless skipped. An id outside the vocabulary is an InvalidArgument.
  Result<std::string> Decode(std::span<const int32_t> ids,
                             bool skip_special_tokens = false) const;

  // The token's string as the vocabulary stores it ("▁world", "<0x0A>");
  // empty for ids outside the vocabulary.
  std::string_view Piece(int32_t id) const;
  int32_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  std::optional<int32_t> TokenId(std::string_view piece) const;
  // HF's `special` flag (tokenizer.json) or a control/unknown piece
  // (tokenizer.model, GGUF).
  bool IsSpecial(int32_t id) const;

  const tokenizer_internal::Model& model() const { return *model_; }

 private:
  std::unique_ptr<const tokenizer_internal::Model> model_;
};

// Turns ids into text one at a time, emitting text only at complete UTF-8
// characters, so that a character spelled by several byte-fallback tokens is
// never printed half. The concatenated output equals Decode() of all ids,
// except that a malformed byte run yields U+FFFD per bad byte where Decode
// replaces the whole run, and ids outside the vocabulary are skipped.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer,
                            bool skip_special_tokens = false);

  // Text completed by `id` (often empty while a character is incomplete).
  std::string Push(int32_t id);
  // Ends the stream: any incomplete character becomes U+FFFD per byte.
  std::string Flush();

 private:
  std::string Emit(std::string text);

  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_bytes_;  // byte-fallback bytes of an unfinished char
  int strip_left_;             // leading characters the decoder still strips
};

// Chat templates of Gemma 1/2 (tokenizer_config.json's chat_template) and
// Gemma 3.
enum class ChatTemplateKind { kGemma, kGemma3 };

struct ChatMessage {
  std::string role;  // "user", "assistant" or "model", "system"
  std::string content;
};

// The prompt text exactly as HF renders the template, starting with "<bos>"
// (so encode it with add_bos=false). Gemma 1/2 rejects a system message;
// Gemma 3 folds it into the first user turn. Both require user and model
// turns to alternate, starting with the user, and trim each message.
Result<std::string> ApplyChatTemplate(ChatTemplateKind kind,
                                      std::span<const ChatMessage> messages,
                                      bool add_generation_prompt);

// Only the tokenizer of a model: a model folder (tokenizer.json preferred over
// tokenizer.model), one of those files, or a GGUF file's vocabulary.
Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path);

}  // namespace gemmarun
