// Tokenizer behaviour beyond the golden files: pathological inputs, errors,
// round trips, special ids, CodeGemma's FIM tokens, loading, and the
// GGUF-style vocabulary path.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tokenizer/test_util.h"

namespace gemmarun {
namespace {

using testing::HfTokenizer;
using testing::TokenizerDataPath;

// Gemma does not pre-tokenize, so each of these is a single BPE word; they
// guard against quadratic merging (HF gives the same ids).
TEST(TokenizerTest, MegabyteOfOneCharacter) {
  const std::string text(1 << 20, 'a');
  for (const auto& [name, id] : {std::pair{"gemma", 84377}, {"gemma3", 128820}}) {
    SCOPED_TRACE(name);
    const Tokenizer& tokenizer = HfTokenizer(name);
    EXPECT_EQ(tokenizer.Piece(id), "aaaaaaaa");
    auto ids = tokenizer.Encode(text, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, std::vector<int32_t>(text.size() / 8, id));
    auto decoded = tokenizer.Decode(*ids);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, text);
  }
}

TEST(TokenizerTest, HundredThousandSpaces) {
  const std::string text(100000, ' ');
  {
    const Tokenizer& gemma = HfTokenizer("gemma");
    auto ids = gemma.Encode(text, false);
    ASSERT_TRUE(ids.ok());
    // Gemma's longest space piece is 16 "▁".
    EXPECT_EQ(*ids, std::vector<int32_t>(6250, 153));
  }
  {
    const Tokenizer& gemma3 = HfTokenizer("gemma3");
    auto ids = gemma3.Encode(text, false);
    ASSERT_TRUE(ids.ok());
    // 3225 pieces of 31 "▁" (id 167), then one of 25 (id 161).
    std::vector<int32_t> expected(3225, 167);
    expected.push_back(161);
    EXPECT_EQ(*ids, expected);
    auto decoded = gemma3.Decode(*ids);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, text);
  }
}

TEST(TokenizerTest, InvalidUtf8NamesTheOffset) {
  const Tokenizer& tokenizer = HfTokenizer("gemma");
  const std::pair<std::string, int> cases[] = {
      {"abc\xff", 3},             // never valid
      {"ok \xe3\x81", 3},         // truncated at the end
      {"\xc0\x80", 0},            // overlong NUL
      {"x\xed\xa0\x80", 1},       // UTF-16 surrogate
      {"\xf4\x90\x80\x80", 0},    // past U+10FFFF
      {"\xe6\x97\xa5\x80", 3},    // stray continuation byte
  };
  for (const auto& [text, offset] : cases) {
    auto ids = tokenizer.Encode(text, false);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(ids.status().message().find("byte offset " + std::to_string(offset)),
              std::string::npos)
        << ids.status().message();
  }
}

TEST(TokenizerTest, DecodeRoundTrips) {
  const std::string texts[] = {
      "",
      "Hello, world!",
      "  two  spaces\t\ttabs\n\n\nnewlines ",
      "日本語と English が混ざった文。🧬𓀀 \x01\x7f",
      "<start_of_turn>user\nHi<end_of_turn>\n",
      "literal <0x41> and <unused5> tokens",
      "\xef\xbf\xbd replacement char itself",
  };
  for (const char* name : {"gemma", "gemma3"}) {
    const Tokenizer& tokenizer = HfTokenizer(name);
    for (const std::string& text : texts) {
      SCOPED_TRACE(std::string(name) + ": " + text);
      auto ids = tokenizer.Encode(text, false);
      ASSERT_TRUE(ids.ok());
      auto decoded = tokenizer.Decode(*ids);
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(*decoded, text);
    }
  }
}

