// StreamingDecoder: never emits half a character, and its output adds up to
// Decode()'s.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tokenizer/test_util.h"
#include "tokenizer/utf8.h"

namespace gemmarun {
namespace {

using testing::HfTokenizer;

bool IsValidUtf8(const std::string& s) {
  return tokenizer_internal::FindInvalidUtf8(s) == std::string::npos;
}

TEST(StreamingDecoderTest, HoldsByteFallbackCharacterUntilComplete) {
  const Tokenizer& tokenizer = HfTokenizer("gemma");
  // 𓀀 is not in Gemma's vocabulary: four <0xXX> tokens spell it.
  auto ids = tokenizer.Encode("a 𓀀b", false);
  ASSERT_TRUE(ids.ok());
  const auto f0 = tokenizer.TokenId("<0xF0>");
  ASSERT_TRUE(f0.has_value());
  ASSERT_EQ(std::count(ids->begin(), ids->end(), *f0), 1);

  StreamingDecoder decoder(tokenizer);
  std::vector<std::string> chunks;
  for (const int32_t id : *ids) chunks.push_back(decoder.Push(id));
  chunks.push_back(decoder.Flush());
  std::string all;
  for (const std::string& chunk : chunks) {
    EXPECT_TRUE(IsValidUtf8(chunk)) << chunk;
    all += chunk;
  }
  EXPECT_EQ(all, "a 𓀀b");
  // The three tokens before the last byte emit nothing, the last the whole
  // character.
  const auto first_byte = std::find(ids->begin(), ids->end(), *f0) - ids->begin();
  EXPECT_EQ(chunks[first_byte], "");
  EXPECT_EQ(chunks[first_byte + 1], "");
  EXPECT_EQ(chunks[first_byte + 2], "");
  EXPECT_EQ(chunks[first_byte + 3], "𓀀");
}

TEST(StreamingDecoderTest, BrokenCharactersBecomeReplacementCharacters) {
  const Tokenizer& tokenizer = HfTokenizer("gemma");
  const int32_t f0 = *tokenizer.TokenId("<0xF0>");
  const int32_t x93 = *tokenizer.TokenId("<0x93>");
  const int32_t a = *tokenizer.TokenId("a");
  StreamingDecoder decoder(tokenizer);
  EXPECT_EQ(decoder.Push(f0), "");
  EXPECT_EQ(decoder.Push(x93), "");
  // A non-byte token ends the run: one U+FFFD per byte, as HF's decoder.
  EXPECT_EQ(decoder.Push(a), "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
  EXPECT_EQ(decoder.Push(x93), "\xEF\xBF\xBD");  // can never start a char
  EXPECT_EQ(decoder.Push(f0), "");
  EXPECT_EQ(decoder.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.Flush(), "");

  auto decoded = tokenizer.Decode(std::vector<int32_t>{f0, x93, a});
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
}

TEST(StreamingDecoderTest, SkipsSpecialTokensOnRequest) {
  const Tokenizer& tokenizer = HfTokenizer("gemma");
  auto ids = tokenizer.Encode("<start_of_turn>model\nHi<end_of_turn>", true);
  ASSERT_TRUE(ids.ok());
  std::string kept, skipped;
  StreamingDecoder keep(tokenizer);
  StreamingDecoder skip(tokenizer, /*skip_special_tokens=*/true);
  for (const int32_t id : *ids) {
    kept += keep.Push(id);
    skipped += skip.Push(id);
  }
  EXPECT_EQ(kept, "<bos><start_of_turn>model\nHi<end_of_turn>");
  EXPECT_EQ(skipped, "model\nHi");
  EXPECT_EQ(keep.Push(-1) + keep.Push(1 << 30), "");  // unknown ids: skipped
}

// On every decode case of hf_parity.json whose byte runs are valid UTF-8, the
// stream adds up to Decode() and no chunk holds half a character.
TEST(StreamingDecoderTest, AddsUpToDecode) {
  for (const char* name : {"gemma", "gemma3"}) {
    SCOPED_TRACE(name);
    const Tokenizer& tokenizer = HfTokenizer(name);
    const nlohmann::json cases =
        testing::ReadJson("hf_parity.json")["cases"][name]["decode"];
    int compared = 0;
    for (const nlohmann::json& c : cases) {
      const std::vector<int32_t> ids = c["ids"];
      const std::string expected = c["text"];
      StreamingDecoder decoder(tokenizer);
      std::string all;
      for (const int32_t id : ids) {
        const std::string chunk = decoder.Push(id);
        ASSERT_TRUE(IsValidUtf8(chunk));
        all += chunk;
      }
      all += decoder.Flush();
      // Where a byte run is malformed, the stream replaces bad bytes one by
      // one and HF the whole run; elsewhere they agree exactly.
      if (expected.find("\xEF\xBF\xBD") != std::string::npos) continue;
      EXPECT_EQ(all, expected) << c["ids"].dump();
      ++compared;
    }
    EXPECT_GT(compared, 50);
  }
}

TEST(StreamingDecoderTest, StripsTheDummyPrefixSpaceOnce) {
  auto tokenizer = Tokenizer::FromSentencePieceModel(
      testing::TokenizerDataPath("spm_bpe.model"));
  ASSERT_TRUE(tokenizer.ok());
  auto ids = (*tokenizer)->Encode("Hello world", false);
  ASSERT_TRUE(ids.ok());
  StreamingDecoder decoder(**tokenizer);
  std::string all;
  for (const int32_t id : *ids) all += decoder.Push(id);
  EXPECT_EQ(all, "Hello world");
}

}  // namespace
}  // namespace gemmarun
