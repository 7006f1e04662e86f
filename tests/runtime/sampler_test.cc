// The Sampler against the distribution its definition gives (computed here in double
// precision with a full sort): chi-square goodness of fit for temperature, top-k, top-p,
// min-p and their combinations, on small vocabularies (scalar tails), a 1,000-token one and
// the real 262,144-token size (the vectorised passes, the top-p ladder, the block walk).
// Seeds are fixed, so each test is deterministic; the threshold (p = 1e-6) would let a
// correct sampler fail with a new seed about once in a million.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "runtime/sampler.h"

namespace gemmarun {
namespace {

// Tokens listed out of order so that no rule can lean on ids following the logits.
const std::vector<float> kSmallLogits = {1.1f, -0.4f, 2.0f, 0.3f, -1.5f, 1.5f, 0.0f, -3.0f, 0.7f, -0.8f, 1.2f, -2.0f};
constexpr int kDraws = 20000;

SamplingOptions Options(float temperature, int top_k = 0, float top_p = 1.0f, float min_p = 0.0f, uint64_t seed = 1) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.min_p = min_p;
  o.seed = seed;
  return o;
}

// The definition: top-k by logit (ties: lower id), softmax over those, then the intersection
// of the smallest top-p prefix and the min-p set, renormalised.
std::vector<double> Reference(const std::vector<float>& logits, const SamplingOptions& o) {
  const size_t n = logits.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const size_t keep = o.top_k > 0 && static_cast<size_t>(o.top_k) < n ? o.top_k : n;
  const double max = logits[order[0]];
  std::vector<double> w(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += w[i] = std::exp((logits[order[i]] - max) / o.temperature);
  size_t cut = keep;
  for (size_t i = 0; i < keep; ++i) {
    if (o.min_p > 0.0f) {
      EXPECT_GT(std::abs(w[i] - o.min_p), 1e-5 * o.min_p) << "test case sits on the min-p boundary";
    }
    if (w[i] < o.min_p) {
      cut = std::min(cut, i);
      break;
    }
  }
  if (o.top_p < 1.0f) {
    double mass = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      mass += w[i] / total;
      if (mass >= o.top_p) {
        // The sampler's sums of float weights are good to ~1e-7: the crossing must not hinge
        // on digits below that.
        EXPECT_GT(mass - o.top_p, 3e-7) << "test case sits on the top-p boundary";
        EXPECT_GT(o.top_p - (mass - w[i] / total), 3e-7) << "test case sits on the top-p boundary";
        cut = std::min(cut, i + 1);
        break;
      }
    }
  }
  double kept = 0.0;
  for (size_t i = 0; i < cut; ++i) kept += w[i];
  std::vector<double> probs(n, 0.0);
  for (size_t i = 0; i < cut; ++i) probs[order[i]] = w[i] / kept;
  return probs;
}

std::vector<int64_t> DrawCounts(const std::vector<float>& logits, const SamplingOptions& o, int draws) {
  Sampler sampler(o);
  std::vector<float> work = logits;
  std::vector<int64_t> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const int32_t id = sampler.Sample(work, {});
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) {
      ADD_FAILURE() << "id out of range: " << id;
      break;
    }
    ++counts[id];
  }
  EXPECT_EQ(work, logits) << "no penalty is on: the logits must stay as they were";
  return counts;
}

// Upper 1e-6 tail of chi-square with `df` degrees of freedom (Wilson-Hilferty; within a few
// percent of the exact value from df = 1 up, conservative for small df).
double ChiSquareCritical(int df) {
  const double z = 4.753;  // standard normal quantile of 1 - 1e-6
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3);
}

struct Fit {
  double statistic = 0.0;
  int df = 0;
  bool outside_support = false;  // a token with probability 0 was drawn
};

