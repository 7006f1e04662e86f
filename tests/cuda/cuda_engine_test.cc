// The whole engine on the GPU (EngineOptions::device = "cuda"): every reference
// fixture through VerifyFixture, the check `gemmarun verify --device cuda` runs
// (whole-prompt prefill, token by token through the paged cache, greedy), held
// to 1e-4 of the largest logit with f32 products (cuBLASLt without TF32); and
// the real Gemma 3 270M GGUF, whose greedy text must equal the CPU's. Each test
// skips without a GPU (the real-model test also without GEMMARUN_REAL_GGUF).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "cuda_test_util.h"
#include "gemmarun/engine.h"
#include "gemmarun/verify.h"

namespace gemmarun {
namespace {

// GEMMARUN_TEST_DATA overrides the source tree's tests/data, for a binary run
// on another machine than the one it was built on.
std::string DataDir() {
  const char* dir = std::getenv("GEMMARUN_TEST_DATA");
  return dir != nullptr ? dir : GR_TEST_DATA_DIR;
}

class CudaVerifyTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaVerifyTest, MatchesTheFloat64Reference) {
  GR_SKIP_WITHOUT_GPU();
  VerifyOptions options;
  options.device = "cuda";
  options.tolerance = 1e-4;
  auto report = VerifyFixture(DataDir() + "/" + GetParam(), options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->backend.rfind("cuda:0", 0), 0u) << report->backend;
  ASSERT_FALSE(report->prompts.empty());
  for (const PromptCheck& c : report->prompts) {
    EXPECT_TRUE(c.passed) << "prompt " << c.index << ": prefill " << c.prefill_max_diff << ", token by token "
                          << c.stepwise_max_diff << ", allowed " << c.allowed << ", greedy "
                          << (c.greedy_match ? "matches" : "differs");
    RecordProperty("prompt" + std::to_string(c.index) + "_prefill_max_diff", std::to_string(c.prefill_max_diff));
    RecordProperty("prompt" + std::to_string(c.index) + "_stepwise_max_diff", std::to_string(c.stepwise_max_diff));
  }
  EXPECT_TRUE(report->passed);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaVerifyTest,
                         ::testing::Values("gemma1_mqa", "gemma1_mha", "gemma1_mqa_bf16", "gemma2", "gemma2_v5config",
                                           "gemma3", "recurrentgemma", "paligemma"));

// A bad device name fails at load with a message naming it, GPU or not.
TEST(CudaEngine, UnknownDeviceIsAnError) {
  EngineOptions options;
  options.device = "cuda:x";
  auto engine = Engine::Load(DataDir() + "/gemma2", options);
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("cuda:x"), std::string::npos) << engine.status().message();
}

Result<std::string> GreedyText(const std::string& path, const std::string& device, int tokens) {
  EngineOptions options;
  options.device = device;
  options.context_length = 512;
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Load(path, options));
  GR_ASSIGN_OR_RETURN(std::vector<int32_t> prompt,
                      engine->Tokenize("The history of the printing press began", /*add_bos=*/true));
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine->NewSession());
  GenerateOptions generate;
  generate.max_new_tokens = tokens;
  generate.stop_at_eos = false;
  GR_ASSIGN_OR_RETURN(GenerateResult result, session->Generate(prompt, generate));
  if (static_cast<int>(result.tokens.size()) != tokens) {
    return Internal(device + " generated " + std::to_string(result.tokens.size()) + " tokens");
  }
  return result.text;
}

// The README's prompt, 64 greedy tokens: the GPU's text is the CPU's. Q4_K
// products differ in rounding (the CPU quantizes activations to int8 blocks,
// the GPU multiplies them in f32), so this holds while no top-2 margin on the
// path is within that rounding.
TEST(CudaEngine, RealModelGreedyTextEqualsTheCpus) {
  GR_SKIP_WITHOUT_GPU();
  const char* path = std::getenv("GEMMARUN_REAL_GGUF");
  if (path == nullptr) GTEST_SKIP() << "set GEMMARUN_REAL_GGUF (bash tools/fetch_default_model.sh prints it)";
  auto cpu = GreedyText(path, "cpu", 64);
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto cuda = GreedyText(path, "cuda", 64);
  ASSERT_TRUE(cuda.ok()) << cuda.status().message();
  EXPECT_EQ(*cuda, *cpu);
}

}  // namespace
}  // namespace gemmarun
