// Turns a row of logits into a token id: repetition, presence and frequency penalties, then
// greedy or temperature + top-k + top-p + min-p sampling from a seeded generator.
//
// The distribution (with x_i = penalised logit_i / temperature):
//   1. top-k keeps the k largest logits (all when k is 0 or >= the vocabulary);
//   2. p_i = softmax(x) over that set;
//   3. top-p keeps the smallest prefix, in order of decreasing logit, whose mass under p is >= top_p;
//      min-p keeps the tokens with p_i >= min_p * p_max; the token is drawn from the intersection
//      (a prefix in the same order), with weights p_i renormalised.
// Equal logits are ordered by id (lower first), so the sets are well defined. Greedy
// (temperature <= 0) is the argmax, the lowest id on ties.
//
// Cost per token: no sort of the vocabulary and no allocation once the buffers are sized.
// A pass finds the max; top-k filters against a running k-th best and partitions the few
// survivors; top-p computes all weights in one vectorised pass that also sums the mass above a
// ladder of thresholds, collects only the tokens above the highest threshold that holds top_p of
// the mass, and finds the prefix by histograms of the candidates' mass by logit; plain
// temperature and min-p draw from block sums of the weights.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "gemmarun/sampling.h"
#include "gemmarun/status.h"

namespace gemmarun {

Status ValidateSampling(const SamplingOptions& options);

// One Sampler per sequence: the presence and frequency penalties count the tokens the history
// gained after the first Sample() call (the generated ones). A history shorter than the one seen
// before starts that count again.
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // `logits` is modified (penalties); `history` is every token of the sequence so far.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history);

  struct Candidate {
    float logit;
    float weight;  // exp((logit - max) / temperature)
    int32_t id;
  };
  // SelectMassPrefix's buffers, kept across calls.
  struct MassPrefixScratch {
    std::vector<double> bin_mass;
    std::vector<Candidate> spare;
  };

 private:
  void ApplyPenalties(std::span<float> logits, std::span<const int32_t> history);
  int32_t SampleTopK(std::span<const float> logits, float inv_temp);
  int32_t SampleTopP(std::span<const float> logits, float max, float inv_temp);
  int32_t SampleAll(std::span<const float> logits, float max, float inv_temp, size_t fallback);
  // Draws from candidates_[0, count) by weight.
  int32_t Draw(size_t count);

  SamplingOptions options_;
  float min_log_weight_;  // log(min_p): -inf when min-p is off
  std::mt19937_64 rng_;
  // Buffers reused across calls (sized on first use, for the vocabulary of the first call).
  std::vector<float> weights_;
  std::vector<double> block_sums_;
  std::vector<int32_t> ids_;
  std::vector<Candidate> candidates_;
  MassPrefixScratch mass_prefix_scratch_;
  std::vector<int32_t> window_;  // repetition-penalty window, deduplicated
  // Presence/frequency: how often each id was generated, and the ids with a count.
  std::vector<int32_t> counts_;
  std::vector<int32_t> generated_ids_;
  size_t counted_to_ = 0;  // history entries before this one are counted (or were the prompt)
  bool started_ = false;
};

// Reorders `candidates` so that its first `result` entries are the smallest prefix, in order of
// decreasing logit (then increasing id), whose weights sum to >= target; all of them when the
// total falls short. The entries of the prefix are left in no particular order. O(n) but for
// runs of equal logits, which are sorted.
size_t SelectMassPrefix(std::span<Sampler::Candidate> candidates, double target, Sampler::MassPrefixScratch& scratch);

}  // namespace gemmarun
