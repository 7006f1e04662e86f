// The whole engine on the GPU (EngineOptions::device = "cuda"): every reference
// fixture through VerifyFixture, the check `gemmarun verify --device cuda` runs
// (whole-prompt prefill, token by token through the paged cache, greedy), held
// to 1e-4 of the largest logit with f32 products (cuBLASLt without TF32); and
// the real Gemma 3 270M GGUF, whose greedy text must equal the CPU's. Each test
// skips without a GPU (the real-model test also without GEMMARUN_REAL_GGUF).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "cuda_test_util.h"
#include "gemmarun/engine.h"
#include "gemmarun/scheduler.h"
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

// Greedy tokens of several prompts of different lengths run together through
// the batch scheduler (chunked prefill and decode rows of several sequences in
// one pass, each against its own blocks or recurrent slot) on `device`.
Result<std::vector<std::vector<int32_t>>> BatchedGreedy(const std::string& dir, const std::string& device) {
  EngineOptions options;
  options.device = device;
  options.matmul_precision = "f32";
  options.cache_type = "f32";
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Load(dir, options));
  SchedulerOptions scheduler_options;
  scheduler_options.max_sequences = 4;
  scheduler_options.token_budget = 24;  // long prompts take several passes
  scheduler_options.context_length = 96;
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, engine->NewScheduler(scheduler_options));
  const std::vector<std::vector<int32_t>> prompts = {
      {2, 369, 137, 41},
      {2, 17, 250, 3, 99, 400, 12, 77, 123, 45, 67, 89, 101, 111, 121, 131, 141, 151, 161, 171, 181, 191, 201, 211,
       221, 231, 241, 251, 261, 271, 281, 291, 301},
      {2, 500, 499, 498, 497, 496, 495, 494, 493, 492, 491, 490, 489},
      {2, 7}};
  std::vector<std::vector<int32_t>> tokens(prompts.size());
  Status failure;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request request;
    request.prompt = prompts[i];
    request.options.max_new_tokens = 12;
    request.options.stop_at_eos = false;
    request.on_finish = [&, i](RequestId, const Result<GenerateResult>& result) {
      if (result.ok()) {
        tokens[i] = result->tokens;
      } else {
        failure = result.status();
      }
    };
    GR_ASSIGN_OR_RETURN(RequestId id, scheduler->Submit(std::move(request)));
    (void)id;
  }
  for (int steps = 0; steps < 1000; ++steps) {
    GR_ASSIGN_OR_RETURN(const bool busy, scheduler->Step());
    if (!busy) break;
  }
  GR_RETURN_IF_ERROR(failure);
  return tokens;
}

class CudaSchedulerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaSchedulerTest, BatchedSequencesDecodeAsOnTheCpu) {
  GR_SKIP_WITHOUT_GPU();
  const std::string dir = DataDir() + "/" + GetParam();
  auto cpu = BatchedGreedy(dir, "cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto cuda = BatchedGreedy(dir, "cuda");
  ASSERT_TRUE(cuda.ok()) << cuda.status().message();
  for (const auto& t : *cpu) EXPECT_EQ(t.size(), 12u);
  EXPECT_EQ(*cuda, *cpu);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaSchedulerTest, ::testing::Values("gemma2", "gemma3", "recurrentgemma"));

// Every logit of a prefill and 240 decode steps, with CUDA graphs on or off
// (GEMMARUN_CUDA_GRAPHS, read when the backend is created).
Result<std::vector<float>> DecodeLogits(const std::string& dir, bool graphs) {
  setenv("GEMMARUN_CUDA_GRAPHS", graphs ? "1" : "0", 1);
  EngineOptions options;
  options.device = "cuda";
  options.matmul_precision = "f32";
  options.cache_type = "f32";
  auto engine = Engine::Load(dir, options);
  unsetenv("GEMMARUN_CUDA_GRAPHS");
  GR_RETURN_IF_ERROR(engine.status());
  GR_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, (*engine)->NewSession(256));
  std::vector<int32_t> next = {2, 17, 250, 3, 99, 400, 12};
  std::vector<float> all;
  for (int step = 0; step <= 240; ++step) {
    GR_ASSIGN_OR_RETURN(Logits logits, session->Prefill(next));
    all.insert(all.end(), logits.values.begin(), logits.values.end());
    const std::span<const float> last = logits.row(logits.rows - 1);
    next = {static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin())};
  }
  return all;
}

class CudaGraphTest : public ::testing::TestWithParam<const char*> {};

// A replayed graph runs the recorded launches on the same buffers: bit for bit
// the pass launched op by op.
TEST_P(CudaGraphTest, ReplayedPassesEqualLaunchedOnesBitwise) {
  GR_SKIP_WITHOUT_GPU();
  const std::string dir = DataDir() + "/" + GetParam();
  auto eager = DecodeLogits(dir, false);
  ASSERT_TRUE(eager.ok()) << eager.status().message();
  auto graphs = DecodeLogits(dir, true);
  ASSERT_TRUE(graphs.ok()) << graphs.status().message();
  ASSERT_EQ(graphs->size(), eager->size());
  size_t differ = 0;
  for (size_t i = 0; i < eager->size(); ++i) differ += (*eager)[i] != (*graphs)[i];
  EXPECT_EQ(differ, 0u) << "of " << eager->size() << " logits";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaGraphTest, ::testing::Values("gemma1_mqa", "gemma2", "gemma3", "recurrentgemma"));

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
