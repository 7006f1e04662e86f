#include "tokenizer/utf8.h"

namespace gemmarun::tokenizer_internal {
namespace {

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// The allowed range of the second byte, which is where overlong forms,
// surrogates and values past U+10FFFF are excluded (RFC 3629, table 3-7 of
// the Unicode standard).
bool SecondByteOk(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return IsContinuation(b);
  }
}

bool LeadOk(uint8_t lead) {
  return lead < 0x80 || (lead >= 0xC2 && lead <= 0xF4);
}

}  // namespace

int ValidUtf8CharLength(std::string_view s) {
  if (s.empty()) return 0;
  const auto lead = static_cast<uint8_t>(s[0]);
  if (lead < 0x80) return 1;
  if (!LeadOk(lead)) return 0;
  const int length = Utf8SequenceLength(lead);
  if (static_cast<int>(s.size()) < length) return 0;
  if (!SecondByteOk(lead, static_cast<uint8_t>(s[1]))) return 0;
  for (int i = 2; i < length; ++i) {
    if (!IsContinuation(static_cast<uint8_t>(s[i]))) return 0;
  }
  return length;
}

size_t FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs dominate real text; skip them without the full check.
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int length = ValidUtf8CharLength(s.substr(i));
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

bool IsIncompleteUtf8Char(std::string_view s) {
  if (s.empty()) return false;
  const auto lead = static_cast<uint8_t>(s[0]);
  if (lead < 0x80 || !LeadOk(lead)) return false;
  const size_t length = Utf8SequenceLength(lead);
  if (s.size() >= length) return false;
  if (s.size() >= 2 && !SecondByteOk(lead, static_cast<uint8_t>(s[1]))) {
    return false;
  }
  for (size_t i = 2; i < s.size(); ++i) {
    if (!IsContinuation(static_cast<uint8_t>(s[i]))) return false;
  }
  return true;
}

char32_t DecodeUtf8(std::string_view s, int* length) {
  const auto lead = static_cast<uint8_t>(s[0]);
  *length = Utf8SequenceLength(lead);
  if (*length == 1) return lead;
  char32_t c = lead & (0x7F >> *length);
  for (int i = 1; i < *length; ++i) {
    c = (c << 6) | (static_cast<uint8_t>(s[i]) & 0x3F);
  }
  return c;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool IsPythonWhitespace(char32_t c) {
  // The characters of bidirectional class WS/B/S or category Zs, as listed
  // by [c for c in range(0x110000) if chr(c).isspace()].
  if (c >= 0x09 && c <= 0x0D) return true;
  if (c >= 0x1C && c <= 0x20) return true;
  if (c >= 0x2000 && c <= 0x200A) return true;
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return false;
  }
}

}  // namespace gemmarun::tokenizer_internal
