// Chat keeps its cache between turns: a scripted three-turn conversation with a
// random-weight Gemma 2 model that speaks the real Gemma vocabulary.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/cli_test.h"
#include "gemmarun/chat.h"
#include "testing/codegemma_tokenizer.h"
#include "testing/random_model.h"

namespace gemmarun {
namespace {

namespace fs = std::filesystem;

// Gemma 2 layout (sliding + global layers) with the real 256000-token vocabulary.
const char* kConfig = R"({"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 32,
  "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
  "num_hidden_layers": 2, "sliding_window": 16, "query_pre_attn_scalar": 16,
  "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "max_position_embeddings": 512})";

class ChatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("gr_chat_model_" + std::to_string(::getpid())));
    ASSERT_TRUE(testing::WriteRandomModel(kConfig, dir_->string()).ok());
    fs::copy_file(testing::DataDir() + "/tokenizer/gemma/tokenizer.json", *dir_ / "tokenizer.json");
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* ChatTest::dir_ = nullptr;

TEST_F(ChatTest, LaterTurnsPrefillOnlyTheirOwnTokensAndMatchAFreshRun) {
  auto engine = Engine::Load(dir_->string());
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto chat = Chat::Create(**engine);
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  GenerateOptions options;
  options.max_new_tokens = 5;
  std::vector<int64_t> prefilled;
  for (const char* message : {"Hello there!", "What is 2+2?", "Thanks, bye."}) {
    const int64_t before = (*chat)->session().length();
    auto turn = (*chat)->Send(message, options);
    ASSERT_TRUE(turn.ok()) << turn.status().message();
    prefilled.push_back(turn->prefilled_tokens);
    // The cache grew by exactly this turn's tokens plus what was generated before it.
    EXPECT_LE((*chat)->session().length() - before, turn->prefilled_tokens + 1 + options.max_new_tokens);
  }
  // Token counts from HF tokenizers on the rendered template:
  // "<bos><start_of_turn>user\nHello there!<end_of_turn>\n<start_of_turn>model\n" is 12 ids, and
  // "<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n" is 17.
  EXPECT_EQ(prefilled[0], 12);
  EXPECT_EQ(prefilled[1], 17);
}

TEST_F(ChatTest, LogitsAfterThreeTurnsEqualAFreshPrefill) {
  auto engine = Engine::Load(dir_->string());
  ASSERT_TRUE(engine.ok());
  auto chat = Chat::Create(**engine);
  ASSERT_TRUE(chat.ok());
  GenerateOptions options;
  options.max_new_tokens = 4;
  options.stop_at_eos = false;
  for (const char* message : {"One", "Two", "Three"}) ASSERT_TRUE((*chat)->Send(message, options).ok());
  // Feed one more token to both: the chat session through its cache, the fresh one from scratch.
  std::vector<int32_t> all = (*chat)->session().tokens();
  const int32_t probe = 651;  // "The"
  auto cached = (*chat)->session().Prefill(std::span<const int32_t>(&probe, 1));
  all.push_back(probe);
  auto fresh_session = (*engine)->NewSession();
  auto fresh = (*fresh_session)->Prefill(all);
  ASSERT_TRUE(cached.ok() && fresh.ok());
  ASSERT_EQ(cached->values.size(), fresh->values.size());
  double worst = 0.0;
  for (size_t i = 0; i < cached->values.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(cached->values[i]) - fresh->values[i]));
  }
  EXPECT_LT(worst, 1e-4);
}

TEST_F(ChatTest, ScriptedChatThroughTheBinaryReportsPerTurnPrefill) {
  auto r = testing::RunGemmarun("chat --json -n 3 -m " + dir_->string(), "Hello there!\nWhat is 2+2?\nThanks, bye.\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> turns;
  size_t start = 0;
  while (start < r.out.size()) {
    const size_t end = r.out.find('\n', start);
    turns.push_back(nlohmann::json::parse(r.out.substr(start, end - start)));
    start = end + 1;
  }
  ASSERT_EQ(turns.size(), 3u) << r.out;
  // "<bos><start_of_turn>user\nHello there!<end_of_turn>\n<start_of_turn>model\n"
  EXPECT_EQ(turns[0]["prefilled_tokens"], 12);
  EXPECT_EQ(turns[1]["prefilled_tokens"], 17);  // only turn 2's own tokens
  EXPECT_EQ(turns[0]["context_tokens"], 12 + 3);
  EXPECT_GT(turns[2]["context_tokens"].get<int>(), turns[1]["context_tokens"].get<int>());
}

TEST_F(ChatTest, SystemPromptIsRejectedByGemma2Template) {
  auto r = testing::RunGemmarun("chat -s 'be brief' -m " + dir_->string(), "hi\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("System role not supported"), std::string::npos) << r.err;
}

TEST(CompleteTest, PrintPromptBuildsTheDocumentedIds) {
  const fs::path dir = fs::temp_directory_path() / ("gr_fim_model_" + std::to_string(::getpid()));
  ASSERT_TRUE(testing::WriteRandomModel(kConfig, dir.string()).ok());
  fs::copy_file(testing::CodeGemmaTokenizerJson(), dir / "tokenizer.json");
  const fs::path context = dir / "util.py";
  std::ofstream(context) << "import math\n";
  std::ofstream(dir / "prefix.py") << "def add(a, b):\n    ";
  std::ofstream(dir / "suffix.py") << "\n\nprint(add(1, 2))\n";
  auto r = testing::RunGemmarun("complete --print-prompt -m " + dir.string() + " --prefix-file " +
                                (dir / "prefix.py").string() + " --suffix-file " + (dir / "suffix.py").string() +
                                " --file-context " + context.string());
  fs::remove_all(dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Expected ids from HF tokenizers: <bos>, util.py, <|file_separator|>=70, <|fim_prefix|>=67, prefix,
  // <|fim_suffix|>=69, suffix, <|fim_middle|>=68.
  EXPECT_EQ(r.out,
            "2,809,10849,108,70,67,1293,1843,235278,235250,235269,518,1245,108,141,69,"
            "109,1431,235278,1254,235278,235274,235269,235248,235284,1269,108,68\n");
}

TEST_F(ChatTest, CompleteRefusesATokenizerWithoutFimTokens) {
  auto r = testing::RunGemmarun("complete --prefix 'def f():' --suffix '' -m " + dir_->string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs a CodeGemma tokenizer"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gemmarun
