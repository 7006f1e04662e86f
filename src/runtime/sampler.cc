#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace gemmarun {

Status ValidateSampling(const SamplingOptions& o) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature)) {
    return InvalidArgument("temperature must be >= 0, got " + std::to_string(o.temperature));
  }
  if (o.top_k < 0) return InvalidArgument("top-k must be >= 0, got " + std::to_string(o.top_k));
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) return InvalidArgument("top-p must be in (0, 1], got " + std::to_string(o.top_p));
  if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) return InvalidArgument("min-p must be in [0, 1], got " + std::to_string(o.min_p));
  if (!(o.repeat_penalty > 0.0f) || !std::isfinite(o.repeat_penalty)) {
    return InvalidArgument("repeat-penalty must be > 0, got " + std::to_string(o.repeat_penalty));
  }
  if (o.repeat_last_n < 0) return InvalidArgument("repeat-last-n must be >= 0");
  return Status::Ok();
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history) {
  if (options_.repeat_penalty != 1.0f && options_.repeat_last_n > 0) {
    const size_t start = history.size() > static_cast<size_t>(options_.repeat_last_n)
                             ? history.size() - options_.repeat_last_n
                             : 0;
    std::vector<int32_t> seen(history.begin() + start, history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
      float& l = logits[id];
      l = l > 0.0f ? l / options_.repeat_penalty : l * options_.repeat_penalty;
    }
  }
  if (options_.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) candidates_.emplace_back(logits[i] / options_.temperature, static_cast<int32_t>(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first; };
  size_t keep = candidates_.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep) {
    keep = options_.top_k;
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  const float max_logit = candidates_[0].first;
  double total = 0.0;
  for (auto& [value, id] : candidates_) total += (value = std::exp(value - max_logit));
  // min-p relative to the most likely token (whose weight is exp(0) = 1).
  size_t cut = candidates_.size();
  if (options_.min_p > 0.0f) {
    cut = 1;
    while (cut < candidates_.size() && candidates_[cut].first >= options_.min_p) ++cut;
  }
  if (options_.top_p < 1.0f) {
    double mass = 0.0;
    for (size_t i = 0; i < cut; ++i) {
      mass += candidates_[i].first / total;
      if (mass >= options_.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  double kept = 0.0;
  for (size_t i = 0; i < cut; ++i) kept += candidates_[i].first;
  std::uniform_real_distribution<double> uniform(0.0, kept);
  double r = uniform(rng_);
  for (size_t i = 0; i < cut; ++i) {
    r -= candidates_[i].first;
    if (r <= 0.0) return candidates_[i].second;
  }
  return candidates_[cut - 1].second;
}

}  // namespace gemmarun
