#include "runtime/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gemmarun {
namespace {

// Whether a is more likely than b, ties to the lower id: the order of `top`.
bool Better(const TokenLogprob& a, const TokenLogprob& b) {
  return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
}

}  // namespace

TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t chosen, int top_n) {
  TokenLogprobs out;
  if (logits.empty()) return out;
  // log-sum-exp in double, shifted by the maximum so that exp never overflows.
  float max_logit = -std::numeric_limits<float>::infinity();
  for (const float v : logits) max_logit = std::max(max_logit, v);  // std::max keeps max_logit on NaN
  double sum = 0.0;
  for (const float v : logits) {
    if (!std::isnan(v)) sum += std::exp(static_cast<double>(v) - max_logit);
  }
  // (logit - max) - log(sum), in that order: exact for the top tokens even when
  // the logits are far larger than their differences.
  const double log_sum = std::log(sum);
  auto logprob = [&](float logit) {
    return static_cast<float>((static_cast<double>(logit) - max_logit) - log_sum);
  };
  if (chosen >= 0 && static_cast<size_t>(chosen) < logits.size()) out.chosen = logprob(logits[chosen]);

  // A min-heap of the best top_n seen so far (its root is the worst of them):
  // one pass over the vocabulary, O(V log N), instead of sorting 262k logits.
  const size_t n = std::min<size_t>(std::clamp(top_n, 0, kMaxTopLogprobs), logits.size());
  if (n == 0) return out;
  std::vector<TokenLogprob> heap;
  heap.reserve(n + 1);
  for (size_t id = 0; id < logits.size(); ++id) {
    if (std::isnan(logits[id])) continue;
    // The raw logit orders like the logprob; convert only the entries kept.
    const TokenLogprob candidate{static_cast<int32_t>(id), logits[id]};
    if (heap.size() == n && !Better(candidate, heap.front())) continue;
    heap.push_back(candidate);
    std::push_heap(heap.begin(), heap.end(), Better);
    if (heap.size() > n) {
      std::pop_heap(heap.begin(), heap.end(), Better);
      heap.pop_back();
    }
  }
  std::sort(heap.begin(), heap.end(), Better);
  for (TokenLogprob& t : heap) t.logprob = logprob(t.logprob);
  out.top = std::move(heap);
  return out;
}

}  // namespace gemmarun
