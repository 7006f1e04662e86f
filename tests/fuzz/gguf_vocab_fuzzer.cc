// A GGUF vocabulary (tokenizer.ggml.tokens / scores / token_type and the special
// ids) as the GGUF loader hands it to Tokenizer::FromVocabulary, decoded from
// the input: byte 0 picks the special ids and add_space_prefix, then records of
// [type byte][score byte][piece bytes...]\0, and the text to encode after "\0\0".
#include <cstdint>
#include <string>
#include <vector>

#include "gemmarun/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemmarun;
  if (size < 1) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t text_at = input.find(std::string("\0\0", 2));
  const std::string table = input.substr(0, text_at);
  const std::string text = text_at == std::string::npos ? "hello world" : input.substr(text_at + 2);
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  size_t at = 0;
  while (at + 2 <= table.size() && pieces.size() < 4096) {
    const size_t end = std::min(table.find('\0', at + 2), table.size());
    types.push_back(static_cast<int8_t>(table[at]) % 8);  // negative and unknown types too
    scores.push_back(static_cast<int8_t>(table[at + 1]) * 0.5f);
    pieces.push_back(table.substr(at + 2, end - at - 2));
    at = end + 1;
  }
  const uint8_t flags = data[0];
  const int32_t n = static_cast<int32_t>(pieces.size());
  SpecialIds ids;
  ids.bos = (flags & 1) ? 1 % std::max(n, 1) : -1;
  ids.eos = (flags & 2) ? n : 0;  // one past the end: must be refused, not indexed
  ids.unk = (flags & 4) ? 0 : -1;
  ids.pad = (flags & 8) ? -5 : -1;
  auto tokenizer = Tokenizer::FromVocabulary(pieces, scores, types, ids, (flags & 16) != 0);
  if (!tokenizer.ok()) return 0;
  auto encoded = (*tokenizer)->Encode(text, (flags & 32) != 0);
  if (encoded.ok()) (void)(*tokenizer)->Decode(*encoded);
  return 0;
}
