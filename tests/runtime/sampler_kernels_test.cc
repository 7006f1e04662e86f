// The sampler's vectorised passes against scalar double-precision references, on every
// Highway target compiled in, with lengths that are not multiples of any vector or block
// size; and SelectMassPrefix against a full sort.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "hwy/targets.h"
#include "runtime/sampler.h"
#include "runtime/sampler_kernels.h"

namespace gemmarun {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const size_t kLengths[] = {1, 7, 16, 33, 1000, 1024, 1025, 5000};

std::vector<float> RandomLogits(size_t n, uint32_t seed, float stddev = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> logits(n);
  for (float& v : logits) v = normal(rng);
  return logits;
}

template <class F>
void ForEachTarget(F&& f) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    f();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(SamplerKernels, ArgMaxIsTheLowestIndexOfTheMax) {
  ForEachTarget([] {
    for (size_t n : kLengths) {
      std::vector<float> x = RandomLogits(n, static_cast<uint32_t>(n));
      // Ties in different lanes and in the scalar tail: the lowest index must win.
      const size_t first = n / 3;
      x[first] = 100.0f;
      if (n > 1) x[n - 1] = 100.0f;
      if (n > 20) x[first + 17] = 100.0f;
      const sampling::ArgMaxResult result = sampling::ArgMax(x.data(), n);
      EXPECT_EQ(result.index, first) << n;
      EXPECT_EQ(result.value, 100.0f);
    }
    std::vector<float> with_nan = {1.0f, std::nanf(""), 3.0f, -kInf, 2.0f};
    EXPECT_EQ(sampling::ArgMax(with_nan.data(), with_nan.size()).index, 2u);
    std::vector<float> long_with_nan(100, -1.0f);
    long_with_nan[3] = std::nanf("");
    long_with_nan[70] = 0.5f;
    EXPECT_EQ(sampling::ArgMax(long_with_nan.data(), long_with_nan.size()).index, 70u);
  });
}

TEST(SamplerKernels, ExpWeightsMatchesScalarSums) {
  const float rungs[] = {-0.5f, -2.0f, -6.0f, -30.0f};
  ForEachTarget([&] {
    for (size_t n : kLengths) {
      for (const auto& [min_log_weight, rung_count] : {std::pair{-kInf, std::size(rungs)}, std::pair{-3.0f, std::size(rungs)},
                                                       std::pair{-kInf, size_t{0}}, std::pair{-3.0f, size_t{0}}}) {
        const std::vector<float> logits = RandomLogits(n, 7 + static_cast<uint32_t>(n));
        const float max = *std::max_element(logits.begin(), logits.end());
        const float inv_temp = 1.0f / 0.8f;
        const sampling::WeightsPass pass{logits.data(), n, max, inv_temp, min_log_weight, rungs, rung_count};
        std::vector<float> weights(n);
        std::vector<double> block_sums((n + sampling::kWeightBlock - 1) / sampling::kWeightBlock);
        double rung_mass[std::size(rungs)];
        const double total = sampling::ExpWeights(pass, weights.data(), block_sums.data(), rung_mass);

        double want_total = 0.0;
        std::vector<double> want_blocks(block_sums.size(), 0.0);
        double want_rungs[std::size(rungs)] = {};
        for (size_t i = 0; i < n; ++i) {
          const float x = (logits[i] - max) * inv_temp;
          const double w = x >= min_log_weight ? std::exp(static_cast<double>(x)) : 0.0;
          EXPECT_NEAR(weights[i], w, 2e-6 * w + 1e-30) << i;
          want_total += w;
          want_blocks[i / sampling::kWeightBlock] += w;
          for (size_t r = 0; r < std::size(rungs); ++r) {
            if (x >= rungs[r]) want_rungs[r] += w;
          }
        }
        EXPECT_NEAR(total, want_total, 1e-5 * want_total);
        for (size_t b = 0; b < block_sums.size(); ++b) EXPECT_NEAR(block_sums[b], want_blocks[b], 1e-5 * want_blocks[b]);
        for (size_t r = 0; r < rung_count; ++r) EXPECT_NEAR(rung_mass[r], want_rungs[r], 1e-5 * want_total) << r;
      }
    }
  });
}

TEST(SamplerKernels, CollectPassesReturnExactlyTheSelectedIndicesInOrder) {
  ForEachTarget([] {
    for (size_t n : kLengths) {
      const std::vector<float> logits = RandomLogits(n, 11 + static_cast<uint32_t>(n));
      const float max = *std::max_element(logits.begin(), logits.end());
      const float inv_temp = 1.25f;
      std::vector<int32_t> out(n + sampling::kCollectPadding);
      for (float min_log_weight : {0.0f, -1.0f, -5.0f, -kInf}) {
        std::vector<int32_t> want;
        for (size_t i = 0; i < n; ++i) {
          if ((logits[i] - max) * inv_temp >= min_log_weight) want.push_back(static_cast<int32_t>(i));
        }
        const size_t count = sampling::CollectAtLeast(logits.data(), n, max, inv_temp, min_log_weight, out.data());
        EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + count), want) << n << " " << min_log_weight;
      }
      const size_t begin = n / 5;
      for (float threshold : {-1.0f, 2.0f, -kInf}) {
        std::vector<int32_t> want;
        for (size_t i = begin; i < n; ++i) {
          if (logits[i] > threshold) want.push_back(static_cast<int32_t>(i));
        }
        const size_t count = sampling::CollectAbove(logits.data(), begin, n, threshold, out.data());
        EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + count), want) << n << " " << threshold;
      }
    }
  });
}

