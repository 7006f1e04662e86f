// Regression tests of the hostile-input audit (issue 18) that need more than a file
// of tests/data/corrupt/: FIFOs, flags sized beyond the machine, verify's exit codes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/cli_test.h"
#include "runtime/logit_checks.h"
#include "testing/temp_dir.h"

namespace gemmarun {
namespace {

using testing::DataDir;
using testing::RunGemmarun;
using testing::TempDir;
namespace fs = std::filesystem;

void ExpectOneErrorLine(const testing::CommandResult& r, int exit_code, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, exit_code) << r.out << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

TEST(HardeningTest, FifoAsModelIsRefusedWithoutBlocking) {
  TempDir dir;
  const std::string fifo = (dir.path() / "model.gguf").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // Before the fix, opening the FIFO waited for a writer forever (ctest's timeout
  // then fails the test).
  auto r = RunGemmarun("generate -m " + fifo + " --ids 2 -n 1");
  ExpectOneErrorLine(r, 1, "not a regular file");
}

TEST(HardeningTest, FifoAsConfigOrTokenizerIsRefused) {
  TempDir dir;
  const std::string fifo = (dir.path() / "config.json").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  ExpectOneErrorLine(RunGemmarun("inspect --config " + fifo), 1, "not a regular file");
  ExpectOneErrorLine(RunGemmarun("tokenize --tokenizer " + fifo + " hi"), 1, "not a regular file");
}

TEST(HardeningTest, BandwidthBufferLargerThanMemoryIsAnError) {
  auto r = RunGemmarun("bench --bandwidth-only --bandwidth-mib 1000000 --reps 1");  // 1 TB, within the flag's range
  ExpectOneErrorLine(r, 1, "MiB of memory available");
  EXPECT_EQ(r.out, "");
}

TEST(HardeningTest, ModelLargerThanAvailableMemoryIsRefusedNamingBothSizes) {
  auto r = RunGemmarun("generate -m " + DataDir() + "/gemma1_mqa --ids 2,3 -n 1 -c 256");
  EXPECT_EQ(r.exit_code, 0) << r.err;  // fits on any machine
  // The same model on a machine that has 1 MiB left.
  setenv("GEMMARUN_MEM_AVAILABLE_MIB", "1", 1);
  // gemma1_mha: 1 MB of weights and 0.3 MB of f32 KV cache at 128 tokens.
  auto refused = RunGemmarun("generate -m " + DataDir() + "/gemma1_mha --ids 2,3 -n 1 -c 128");
  unsetenv("GEMMARUN_MEM_AVAILABLE_MIB");
  ExpectOneErrorLine(refused, 1, "and the KV cache at 128 tokens");
}

// A copy of a verify fixture with reference.json rewritten by `edit`.
std::string FixtureWithReference(const TempDir& dir, void (*edit)(nlohmann::json&)) {
  const fs::path copy = dir.path() / "fixture";
  fs::copy(DataDir() + "/gemma1_mqa", copy, fs::copy_options::recursive);
  std::ifstream in(copy / "reference.json");
  nlohmann::json reference = nlohmann::json::parse(in);
  in.close();
  edit(reference);
  std::ofstream(copy / "reference.json") << reference.dump();
  return copy.string();
}

TEST(HardeningTest, VerifyRefusesAReferenceWithoutPrompts) {
  TempDir dir;
  const std::string fixture = FixtureWithReference(dir, [](nlohmann::json& r) { r["prompts"] = nlohmann::json::array(); });
  ExpectOneErrorLine(RunGemmarun("verify " + fixture), 2, "the 'prompts' list is empty");
}

TEST(HardeningTest, VerifyRefusesAReferenceThatDisagreesWithItsTensors) {
  TempDir dir;
  const std::string fixture = FixtureWithReference(dir, [](nlohmann::json& r) { r["prompts"].erase(1); });
  ExpectOneErrorLine(RunGemmarun("verify " + fixture), 2,
                     "reference.json lists 1 prompts but reference.safetensors holds 2");
}

TEST(HardeningTest, VerifyCouldNotRunIsExitTwoAndMismatchStaysOne) {
  ExpectOneErrorLine(RunGemmarun("verify " + DataDir() + "/no_such_fixture"), 2, "no_such_fixture");
}

TEST(HardeningTest, AllTokenLogitsBeyondMemoryAreResourceExhausted) {
  setenv("GEMMARUN_MEM_AVAILABLE_MIB", "1024", 1);
  // perplexity -c 4096 on Gemma 3's vocabulary: 2 x 4096 x 262144 floats = 8.6 GB.
  const Status status = CheckLogitsFit(4096, 262144);
  const Status small = CheckLogitsFit(16, 262144);
  unsetenv("GEMMARUN_MEM_AVAILABLE_MIB");
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.message();
  EXPECT_NE(status.message().find("the logits of all 4096 tokens need 8.59 GB, but only 1.07 GB"), std::string::npos)
      << status.message();
  EXPECT_TRUE(small.ok()) << small.message();
}

TEST(HardeningTest, NonFiniteLogitsNameThePositionAndToken) {
  float values[2][3] = {{0.0f, 1.0f, 2.0f}, {0.5f, INFINITY, 1.0f}};
  const TensorView logits{values, DType::kF32, Shape{2, 3}};
  const Status status = CheckLogitsFinite(logits);
  EXPECT_NE(status.message().find("an infinite logit (position 1 of this step, token id 1)"), std::string::npos)
      << status.message();
  values[1][1] = 0.0f;
  EXPECT_TRUE(CheckLogitsFinite(logits).ok());
}

}  // namespace
}  // namespace gemmarun
