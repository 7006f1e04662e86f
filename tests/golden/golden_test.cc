// Golden tests: every reference fixture (HF transformers, float64) must be
// reproduced by whole-prompt prefill, token-by-token decoding through the cache,
// and greedy decoding. The fixtures live in tests/data/<case>/.
#include <gtest/gtest.h>

#include "backend/cpu/attention.h"
#include "testing/golden.h"

namespace gemmarun {
namespace {

using testing::ExpectMatchesFixture;
using testing::PanelKernelsForEveryMatMul;

std::string FixtureDir(const char* name) { return std::string(GR_TEST_DATA_DIR) + "/" + name; }

class GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTest, MatchesReference) { ExpectMatchesFixture(FixtureDir(GetParam())); }

TEST_P(GoldenTest, MatchesReferenceThroughPanelKernels) {
  if (!PanelKernelsForEveryMatMul::available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  PanelKernelsForEveryMatMul panel;
  ExpectMatchesFixture(FixtureDir(GetParam()));
}

// Tiles of 3 query rows and 4 keys (decode pieces of 8): the prompts cross many
// query blocks and key tiles, windows straddle tile edges, and the tiles behind a
// window are skipped, on the fixtures' real models.
TEST_P(GoldenTest, MatchesReferenceThroughSmallAttentionTiles) {
  cpu::SetAttentionTileSizesForTest({3, 4, 8});
  ExpectMatchesFixture(FixtureDir(GetParam()));
  cpu::SetAttentionTileSizesForTest(cpu::kAttentionTileSizes);
}

INSTANTIATE_TEST_SUITE_P(Gemma1, GoldenTest, ::testing::Values("gemma1_mqa", "gemma1_mha", "gemma1_mqa_bf16"));
// Their prompts are longer than the sliding windows, so the token-by-token check
// wraps the ring buffers of the local layers.
INSTANTIATE_TEST_SUITE_P(Gemma2And3, GoldenTest, ::testing::Values("gemma2", "gemma2_v5config", "gemma3"));

}  // namespace
}  // namespace gemmarun