// Pearson's statistic; bins expected to hold fewer than 5 draws are pooled (smallest first).
Fit ChiSquare(const std::vector<int64_t>& counts, const std::vector<double>& probs, int draws) {
  Fit fit;
  std::vector<std::pair<double, int64_t>> bins;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] > 0.0) {
      bins.emplace_back(probs[i] * draws, counts[i]);
    } else if (counts[i] > 0) {
      fit.outside_support = true;
    }
  }
  std::sort(bins.begin(), bins.end());
  std::vector<std::pair<double, int64_t>> pooled;
  double expected = 0.0;
  int64_t observed = 0;
  for (const auto& [e, o] : bins) {
    expected += e;
    observed += o;
    if (expected >= 5.0) {
      pooled.emplace_back(expected, observed);
      expected = 0.0;
      observed = 0;
    }
  }
  if (expected > 0.0 && !pooled.empty()) {
    pooled.back().first += expected;
    pooled.back().second += observed;
  } else if (expected > 0.0) {
    pooled.emplace_back(expected, observed);
  }
  for (const auto& [e, o] : pooled) fit.statistic += (o - e) * (o - e) / e;
  fit.df = static_cast<int>(pooled.size()) - 1;
  return fit;
}

bool Rejects(const Fit& fit) { return fit.outside_support || (fit.df > 0 && fit.statistic > ChiSquareCritical(fit.df)); }

// Draws, checks the fit and the support; returns the counts for further checks.
std::vector<int64_t> ExpectFollowsDefinition(const std::vector<float>& logits, const SamplingOptions& o,
                                             int draws = kDraws) {
  const std::vector<double> probs = Reference(logits, o);
  const std::vector<int64_t> counts = DrawCounts(logits, o, draws);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the kept set";
    }
  }
  const Fit fit = ChiSquare(counts, probs, draws);
  if (fit.df > 0) {
    EXPECT_LT(fit.statistic, ChiSquareCritical(fit.df)) << "df " << fit.df;
  }
  return counts;
}

// The kept set under the definition, as ids.
std::vector<int32_t> Support(const std::vector<double>& probs) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0.0) ids.push_back(static_cast<int32_t>(i));
  }
  return ids;
}

TEST(SamplerDistribution, Temperature) {
  const SamplingOptions o = Options(0.8f);
  const std::vector<int64_t> counts = ExpectFollowsDefinition(kSmallLogits, o);
  // The test has the power to tell temperatures apart.
  EXPECT_TRUE(Rejects(ChiSquare(counts, Reference(kSmallLogits, Options(1.0f)), kDraws)));
}

TEST(SamplerDistribution, TopK) {
  const SamplingOptions o = Options(1.3f, 5);
  ASSERT_EQ(Support(Reference(kSmallLogits, o)).size(), 5u);
  const std::vector<int64_t> counts = ExpectFollowsDefinition(kSmallLogits, o);
  EXPECT_TRUE(Rejects(ChiSquare(counts, Reference(kSmallLogits, Options(1.3f, 6)), kDraws)));
}

TEST(SamplerDistribution, TopP) {
  const SamplingOptions o = Options(1.0f, 0, 0.8f);
  const size_t kept = Support(Reference(kSmallLogits, o)).size();
  ASSERT_GT(kept, 1u);
  ASSERT_LT(kept, kSmallLogits.size());
  const std::vector<int64_t> counts = ExpectFollowsDefinition(kSmallLogits, o);
  EXPECT_TRUE(Rejects(ChiSquare(counts, Reference(kSmallLogits, Options(1.0f, 0, 0.7f)), kDraws)));
}

TEST(SamplerDistribution, MinP) {
  const SamplingOptions o = Options(0.9f, 0, 1.0f, 0.1f);
  const size_t kept = Support(Reference(kSmallLogits, o)).size();
  ASSERT_GT(kept, 1u);
  ASSERT_LT(kept, kSmallLogits.size());
  ExpectFollowsDefinition(kSmallLogits, o);
}

TEST(SamplerDistribution, TopPIsMeasuredAfterTopK) {
  // top-k removes enough mass that top-p over the whole vocabulary would keep fewer tokens.
  const SamplingOptions o = Options(1.5f, 6, 0.75f, 0.02f);
  SamplingOptions without_k = o;
  without_k.top_k = 0;
  ASSERT_NE(Support(Reference(kSmallLogits, o)).size(), Support(Reference(kSmallLogits, without_k)).size());
  ExpectFollowsDefinition(kSmallLogits, o);
}

