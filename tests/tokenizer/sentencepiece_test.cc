// tokenizer.model files: parity with spm_encode on small models trained
// by tools/tokenizer/make_spm_test_model.sh, and the protobuf reader's
// handling of damaged files.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tokenizer/test_util.h"

namespace gemmarun {
namespace {

using testing::ReadJson;
using testing::TokenizerDataPath;

std::unique_ptr<Tokenizer> LoadSpm(const std::string& name) {
  auto tokenizer = Tokenizer::FromSentencePieceModel(TokenizerDataPath(name));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

class SentencePieceParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SentencePieceParityTest, MatchesSpmEncode) {
  const auto tokenizer = LoadSpm(GetParam() + ".model");
  ASSERT_NE(tokenizer, nullptr);
  const nlohmann::json reference = ReadJson("spm_reference.json");
  const nlohmann::json& cases = reference["models"][GetParam()];
  ASSERT_GE(cases.size(), 20u);
  for (const nlohmann::json& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE("text: " + c["text"].dump());
    auto ids = tokenizer->Encode(text, /*add_bos=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, SentencePieceParityTest,
                         ::testing::Values("spm_bpe", "spm_bpe_gemma",
                                           "spm_bpe_unused"));

TEST(SentencePieceTest, SpecialIdsFollowTheModel) {
  const auto defaults = LoadSpm("spm_bpe.model");
  ASSERT_NE(defaults, nullptr);
  EXPECT_EQ(defaults->unk_id(), 0);
  EXPECT_EQ(defaults->bos_id(), 1);
  EXPECT_EQ(defaults->eos_id(), 2);
  EXPECT_EQ(defaults->pad_id(), -1);
  EXPECT_EQ(defaults->Piece(1), "<s>");
  EXPECT_TRUE(defaults->IsSpecial(1));

  const auto gemma_like = LoadSpm("spm_bpe_gemma.model");
  ASSERT_NE(gemma_like, nullptr);
  EXPECT_EQ(gemma_like->pad_id(), 0);
  EXPECT_EQ(gemma_like->eos_id(), 1);
  EXPECT_EQ(gemma_like->bos_id(), 2);
  EXPECT_EQ(gemma_like->unk_id(), 3);
  EXPECT_EQ(gemma_like->TokenId("<start_of_turn>"), 4);
  EXPECT_FALSE(gemma_like->IsSpecial(4));  // user-defined, not control
  auto ids = gemma_like->Encode("hi", /*add_bos=*/true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 2);
}

TEST(SentencePieceTest, DecodeRoundTrips) {
  for (const char* name : {"spm_bpe.model", "spm_bpe_gemma.model"}) {
    SCOPED_TRACE(name);
    const auto tokenizer = LoadSpm(name);
    ASSERT_NE(tokenizer, nullptr);
    // Byte fallback (𓀀, Cyrillic) and, for the Gemma-like model, the
    // spaces it keeps.
    const std::string text = "Hello  wörld 𓀀 текст\tend";
    auto ids = tokenizer->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    auto decoded = tokenizer->Decode(*ids);
    ASSERT_TRUE(decoded.ok());
    if (std::string(name) == "spm_bpe.model") {
      // Whitespace squeezing is lossy, and the dummy prefix is stripped.
      EXPECT_EQ(*decoded, "Hello wörld 𓀀 текст\tend");
    } else {
      EXPECT_EQ(*decoded, text);
    }
  }
}

TEST(SentencePieceTest, LoadForModelDetectsProtobuf) {
  auto tokenizer = Tokenizer::LoadForModel(TokenizerDataPath("spm_bpe.model"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  EXPECT_EQ((*tokenizer)->vocab_size(), LoadSpm("spm_bpe.model")->vocab_size());
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(SentencePieceTest, TruncatedFileIsCorrupt) {
  const std::string bytes = ReadBytes(TokenizerDataPath("spm_bpe.model"));
  for (const size_t size : {size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    auto tokenizer = Tokenizer::FromSentencePieceModel(
        WriteTemp("truncated.model", bytes.substr(0, size)));
    ASSERT_FALSE(tokenizer.ok()) << size;
    EXPECT_EQ(tokenizer.status().code(), StatusCode::kCorrupt) << size;
  }
}

TEST(SentencePieceTest, GarbageIsAnError) {
  auto tokenizer = Tokenizer::FromSentencePieceModel(
      WriteTemp("garbage.model", std::string(64, '\xff')));
  EXPECT_FALSE(tokenizer.ok());
  auto missing = Tokenizer::FromSentencePieceModel(TokenizerDataPath("nope.model"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// A hand-written ModelProto: a unigram model is refused, not misread.
TEST(SentencePieceTest, UnigramIsUnsupported) {
  std::string proto;
  auto field = [&](int number, int wire, const std::string& payload) {
    proto += static_cast<char>(number << 3 | wire);
    if (wire == 2) proto += static_cast<char>(payload.size());
    proto += payload;
  };
  std::string piece;
  piece += '\x0a';  // field 1 (piece), length-delimited
  piece += '\x05';
  piece += "<unk>";
  piece += '\x18';  // field 3 (type) = UNKNOWN
  piece += '\x02';
  field(1, 2, piece);
  field(2, 2, std::string("\x18\x01", 2));  // trainer_spec.model_type = UNIGRAM
  auto tokenizer = Tokenizer::FromSentencePieceModel(WriteTemp("unigram.model", proto));
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace gemmarun