TEST(TokenizerTest, DecodeErrorsAndSpecialTokens) {
  const Tokenizer& tokenizer = HfTokenizer("gemma");
  for (const int32_t bad : {-1, 256000, 1 << 30}) {
    auto text = tokenizer.Decode(std::vector<int32_t>{2, bad});
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), StatusCode::kInvalidArgument);
  }
  const std::vector<int32_t> ids = {2, 106, 1645, 108, 4521, 107, 1};
  EXPECT_EQ(*tokenizer.Decode(ids),
            "<bos><start_of_turn>user\nHello<end_of_turn><eos>");
  EXPECT_EQ(*tokenizer.Decode(ids, /*skip_special_tokens=*/true), "user\nHello");
}

TEST(TokenizerTest, VocabularyFacts) {
  const Tokenizer& gemma = HfTokenizer("gemma");
  EXPECT_EQ(gemma.vocab_size(), 256000);
  EXPECT_EQ(gemma.pad_id(), 0);
  EXPECT_EQ(gemma.eos_id(), 1);
  EXPECT_EQ(gemma.bos_id(), 2);
  EXPECT_EQ(gemma.unk_id(), 3);
  EXPECT_EQ(gemma.TokenId("<start_of_turn>"), 106);
  EXPECT_EQ(gemma.TokenId("<end_of_turn>"), 107);
  EXPECT_EQ(gemma.TokenId("▁world"), 2134);
  EXPECT_EQ(gemma.TokenId("no such piece"), std::nullopt);
  EXPECT_EQ(gemma.Piece(2134), "▁world");
  EXPECT_EQ(gemma.Piece(-1), "");
  EXPECT_EQ(gemma.Piece(256000), "");
  EXPECT_TRUE(gemma.IsSpecial(106));
  EXPECT_FALSE(gemma.IsSpecial(108));  // "\n": an added token, not special
  EXPECT_FALSE(gemma.IsSpecial(2134));
  EXPECT_FALSE(gemma.IsSpecial(-5));

  // Gemma 3 has one added token past its BPE vocabulary, and its
  // tokenizer_config.json names <end_of_turn> as eos.
  const Tokenizer& gemma3 = HfTokenizer("gemma3");
  EXPECT_EQ(gemma3.vocab_size(), 262145);
  EXPECT_EQ(gemma3.Piece(262144), "<image_soft_token>");
  EXPECT_EQ(gemma3.bos_id(), 2);
  EXPECT_EQ(gemma3.eos_id(), 106);
  EXPECT_EQ(gemma3.TokenId("<start_of_image>"), 255999);
  auto ids = gemma3.Encode("<start_of_image><image_soft_token>", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{255999, 262144}));
}