TEST(SamplerDistribution, MinPBindsBeforeTopP) {
  const SamplingOptions o = Options(1.1f, 9, 0.97f, 0.2f);
  SamplingOptions without_min_p = o;
  without_min_p.min_p = 0.0f;
  ASSERT_LT(Support(Reference(kSmallLogits, o)).size(), Support(Reference(kSmallLogits, without_min_p)).size());
  ExpectFollowsDefinition(kSmallLogits, o);
}

TEST(SamplerDistribution, TiesAreOrderedById) {
  // Four equal logits and top-k 2: the two lowest ids are the ones kept.
  const std::vector<float> logits = {0.5f, 3.0f, 1.0f, 3.0f, 3.0f, 3.0f, -1.0f, 0.0f};
  const std::vector<int64_t> counts = ExpectFollowsDefinition(logits, Options(1.0f, 2));
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], 0);
  EXPECT_EQ(counts[4] + counts[5], 0);
}

std::vector<float> NormalLogits(size_t n, float stddev, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> logits(n);
  for (float& v : logits) v = normal(rng);
  return logits;
}

TEST(SamplerDistribution, ThousandTokens) {
  const std::vector<float> logits = NormalLogits(1000, 2.0f, 3);
  ExpectFollowsDefinition(logits, Options(0.8f));
  ExpectFollowsDefinition(logits, Options(0.8f, 0, 0.9f, 0.001f));
  ExpectFollowsDefinition(logits, Options(0.8f, 100, 0.95f));
  ExpectFollowsDefinition(logits, Options(1.2f, 0, 1.0f, 0.05f));
}

// A peaked row of the real vocabulary size: ten tokens far above a normal background
// (about 2% of the mass at temperature 1), some in the last partial vector and block.
std::vector<float> PeakedVocabulary() {
  std::vector<float> logits = NormalLogits(262144, 1.0f, 9);
  const size_t ids[] = {77777, 3, 262143, 131072, 5000, 200001, 262000, 150, 99999, 1000};
  const float peaks[] = {16.0f, 15.5f, 15.0f, 14.5f, 14.2f, 14.0f, 13.5f, 13.0f, 12.0f, 11.0f};
  for (size_t i = 0; i < std::size(ids); ++i) logits[ids[i]] = peaks[i];
  return logits;
}

TEST(SamplerDistribution, FullVocabularyPeaked) {
  const std::vector<float> logits = PeakedVocabulary();
  constexpr int kBigDraws = 2000;
  const SamplingOptions top_p = Options(1.0f, 0, 0.9f);
  EXPECT_EQ(Support(Reference(logits, top_p)), (std::vector<int32_t>{3, 5000, 77777, 131072, 200001, 262143}));
  ExpectFollowsDefinition(logits, top_p, kBigDraws);
  // The background carries weight too: plain temperature must draw it as often as it should.
  const std::vector<int64_t> counts = ExpectFollowsDefinition(logits, Options(1.0f), kBigDraws);
  int64_t background = kBigDraws;
  for (size_t id : {77777, 3, 262143, 131072, 5000, 200001, 262000, 150, 99999, 1000}) background -= counts[id];
  EXPECT_GT(background, 0);
  ExpectFollowsDefinition(logits, Options(1.0f, 4), kBigDraws);
  ExpectFollowsDefinition(logits, Options(1.0f, 0, 1.0f, 0.1f), kBigDraws);
  ExpectFollowsDefinition(logits, Options(0.7f, 40, 0.95f, 0.01f), kBigDraws);
}

TEST(SamplerDistribution, FullVocabularyFlat) {
  // A nucleus of thousands of tokens: the top-p ladder's low rungs and SelectMassPrefix's histograms.
  const std::vector<float> logits = NormalLogits(262144, 2.0f, 13);
  const SamplingOptions o = Options(0.8f, 0, 0.95f);
  ASSERT_GT(Support(Reference(logits, o)).size(), 1000u);
  ExpectFollowsDefinition(logits, o, 2000);
}

