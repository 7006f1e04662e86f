// Stop strings matched on generated text as it streams. Tokens rarely line up
// with a stop string ("\n\nUser:" may arrive as "\n", "\nUs", "er:"), so text
// that could still become a match is held back until it cannot, and the match
// itself, with anything after it, is never released.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gemmarun {

class StopStringMatcher {
 public:
  // Empty strings are ignored (they would match before any text).
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  // Appends a decoded piece and returns the text that is now safe to release:
  // everything before a match, or everything except the longest tail that is
  // the start of some stop string. The released text never ends inside a
  // UTF-8 character. After a match, further pieces release nothing.
  std::string Push(std::string_view piece);
  // The end of the stream: releases what was held back (nothing after a match).
  std::string Flush();

  bool matched() const { return matched_ >= 0; }
  // The stop string that matched; empty before a match.
  const std::string& matched_string() const;
  bool empty() const { return stop_strings_.empty(); }

 private:
  std::vector<std::string> stop_strings_;
  std::string held_;  // not yet released: a possible start of a stop string
  int matched_ = -1;  // index into stop_strings_
};

}  // namespace gemmarun