TEST(TokenizerTest, CodeGemmaFimTokens) {
  const Tokenizer& tokenizer = HfTokenizer("codegemma");
  EXPECT_EQ(tokenizer.TokenId("<|fim_prefix|>"), 67);
  EXPECT_EQ(tokenizer.TokenId("<|fim_middle|>"), 68);
  EXPECT_EQ(tokenizer.TokenId("<|fim_suffix|>"), 69);
  EXPECT_EQ(tokenizer.TokenId("<|file_separator|>"), 70);
  EXPECT_EQ(tokenizer.TokenId("<unused60>"), std::nullopt);
  auto ids = tokenizer.Encode("<|fim_prefix|>def f():", false);
  ASSERT_TRUE(ids.ok());
  ASSERT_FALSE(ids->empty());
  EXPECT_EQ(ids->front(), 67);
  // Ids from HF tokenizers on the same file.
  ids = tokenizer.Encode("<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{67, 1293, 517, 4409, 69, 108, 68}));
}

TEST(TokenizerTest, LoadForModelFindsTheTokenizer) {
  auto from_dir = Tokenizer::LoadForModel(TokenizerDataPath("gemma"));
  ASSERT_TRUE(from_dir.ok()) << from_dir.status().message();
  EXPECT_EQ((*from_dir)->vocab_size(), 256000);
  auto from_file = Tokenizer::LoadForModel(testing::CodeGemmaTokenizerJson());
  ASSERT_TRUE(from_file.ok()) << from_file.status().message();
  EXPECT_EQ((*from_file)->TokenId("<|fim_middle|>"), 68);

  auto missing = Tokenizer::LoadForModel(TokenizerDataPath("no_such_model"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  // A folder without tokenizer files.
  auto empty = Tokenizer::LoadForModel(::testing::TempDir());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kNotFound);
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// A minimal Gemma-shaped tokenizer.json, so that each test can break one part.
std::string TinyTokenizerJson(const std::string& model_type = "BPE",
                              const std::string& merges = R"(["a b"])",
                              const std::string& decoder =
                                  R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"}]})") {
  return R"({"version": "1.0", "added_tokens": [
    {"id": 0, "content": "<bos>", "single_word": false, "lstrip": false,
     "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
  "pre_tokenizer": null, "post_processor": null,
  "decoder": )" + decoder + R"(,
  "model": {"type": ")" + model_type + R"(", "dropout": null, "unk_token": "<unk>",
    "fuse_unk": true, "byte_fallback": false,
    "vocab": {"<bos>": 0, "<unk>": 1, "a": 2, "b": 3, "ab": 4, "▁": 5},
    "merges": )" + merges + "}}";
}

TEST(TokenizerTest, TinyTokenizerJson) {
  auto tokenizer = Tokenizer::FromTokenizerJson(WriteTemp("tiny.json", TinyTokenizerJson()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  auto ids = (*tokenizer)->Encode("<bos>ab a?b", false);
  ASSERT_TRUE(ids.ok());
  // "?" is unknown and there is no byte fallback: <unk>.
  EXPECT_EQ(*ids, (std::vector<int32_t>{0, 4, 5, 2, 1, 3}));
  EXPECT_EQ((*tokenizer)->unk_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_id(), -1);
  EXPECT_FALSE((*tokenizer)->Encode("x", /*add_bos=*/false).value().empty());
  // The newer merge format: pairs.
  auto pairs = Tokenizer::FromTokenizerJson(
      WriteTemp("tiny_pairs.json", TinyTokenizerJson("BPE", R"([["a", "b"]])")));
  ASSERT_TRUE(pairs.ok()) << pairs.status().message();
  EXPECT_EQ((*pairs)->Encode("ab", false).value(), std::vector<int32_t>{4});
}

TEST(TokenizerTest, BadTokenizerJsonIsAnError) {
  struct Case {
    std::string name;
    std::string text;
    StatusCode code;
  };
  const Case cases[] = {
      {"truncated", TinyTokenizerJson().substr(0, 200), StatusCode::kCorrupt},
      {"not_json", "this is not json", StatusCode::kCorrupt},
      {"unigram", TinyTokenizerJson("Unigram"), StatusCode::kUnsupported},
      {"bad_merge", TinyTokenizerJson("BPE", R"(["a c"])"), StatusCode::kCorrupt},
      {"merge_shape", TinyTokenizerJson("BPE", R"(["abc"])"), StatusCode::kCorrupt},
      {"decoder", TinyTokenizerJson("BPE", "[]", R"({"type": "Metaspace"})"),
       StatusCode::kUnsupported},
      {"vocab_type", R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})",
       StatusCode::kCorrupt},
  };
  for (const Case& c : cases) {
    auto tokenizer = Tokenizer::FromTokenizerJson(WriteTemp(c.name + ".json", c.text));
    ASSERT_FALSE(tokenizer.ok()) << c.name;
    EXPECT_EQ(tokenizer.status().code(), c.code)
        << c.name << ": " << tokenizer.status().message();
  }
}

// The GGUF path: Gemma's vocabulary as arrays (pieces, SentencePiece scores,
// token types) encodes like the tokenizer.json, with SentencePiece's
// score-ordered merging instead of merge ranks.
class VocabularyArraysTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabularyArraysTest, MatchTokenizerJson) {
  const std::string name = GetParam();
  const Tokenizer& json = HfTokenizer(name);
  const nlohmann::json config = testing::ReadJson(name + "/tokenizer_config.json");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < json.vocab_size(); ++id) {
    pieces.emplace_back(json.Piece(id));
    // SentencePiece BPE scores pieces in vocabulary order (earlier merges
    // score higher).
    scores.push_back(-static_cast<float>(id));
    types.push_back(pieces.back().size() == 6 && pieces.back().starts_with("<0x")
                        ? static_cast<int32_t>(TokenType::kByte)
                        : static_cast<int32_t>(TokenType::kNormal));
  }
  for (const auto& [id, token] : config["added_tokens_decoder"].items()) {
    const int32_t i = std::stoi(id);
    types[i] = static_cast<int32_t>(token["content"] == "<unk>" ? TokenType::kUnknown
                                    : token["special"]          ? TokenType::kControl
                                                                : TokenType::kUserDefined);
    scores[i] = 0;
  }
  auto gguf = Tokenizer::FromVocabulary(
      std::move(pieces), std::move(scores), std::move(types),
      {json.bos_id(), json.eos_id(), json.pad_id(), json.unk_id()});
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  EXPECT_EQ((*gguf)->vocab_size(), json.vocab_size());
  EXPECT_EQ((*gguf)->TokenId("<end_of_turn>"), json.TokenId("<end_of_turn>"));

  int compared = 0;
  for (const char* file : {"reference.json", "hf_parity.json"}) {
    const nlohmann::json data = testing::ReadJson(file);
    const nlohmann::json& cases = std::string(file) == "reference.json"
                                      ? data["cases"][name]
                                      : data["cases"][name]["encode"];
    for (const nlohmann::json& c : cases) {
      const std::string text = c["text"];
      auto ids = (*gguf)->Encode(text, false);
      ASSERT_TRUE(ids.ok());
      EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>()) << c["text"].dump();
      ++compared;
    }
  }
  EXPECT_GT(compared, 300);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, VocabularyArraysTest,
                         ::testing::Values("gemma", "gemma3"));