TEST(SamplerDistribution, SameSeedSameTokensOtherSeedOthers) {
  const std::vector<float> logits = NormalLogits(5000, 1.0f, 21);
  for (const SamplingOptions& base : {Options(0.8f), Options(0.8f, 0, 0.95f), Options(1.0f, 40), Options(0.9f, 0, 1.0f, 0.05f)}) {
    SamplingOptions o = base;
    o.seed = 42;
    o.repeat_penalty = 1.1f;
    o.presence_penalty = 0.5f;
    o.frequency_penalty = 0.2f;
    const auto run = [&](uint64_t seed) {
      SamplingOptions with_seed = o;
      with_seed.seed = seed;
      Sampler sampler(with_seed);
      std::vector<int32_t> history = {1, 2, 3};
      for (int i = 0; i < 200; ++i) {
        std::vector<float> work = logits;
        history.push_back(sampler.Sample(work, history));
      }
      return history;
    };
    EXPECT_EQ(run(42), run(42));
    EXPECT_NE(run(42), run(43));
  }
}

TEST(SamplerGreedy, ArgmaxWithTiesToTheLowestId) {
  std::vector<float> logits = NormalLogits(1000, 1.0f, 2);
  logits[613] = 9.0f;
  logits[40] = 9.0f;
  logits[999] = 9.0f;
  SamplingOptions o = Options(0.0f, 3, 0.5f, 0.5f);
  Sampler sampler(o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sampler.Sample(logits, {}), 40);
  std::vector<float> small = {0.0f, 2.0f, 2.0f};
  EXPECT_EQ(sampler.Sample(small, {}), 1);
}

TEST(SamplerEdges, MaskedNaNAndInfiniteLogits) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<SamplingOptions> modes = {Options(1.0f), Options(1.0f, 3), Options(1.0f, 0, 0.9f),
                                              Options(1.0f, 0, 1.0f, 0.01f), Options(0.0f)};
  for (const SamplingOptions& o : modes) {
    Sampler sampler(o);
    // -inf (masked) and NaN tokens are never drawn; the others are.
    std::vector<float> masked(43, -inf);  // 43: a scalar tail on every vector width
    masked[5] = std::nanf("");
    masked[41] = std::nanf("");
    masked[17] = 0.0f;
    masked[30] = 0.1f;
    int drawn_17 = 0;
    for (int i = 0; i < 200; ++i) {
      const int32_t id = sampler.Sample(masked, {});
      EXPECT_TRUE(id == 17 || id == 30) << id;
      drawn_17 += id == 17;
    }
    // Both are drawn (p = 0.475 and 0.525; top-p 0.9 keeps both) unless greedy.
    if (o.temperature > 0.0f) {
      EXPECT_GT(drawn_17, 40);
      EXPECT_LT(drawn_17, 160);
    }
    // A +inf logit takes all the weight.
    std::vector<float> with_inf(40, 1.0f);
    with_inf[12] = inf;
    EXPECT_EQ(sampler.Sample(with_inf, {}), 12);
    // Nothing finite at all: a valid id, as greedy would give.
    std::vector<float> nothing(40, -inf);
    EXPECT_EQ(sampler.Sample(nothing, {}), 0);
  }
}

