// The golden check shared by every fixture test: whole-prompt prefill,
// token-by-token decoding and greedy decoding against HF's float64 reference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "backend/cpu/matmul.h"
#include "backend/cpu/matmul_panel.h"
#include "gemmarun/verify.h"

namespace gemmarun::testing {

// Whether the fixture must have a token-by-token check (PaliGemma's has none).
enum class Stepwise { kIfApplicable, kRequired };

inline void ExpectMatchesFixture(const std::string& dir, Stepwise stepwise = Stepwise::kIfApplicable) {
  auto report = VerifyFixture(dir);
  ASSERT_TRUE(report.ok()) << report.status().message();
  ASSERT_FALSE(report->prompts.empty());
  for (const PromptCheck& c : report->prompts) {
    SCOPED_TRACE("prompt " + std::to_string(c.index));
    // A float32 engine lands near 1e-5 of these O(1-10) logits; 1e-4 leaves room
    // for summation order while still catching any real mistake.
    const double tight = 1e-4 * std::max(1.0, c.max_abs_logit);
    EXPECT_LE(c.prefill_max_diff, tight);
    if (stepwise == Stepwise::kRequired) {
      ASSERT_GE(c.stepwise_max_diff, 0.0);
    }
    if (c.stepwise_max_diff >= 0) {
      EXPECT_LE(c.stepwise_max_diff, tight);
    }
    EXPECT_EQ(c.greedy_actual, c.greedy_expected);
    EXPECT_TRUE(c.passed);
  }
}

// The fixtures' prompts are shorter than the 16 tokens from which prefill takes
// the AVX-512 panel kernels: this sends every matmul (decode included) there
// for its lifetime, so the default exact path of long prompts meets the
// references too. available() is false on CPUs without AVX-512.
class PanelKernelsForEveryMatMul {
 public:
  PanelKernelsForEveryMatMul() { cpu::SetPanelMinTokensForTest(1); }
  ~PanelKernelsForEveryMatMul() { cpu::SetPanelMinTokensForTest(0); }
  PanelKernelsForEveryMatMul(const PanelKernelsForEveryMatMul&) = delete;
  PanelKernelsForEveryMatMul& operator=(const PanelKernelsForEveryMatMul&) = delete;
  static bool available() { return cpu::HasPanelKernels(); }
};

}  // namespace gemmarun::testing
