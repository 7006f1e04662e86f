// Turns a row of logits into a token id: repetition penalty, then greedy or
// temperature + top-k + top-p + min-p sampling from a seeded generator.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "gemmarun/sampling.h"
#include "gemmarun/status.h"

namespace gemmarun {

Status ValidateSampling(const SamplingOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // `logits` is modified (penalties); `history` is every token of the sequence so far.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused across calls
};

}  // namespace gemmarun