TEST(SamplerPenalties, RepeatPresenceAndFrequencyChangeTheRightLogits) {
  SamplingOptions o;  // greedy: the penalties still apply, and the logits show them
  o.repeat_penalty = 2.0f;
  o.repeat_last_n = 4;
  o.presence_penalty = 0.5f;
  o.frequency_penalty = 0.25f;
  Sampler sampler(o);
  const std::vector<float> base = {1.0f, -1.0f, 2.0f, -2.0f, 3.0f, 4.0f, 0.5f, -0.5f};
  // The prompt: only the repeat penalty sees it, over its last 4 tokens (5, 1, 2, 2).
  std::vector<int32_t> history = {0, 5, 1, 2, 2};
  std::vector<float> logits = base;
  sampler.Sample(logits, history);
  std::vector<float> want = base;
  want[5] = 4.0f / 2.0f;
  want[1] = -1.0f * 2.0f;
  want[2] = 2.0f / 2.0f;
  EXPECT_EQ(logits, want);

  // Generated so far: 3, 3, 6 (and an out-of-vocabulary id, ignored).
  history.insert(history.end(), {3, 3, 6, 99});
  logits = base;
  sampler.Sample(logits, history);
  want = base;
  // Repeat window now: 3, 3, 6, 99.
  want[3] = -2.0f * 2.0f - (0.5f + 0.25f * 2);
  want[6] = 0.5f / 2.0f - (0.5f + 0.25f * 1);
  EXPECT_EQ(logits, want);

  // Counts keep accumulating: one more 6.
  history.push_back(6);
  logits = base;
  sampler.Sample(logits, history);
  want = base;
  want[3] = -2.0f * 2.0f - (0.5f + 0.25f * 2);
  want[6] = 0.5f / 2.0f - (0.5f + 0.25f * 2);
  EXPECT_EQ(logits, want);
}

TEST(SamplerPenalties, NegativePenaltiesRewardRepeats) {
  SamplingOptions o;
  o.presence_penalty = -1.0f;
  o.frequency_penalty = -0.5f;
  Sampler sampler(o);
  std::vector<float> logits = {1.0f, 0.0f, 0.9f};
  EXPECT_EQ(sampler.Sample(logits, std::vector<int32_t>{7}), 0);
  logits = {1.0f, 0.0f, 0.9f};
  EXPECT_EQ(sampler.Sample(logits, std::vector<int32_t>{7, 1}), 1);  // 0 + 1 + 0.5 > 1
}

TEST(SamplerValidation, RejectsBadValuesNamingTheOption) {
  const float nan = std::nanf("");
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* name;
    void (*set)(SamplingOptions&, float);
    std::vector<float> bad;
    std::vector<float> good;
  };
  const Case cases[] = {
      {"temperature", [](SamplingOptions& o, float v) { o.temperature = v; }, {nan, inf, -0.1f}, {0.0f, 0.8f, 5.0f}},
      {"top-p", [](SamplingOptions& o, float v) { o.top_p = v; }, {nan, inf, -0.5f, 0.0f, 1.01f}, {0.01f, 1.0f}},
      {"min-p", [](SamplingOptions& o, float v) { o.min_p = v; }, {nan, inf, -0.01f, 1.5f}, {0.0f, 1.0f}},
      {"repeat-penalty", [](SamplingOptions& o, float v) { o.repeat_penalty = v; }, {nan, inf, 0.0f, -1.0f}, {1.0f, 1.3f}},
      {"presence-penalty", [](SamplingOptions& o, float v) { o.presence_penalty = v; },
       {nan, inf, -inf, -2.01f, 2.5f}, {-2.0f, 0.0f, 2.0f}},
      {"frequency-penalty", [](SamplingOptions& o, float v) { o.frequency_penalty = v; },
       {nan, inf, -inf, -3.0f, 2.01f}, {-2.0f, 0.7f, 2.0f}},
  };
  for (const Case& c : cases) {
    for (float v : c.bad) {
      SamplingOptions o;
      c.set(o, v);
      const Status status = ValidateSampling(o);
      EXPECT_FALSE(status.ok()) << c.name << " " << v;
      EXPECT_NE(status.message().find(c.name), std::string::npos) << status.message();
    }
    for (float v : c.good) {
      SamplingOptions o;
      c.set(o, v);
      EXPECT_TRUE(ValidateSampling(o).ok()) << c.name << " " << v;
    }
  }
  SamplingOptions o;
  o.top_k = -1;
  EXPECT_NE(ValidateSampling(o).message().find("top-k"), std::string::npos);
  o = SamplingOptions();
  o.repeat_last_n = -1;
  EXPECT_NE(ValidateSampling(o).message().find("repeat-last-n"), std::string::npos);
}

}  // namespace
}  // namespace gemmarun
