// Golden tests: every reference fixture (HF transformers, float64) must be
// reproduced by whole-prompt prefill, token-by-token decoding through the cache,
// and greedy decoding. The fixtures live in tests/data/<case>/.
#include <gtest/gtest.h>

#include "backend/cpu/matmul.h"
#include "backend/cpu/matmul_panel.h"
#include "gemmarun/verify.h"

namespace gemmarun {
namespace {

class GoldenTest : public ::testing::TestWithParam<const char*> {};

void ExpectMatchesReference(const char* fixture) {
  const std::string dir = std::string(GR_TEST_DATA_DIR) + "/" + fixture;
  auto report = VerifyFixture(dir);
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_FALSE(report->prompts.empty());
  for (const PromptCheck& c : report->prompts) {
    SCOPED_TRACE("prompt " + std::to_string(c.index));
    // A float32 engine lands near 1e-5 of these O(1-10) logits; 1e-4 leaves room
    // for summation order while still catching any real mistake.
    const double tight = 1e-4 * std::max(1.0, c.max_abs_logit);
    EXPECT_LE(c.prefill_max_diff, tight);
    if (c.stepwise_max_diff >= 0) {
      EXPECT_LE(c.stepwise_max_diff, tight);
    }
    EXPECT_EQ(c.greedy_actual, c.greedy_expected);
    EXPECT_TRUE(c.passed);
  }
}

TEST_P(GoldenTest, MatchesReference) { ExpectMatchesReference(GetParam()); }

// The fixtures' prompts are shorter than the 16 tokens from which prefill takes
// the AVX-512 panel kernels: run them again with every matmul (decode included)
// sent there, so the default exact path of long prompts meets the references too.
TEST_P(GoldenTest, MatchesReferenceThroughPanelKernels) {
  if (!cpu::HasPanelKernels()) GTEST_SKIP() << "no AVX-512 on this CPU";
  cpu::SetPanelMinTokensForTest(1);
  ExpectMatchesReference(GetParam());
  cpu::SetPanelMinTokensForTest(0);
}

INSTANTIATE_TEST_SUITE_P(Gemma1, GoldenTest, ::testing::Values("gemma1_mqa", "gemma1_mha", "gemma1_mqa_bf16"));
// Their prompts are longer than the sliding windows, so the token-by-token check
// wraps the ring buffers of the local layers.
INSTANTIATE_TEST_SUITE_P(Gemma2And3, GoldenTest, ::testing::Values("gemma2", "gemma2_v5config", "gemma3"));

}  // namespace
}  // namespace gemmarun
