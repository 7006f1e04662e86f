// ComputeLogprobs against a direct double-precision log-softmax and a full sort.
#include "runtime/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace gemmarun {
namespace {

std::vector<double> ReferenceLogSoftmax(const std::vector<float>& logits) {
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v));
  std::vector<double> out;
  for (float v : logits) out.push_back(v - std::log(sum));
  return out;
}

TEST(LogprobsTest, SmallVocabularyMatchesTheDefinition) {
  // softmax([0, ln 2, ln 5]) = [1/8, 2/8, 5/8].
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(5.0f)};
  const TokenLogprobs lp = ComputeLogprobs(logits, 1, 3);
  EXPECT_NEAR(lp.chosen, std::log(0.25), 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].id, 2);
  EXPECT_NEAR(lp.top[0].logprob, std::log(5.0 / 8), 1e-6);
  EXPECT_EQ(lp.top[1].id, 1);
  EXPECT_EQ(lp.top[2].id, 0);
  EXPECT_NEAR(lp.top[2].logprob, std::log(1.0 / 8), 1e-6);
}

TEST(LogprobsTest, LargeVocabularyTopNEqualsAFullSort) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> logits(262144);
  for (float& v : logits) v = normal(rng);
  logits[1234] = logits[99];  // a tie: the lower id comes first
  const std::vector<double> want = ReferenceLogSoftmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (int n : {1, 5, 20}) {
    const TokenLogprobs lp = ComputeLogprobs(logits, 4321, n);
    EXPECT_NEAR(lp.chosen, want[4321], 1e-5);
    ASSERT_EQ(lp.top.size(), static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(lp.top[i].id, order[i]) << i;
      EXPECT_NEAR(lp.top[i].logprob, want[order[i]], 1e-5) << i;
    }
  }
}

TEST(LogprobsTest, HugeLogitsDoNotOverflow) {
  const std::vector<float> logits = {1e30f, 1e30f, -1e30f};
  const TokenLogprobs lp = ComputeLogprobs(logits, 0, 2);
  EXPECT_NEAR(lp.chosen, -std::log(2.0), 1e-6);
  EXPECT_EQ(lp.top[0].id, 0);
  EXPECT_EQ(lp.top[1].id, 1);
}

TEST(LogprobsTest, TopNIsBoundedAndNaNIsNeverATopToken) {
  std::vector<float> logits(100, 0.0f);
  logits[3] = std::numeric_limits<float>::quiet_NaN();
  logits[50] = 1.0f;
  const TokenLogprobs lp = ComputeLogprobs(logits, 50, 1000);
  EXPECT_EQ(lp.top.size(), static_cast<size_t>(kMaxTopLogprobs));
  EXPECT_EQ(lp.top[0].id, 50);
  for (const TokenLogprob& t : lp.top) EXPECT_NE(t.id, 3);
  EXPECT_TRUE(ComputeLogprobs(logits, 50, 0).top.empty());
  EXPECT_EQ(ComputeLogprobs(std::vector<float>{0.5f, 0.25f}, 0, 20).top.size(), 2u);
}

}  // namespace
}  // namespace gemmarun
