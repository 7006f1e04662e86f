// UTF-8 helpers shared by the tokenizer's encoder, decoders and chat templates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gemmarun::tokenizer_internal {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Byte length announced by a lead byte; 1 for bytes that cannot lead, so that
// callers always make progress.
inline int Utf8SequenceLength(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return lead < 0xF8 ? 4 : 1;
}

// Length of the well-formed character at the start of `s` (RFC 3629: no
// overlong forms, surrogates or code points past U+10FFFF), or 0 if it is
// malformed or truncated.
int ValidUtf8CharLength(std::string_view s);

// Offset of the first byte that does not start a well-formed character, or
// std::string_view::npos when all of `s` is valid.
size_t FindInvalidUtf8(std::string_view s);

// True when `s` is a prefix of some well-formed character (so more bytes
// may still complete it).
bool IsIncompleteUtf8Char(std::string_view s);

// Decodes the character at the start of already validated UTF-8.
char32_t DecodeUtf8(std::string_view s, int* length);

void AppendUtf8(char32_t c, std::string* out);

// Python's str.isspace(), which Jinja's `trim` filter strips.
bool IsPythonWhitespace(char32_t c);

}  // namespace gemmarun::tokenizer_internal