// The prefix of the fully sorted order, as the definition states it.
size_t SortedMassPrefix(std::vector<Sampler::Candidate> c, double target) {
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  });
  double mass = 0.0;
  for (size_t i = 0; i < c.size(); ++i) {
    mass += c[i].weight;
    if (mass >= target) return i + 1;
  }
  return c.size();
}

TEST(SamplerKernels, SelectMassPrefixKeepsTheSortedPrefix) {
  std::mt19937 rng(5);
  for (size_t n : {1, 2, 47, 48, 49, 300, 5000}) {
    for (int trial = 0; trial < 20; ++trial) {
      // Coarse logits make ties common, so the id order matters.
      std::uniform_int_distribution<int> level(0, trial % 2 == 0 ? 12 : 1000);
      const float step = trial % 2 == 0 ? 0.25f : 0.01f;
      std::vector<Sampler::Candidate> c(n);
      double total = 0.0;
      for (size_t i = 0; i < n; ++i) {
        float logit = static_cast<float>(level(rng)) * step;
        if (trial % 4 == 1 && i % 3 == 0) logit = -kInf;          // masked tokens, weight 0
        if (trial % 4 == 3 && i % 97 == 0) logit = 30.0f + logit;  // a few far above the rest
        c[i] = {logit, std::exp(logit - 40.0f), static_cast<int32_t>(i)};
        total += c[i].weight;
      }
      std::shuffle(c.begin(), c.end(), rng);
      for (double share : {0.01, 0.5, 0.9, 0.999, 1.5}) {
        const double target = share * total;
        const size_t want = SortedMassPrefix(c, target);
        std::vector<Sampler::Candidate> got = c;
        Sampler::MassPrefixScratch scratch;
        const size_t count = SelectMassPrefix(got, target, scratch);
        ASSERT_EQ(count, want) << n << " " << share;
        // Same members as the sorted prefix (the order inside is free).
        std::vector<Sampler::Candidate> sorted = c;
        std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
          return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
        });
        std::vector<int32_t> want_ids, got_ids;
        for (size_t i = 0; i < count; ++i) {
          want_ids.push_back(sorted[i].id);
          got_ids.push_back(got[i].id);
        }
        std::sort(want_ids.begin(), want_ids.end());
        std::sort(got_ids.begin(), got_ids.end());
        EXPECT_EQ(got_ids, want_ids) << n << " " << share;
      }
    }
  }
}

}  // namespace
}  // namespace gemmarun
