#include "runtime/stop_strings.h"

#include <algorithm>

namespace gemmarun {
namespace {

// Bytes at the end of `text` that start a UTF-8 character whose continuation
// bytes have not all arrived yet (0 when the text ends on a boundary).
size_t IncompleteUtf8Tail(std::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(n, 4); ++back) {
    const unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;  // only continuation bytes (malformed): nothing to wait for
}

}  // namespace

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
  for (std::string& s : stop_strings) {
    if (!s.empty()) stop_strings_.push_back(std::move(s));
  }
}

const std::string& StopStringMatcher::matched_string() const {
  static const std::string kNone;
  return matched_ >= 0 ? stop_strings_[matched_] : kNone;
}

std::string StopStringMatcher::Push(std::string_view piece) {
  if (matched()) return {};
  held_.append(piece);
  // The earliest match wins: everything before it was text the model meant to say.
  size_t match_at = std::string::npos;
  for (size_t i = 0; i < stop_strings_.size(); ++i) {
    const size_t at = held_.find(stop_strings_[i]);
    if (at < match_at) {
      match_at = at;
      matched_ = static_cast<int>(i);
    }
  }
  if (match_at != std::string::npos) {
    std::string released = held_.substr(0, match_at);
    held_.clear();
    return released;
  }
  // Hold back the longest tail that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const std::string& stop : stop_strings_) {
    for (size_t length = std::min(stop.size() - 1, held_.size()); length > hold; --length) {
      if (std::string_view(held_).substr(held_.size() - length) == std::string_view(stop).substr(0, length)) {
        hold = length;
        break;
      }
    }
  }
  size_t release = held_.size() - hold;
  release -= IncompleteUtf8Tail(std::string_view(held_).substr(0, release));
  std::string released = held_.substr(0, release);
  held_.erase(0, release);
  return released;
}

std::string StopStringMatcher::Flush() {
  if (matched()) return {};
  std::string rest = std::move(held_);
  held_.clear();
  return rest;
}

}  // namespace gemmarun
