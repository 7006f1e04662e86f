// Parity with HF `tokenizers` on the fixture texts (reference.json) and on
// seeded random texts and id sequences (hf_parity.json, made by
// tools/tokenizer/make_hf_parity_cases.py).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tokenizer/test_util.h"

namespace gemmarun {
namespace {

using testing::HfTokenizer;
using testing::ReadJson;

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, ReferenceCases) {
  const Tokenizer& tokenizer = HfTokenizer(GetParam());
  const nlohmann::json reference = ReadJson("reference.json");
  const nlohmann::json& cases = reference["cases"][GetParam()];
  ASSERT_EQ(cases.size(), 27u);
  for (const nlohmann::json& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE("text: " + text);
    auto ids = tokenizer.Encode(text, /*add_bos=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>());

    std::vector<std::string> pieces;
    for (const int32_t id : *ids) pieces.emplace_back(tokenizer.Piece(id));
    EXPECT_EQ(pieces, c["tokens"].get<std::vector<std::string>>());

    const std::vector<int32_t> expected_ids = c["ids"];
    auto decoded = tokenizer.Decode(expected_ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(*decoded, c["decoded"].get<std::string>());

    auto with_bos = tokenizer.Encode(text, /*add_bos=*/true);
    ASSERT_TRUE(with_bos.ok());
    std::vector<int32_t> expected_with_bos = c["with_bos"];
    expected_with_bos.insert(expected_with_bos.end(), expected_ids.begin(),
                             expected_ids.end());
    EXPECT_EQ(*with_bos, expected_with_bos);
  }
}

TEST_P(GoldenTest, RandomEncodeCases) {
  const Tokenizer& tokenizer = HfTokenizer(GetParam());
  const nlohmann::json parity = ReadJson("hf_parity.json");
  const nlohmann::json& cases = parity["cases"][GetParam()]["encode"];
  ASSERT_GE(cases.size(), 300u);
  int mismatches = 0;
  for (const nlohmann::json& c : cases) {
    const std::string text = c["text"];
    auto ids = tokenizer.Encode(text, /*add_bos=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    if (*ids != c["ids"].get<std::vector<int32_t>>() && ++mismatches <= 5) {
      ADD_FAILURE() << "text: " << c["text"].dump();
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(GoldenTest, RandomDecodeCases) {
  const Tokenizer& tokenizer = HfTokenizer(GetParam());
  const nlohmann::json parity = ReadJson("hf_parity.json");
  const nlohmann::json& cases = parity["cases"][GetParam()]["decode"];
  ASSERT_GE(cases.size(), 200u);
  for (const nlohmann::json& c : cases) {
    const std::vector<int32_t> ids = c["ids"];
    SCOPED_TRACE("ids: " + c["ids"].dump());
    auto text = tokenizer.Decode(ids);
    ASSERT_TRUE(text.ok()) << text.status().message();
    EXPECT_EQ(*text, c["text"].get<std::string>());
    auto skipped = tokenizer.Decode(ids, /*skip_special_tokens=*/true);
    ASSERT_TRUE(skipped.ok());
    EXPECT_EQ(*skipped, c["text_skip_special"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, GoldenTest,
                         ::testing::Values("gemma", "gemma3"));

}  // namespace
}  // namespace gemmarun