TEST(TokenizerTest, VocabularyArraysAreValidated) {
  auto mismatched = Tokenizer::FromVocabulary({"<unk>", "a"}, {0}, {2, 1}, {});
  ASSERT_FALSE(mismatched.ok());
  EXPECT_EQ(mismatched.status().code(), StatusCode::kInvalidArgument);
  auto bad_id = Tokenizer::FromVocabulary({"<unk>", "a"}, {0, 0}, {2, 1},
                                          {.bos = 7});
  ASSERT_FALSE(bad_id.ok());
  auto tiny = Tokenizer::FromVocabulary({"<unk>", "a", "b", "ab", "▁"},
                                        {0, -1, -2, -3, -4}, {2, 1, 1, 1, 1}, {});
  ASSERT_TRUE(tiny.ok()) << tiny.status().message();
  EXPECT_EQ((*tiny)->unk_id(), 0);
  // "c" is unknown (no byte pieces): one <unk> for the run "cc".
  EXPECT_EQ((*tiny)->Encode("ab ccab", false).value(),
            (std::vector<int32_t>{3, 4, 0, 3}));
}

// Gemma 3's GGUF stores its whitespace pieces as user-defined symbols spelled
// with spaces ("  " is id 138), not "▁▁": they must still match runs of spaces.
TEST(TokenizerTest, VocabularyWhitespaceSymbolsMatchSpaces) {
  auto vocab = Tokenizer::FromVocabulary({"<unk>", "a", "▁", "  ", "   "}, {0, -1, -2, -1000, -1000},
                                         {2, 1, 1, 4, 4}, {});
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  EXPECT_EQ((*vocab)->Encode("a  a   a", false).value(), (std::vector<int32_t>{1, 3, 1, 4, 1}));
  EXPECT_EQ((*vocab)->Decode(std::vector<int32_t>{1, 3, 1}).value(), "a  a");
}

}  // namespace
}  // namespace gemmarun
