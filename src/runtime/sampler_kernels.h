// Vectorised passes over a row of logits for the Sampler. All of them read
// the logits once and allocate nothing; the Sampler owns every buffer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gemmarun::sampling {

struct ArgMaxResult {
  size_t index = 0;  // the lowest index holding the largest value
  float value = 0.0f;
};
// NaNs never win; an all-NaN (or all -inf) row gives index 0.
ArgMaxResult ArgMax(const float* x, size_t n);

// Every pass that scores tokens uses the same "log weight" x_i = (logits_i - max) * inv_temp,
// i.e. log(p_i / p_max), computed the same way everywhere so that a threshold on x selects
// exactly the tokens whose weights were summed under it.
inline constexpr size_t kWeightBlock = 1024;   // tokens per entry of block_sums
inline constexpr size_t kMaxRungs = 16;
inline constexpr size_t kCollectPadding = 64;  // extra entries the Collect* outputs may touch

struct WeightsPass {
  const float* logits = nullptr;
  size_t n = 0;
  float max = 0.0f;
  float inv_temp = 1.0f;
  float min_log_weight = 0.0f;  // tokens with x below it get weight 0 (min-p); -inf keeps all
  const float* rungs = nullptr;  // x thresholds, highest first: the mass of the tokens at or above each
  size_t rung_count = 0;         // <= kMaxRungs
};
// Writes weights[i] = exp(x_i) (0 below min_log_weight), block_sums[b] = the sum over block b
// of kWeightBlock tokens, rung_mass[j] = the sum of the weights with x_i >= rungs[j].
// Returns the sum of all weights.
double ExpWeights(const WeightsPass& pass, float* weights, double* block_sums, double* rung_mass);

// Writes the indices i with x_i >= min_log_weight to out in increasing order; returns how many.
// out needs room for n + kCollectPadding entries.
size_t CollectAtLeast(const float* logits, size_t n, float max, float inv_temp, float min_log_weight, int32_t* out);

// Writes the indices i in [begin, end) with logits[i] > threshold to out in increasing order;
// returns how many. out needs room for end - begin + kCollectPadding entries.
size_t CollectAbove(const float* logits, size_t begin, size_t end, float threshold, int32_t* out);

}  // namespace gemmarun::sampling
