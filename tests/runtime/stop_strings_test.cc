// StopStringMatcher against a reference: for every way of splitting a text into
// pieces, the released text must equal what a search on the whole text gives.
#include "runtime/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gemmarun {
namespace {

struct Streamed {
  std::string text;
  bool matched = false;
  std::string stop;
  std::vector<std::string> releases;  // per Push, then the Flush
};

Streamed Stream(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopStringMatcher matcher(stops);
  Streamed out;
  for (const std::string& piece : pieces) {
    out.releases.push_back(matcher.Push(piece));
    out.text += out.releases.back();
  }
  out.releases.push_back(matcher.Flush());
  out.text += out.releases.back();
  out.matched = matcher.matched();
  out.stop = matcher.matched_string();
  return out;
}

// The whole text searched at once: the text before the earliest match.
std::string Reference(const std::vector<std::string>& stops, const std::string& text) {
  size_t cut = std::string::npos;
  for (const std::string& s : stops) {
    if (!s.empty()) cut = std::min(cut, text.find(s));
  }
  return cut == std::string::npos ? text : text.substr(0, cut);
}

TEST(StopStringsTest, AMatchAcrossPiecesIsCutAndNotReleased) {
  const Streamed s = Stream({"\n\nUser:"}, {"Sure, ", "here.\n", "\nUs", "er:", " more"});
  EXPECT_EQ(s.text, "Sure, here.");
  EXPECT_TRUE(s.matched);
  EXPECT_EQ(s.stop, "\n\nUser:");
  // The "\n" that might start the stop string was held back, not released early.
  EXPECT_EQ(s.releases[1], "here.");
  EXPECT_EQ(s.releases[4], "");  // after the match nothing more comes out
}

TEST(StopStringsTest, AFalseStartIsReleasedOnceItCannotMatch) {
  const Streamed s = Stream({"END"}, {"the EN", "d of it"});
  EXPECT_EQ(s.releases[0], "the ");
  EXPECT_EQ(s.releases[1], "ENd of it");
  EXPECT_FALSE(s.matched);
  EXPECT_EQ(s.text, "the ENd of it");
}

TEST(StopStringsTest, HeldTextComesOutAtFlush) {
  const Streamed s = Stream({"###"}, {"a #", "#"});
  EXPECT_EQ(s.releases[0], "a ");
  EXPECT_EQ(s.releases[1], "");
  EXPECT_EQ(s.releases[2], "##");
  EXPECT_FALSE(s.matched);
}

TEST(StopStringsTest, TheEarliestOfSeveralStopStringsWins) {
  const Streamed s = Stream({"world", "lo w"}, {"hello world"});
  EXPECT_EQ(s.text, "hel");
  EXPECT_EQ(s.stop, "lo w");
}

TEST(StopStringsTest, EmptyStopStringsAreIgnored) {
  StopStringMatcher matcher({"", ""});
  EXPECT_TRUE(matcher.empty());
  EXPECT_EQ(matcher.Push("abc"), "abc");
  EXPECT_FALSE(matcher.matched());
}

TEST(StopStringsTest, ReleasedTextNeverEndsInsideAUtf8Character) {
  // "é" is C3 A9, "日" is E6 97 A5: pushed a byte at a time, with a stop string
  // that cannot match, every release must be whole characters.
  const std::string text = "caf\xC3\xA9 \xE6\x97\xA5!";
  std::vector<std::string> bytes;
  for (char c : text) bytes.push_back(std::string(1, c));
  const Streamed s = Stream({"zz"}, bytes);
  EXPECT_EQ(s.text, text);
  EXPECT_EQ(s.releases[3], "");  // 'C3' alone
  EXPECT_EQ(s.releases[4], "\xC3\xA9");
  EXPECT_EQ(s.releases[6], "");
  EXPECT_EQ(s.releases[7], "");
  EXPECT_EQ(s.releases[8], "\xE6\x97\xA5");
}

TEST(StopStringsTest, AMultiByteStopStringMatchesAcrossBytePieces) {
  const Streamed s = Stream({"\xE6\x97\xA5"}, {"a\xE6", "\x97", "\xA5", "b"});
  EXPECT_EQ(s.text, "a");
  EXPECT_TRUE(s.matched);
}

TEST(StopStringsTest, EverySplitOfTheTextGivesTheReferenceResult) {
  const std::vector<std::string> stops = {"abab", "ba\n", "aab"};
  for (const std::string text : {"xxababyy", "ab ba\n ab", "aaab", "abaab", "aba", "bbbbb", "ba", "abab"}) {
    // Every split into up to three pieces.
    for (size_t i = 0; i <= text.size(); ++i) {
      for (size_t j = i; j <= text.size(); ++j) {
        SCOPED_TRACE(text + " split at " + std::to_string(i) + "," + std::to_string(j));
        const Streamed s = Stream(stops, {text.substr(0, i), text.substr(i, j - i), text.substr(j)});
        const std::string want = Reference(stops, text);
        EXPECT_EQ(s.text, want);
        EXPECT_EQ(s.matched, want.size() != text.size());
      }
    }
  }
}

}  // namespace
}  // namespace gemmarun
