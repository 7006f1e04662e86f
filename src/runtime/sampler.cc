#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "base/check.h"
#include "runtime/sampler_kernels.h"

namespace gemmarun {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Log-weight thresholds (log p / p_max), highest first. Top-p collects the tokens above the
// highest rung that holds enough mass, so the finer the ladder near 0, the fewer candidates a
// peaked distribution hands to SelectMassPrefix; each rung costs a pass over the blocks that
// reach it.
constexpr float kRungs[] = {-0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f,
                            -5.0f, -6.0f, -7.0f,  -8.0f, -10.0f, -12.0f, -16.0f, -24.0f};
static_assert(std::size(kRungs) <= sampling::kMaxRungs);
// The rung sums and the candidates' own sum round differently: only trust a rung that holds
// the target with room to spare (a rung too low only costs time, one too high would be wrong).
constexpr double kRungMargin = 1.0 + 1e-5;
// SelectMassPrefix sorts ranges this small, and bins larger ones into at most kMaxBins.
constexpr size_t kSortBelow = 48;
constexpr size_t kMaxBins = 4096;

template <class T>
void GrowTo(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

bool Better(const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

std::string PenaltyRangeError(const char* name, float value) {
  return std::string(name) + " must be in [-2, 2], got " + std::to_string(value);
}

}  // namespace

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
  if (o.repeat_last_n < 0) return InvalidArgument("repeat-last-n must be >= 0, got " + std::to_string(o.repeat_last_n));
  if (!(o.presence_penalty >= -2.0f && o.presence_penalty <= 2.0f)) {
    return InvalidArgument(PenaltyRangeError("presence-penalty", o.presence_penalty));
  }
  if (!(o.frequency_penalty >= -2.0f && o.frequency_penalty <= 2.0f)) {
    return InvalidArgument(PenaltyRangeError("frequency-penalty", o.frequency_penalty));
  }
  return Status::Ok();
}

size_t SelectMassPrefix(std::span<Sampler::Candidate> c, double target, Sampler::MassPrefixScratch& scratch) {
  // [0, lo) is in the prefix, [hi, size) is not; `target` is what [lo, hi) still has to supply.
  // Each round bins [lo, hi) by logit (a monotone key, so whole bins are in or out), finds the
  // bin where the mass crosses the target, and narrows to it.
  size_t lo = 0;
  size_t hi = c.size();
  while (hi - lo > kSortBelow) {
    float top = -kInf;
    float bottom = kInf;
    for (size_t i = lo; i < hi; ++i) {
      top = std::max(top, c[i].logit);
      if (c[i].logit > -kInf) bottom = std::min(bottom, c[i].logit);
    }
    const float span = top - bottom;
    if (!(span > 0.0f) || !std::isfinite(span)) break;  // all equal: the id order decides
    const size_t bins = std::clamp<size_t>((hi - lo) / 4, 64, kMaxBins);
    const float scale = static_cast<float>(bins - 1) / span;
    const auto bin_of = [&](float logit) {
      const float b = (top - logit) * scale;
      return b < static_cast<float>(bins) ? static_cast<size_t>(b) : bins - 1;
    };
    std::vector<double>& bin_mass = scratch.bin_mass;
    bin_mass.assign(bins, 0.0);
    for (size_t i = lo; i < hi; ++i) bin_mass[bin_of(c[i].logit)] += c[i].weight;
    size_t crossing = 0;
    double before = 0.0;
    while (crossing < bins && before + bin_mass[crossing] < target) before += bin_mass[crossing++];
    if (crossing == bins) return hi;
    // Move the bins before the crossing to the front and the crossing bin after them. Written
    // without branches (a cursor advances or not), since whether a token is in is a coin flip.
    const size_t len = hi - lo;
    GrowTo(scratch.spare, 2 * len + 2);
    Sampler::Candidate* in = scratch.spare.data();
    Sampler::Candidate* at_crossing = in + len + 1;
    size_t ins = 0;
    size_t crossings = 0;
    for (size_t i = lo; i < hi; ++i) {
      const size_t bin = bin_of(c[i].logit);
      in[ins] = c[i];
      at_crossing[crossings] = c[i];
      ins += bin < crossing;
      crossings += bin == crossing;
    }
    std::copy(in, in + ins, c.begin() + lo);
    std::copy(at_crossing, at_crossing + crossings, c.begin() + lo + ins);
    target -= before;
    lo += ins;
    hi = lo + crossings;
  }
  std::sort(c.begin() + lo, c.begin() + hi, Better);
  for (size_t i = lo; i < hi; ++i) {
    if (c[i].weight >= target) return i + 1;
    target -= c[i].weight;
  }
  return hi;
}

Sampler::Sampler(const SamplingOptions& options)
    : options_(options), min_log_weight_(options.min_p > 0.0f ? std::log(options.min_p) : -kInf), rng_(options.seed) {}

void Sampler::ApplyPenalties(std::span<float> logits, std::span<const int32_t> history) {
  const auto in_vocab = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < logits.size(); };
  if (options_.repeat_penalty != 1.0f && options_.repeat_last_n > 0) {
    const size_t window = std::min(history.size(), static_cast<size_t>(options_.repeat_last_n));
    window_.clear();
    if (window_.capacity() < window) window_.reserve(std::max(window, 2 * window_.capacity()));
    window_.insert(window_.end(), history.end() - window, history.end());
    std::sort(window_.begin(), window_.end());
    window_.erase(std::unique(window_.begin(), window_.end()), window_.end());
    for (int32_t id : window_) {
      if (!in_vocab(id)) continue;
      float& l = logits[id];
      l = l > 0.0f ? l / options_.repeat_penalty : l * options_.repeat_penalty;
    }
  }
  if (options_.presence_penalty == 0.0f && options_.frequency_penalty == 0.0f) return;
  if (!started_ || history.size() < counted_to_ || counts_.size() != logits.size()) {
    for (int32_t id : generated_ids_) {
      if (static_cast<size_t>(id) < counts_.size()) counts_[id] = 0;
    }
    generated_ids_.clear();
    if (counts_.size() != logits.size()) counts_.assign(logits.size(), 0);
    counted_to_ = history.size();
    started_ = true;
  }
  for (size_t i = counted_to_; i < history.size(); ++i) {
    const int32_t id = history[i];
    if (in_vocab(id) && counts_[id]++ == 0) generated_ids_.push_back(id);
  }
  counted_to_ = history.size();
  for (int32_t id : generated_ids_) {
    logits[id] -= options_.presence_penalty + options_.frequency_penalty * static_cast<float>(counts_[id]);
  }
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history) {
  GR_CHECK(!logits.empty()) << "Sampler::Sample: no logits";
  ApplyPenalties(logits, history);
  const size_t n = logits.size();
  const float inv_temp = 1.0f / options_.temperature;
  // A temperature so small that only the argmax can carry weight is greedy too.
  if (options_.temperature <= 0.0f || !std::isfinite(inv_temp)) {
    return static_cast<int32_t>(sampling::ArgMax(logits.data(), n).index);
  }
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < n) return SampleTopK(logits, inv_temp);
  const sampling::ArgMaxResult best = sampling::ArgMax(logits.data(), n);
  // Nothing to weigh: every logit -inf/NaN, or an infinite one that takes all the weight.
  if (!std::isfinite(best.value)) return static_cast<int32_t>(best.index);
  if (options_.top_p < 1.0f) return SampleTopP(logits, best.value, inv_temp);
  return SampleAll(logits, best.value, inv_temp, best.index);
}

int32_t Sampler::SampleTopK(std::span<const float> logits, float inv_temp) {
  const size_t n = logits.size();
  const size_t k = static_cast<size_t>(options_.top_k);
  // Filter against the k-th best seen so far; prune back to k whenever `slack` more piled up.
  // Each prune costs O(k + slack) and drops >= slack ids, so the whole pass is O(n).
  const size_t slack = std::max<size_t>(1024, k);
  GrowTo(ids_, k + 2 * slack + sampling::kCollectPadding);
  const auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t size = 0;
  float threshold = -kInf;  // NaN and -inf logits never enter: they carry no weight
  for (size_t begin = 0; begin < n; begin += slack) {
    size += sampling::CollectAbove(logits.data(), begin, std::min(n, begin + slack), threshold, ids_.data() + size);
    if (size >= k + slack) {
      std::nth_element(ids_.begin(), ids_.begin() + (k - 1), ids_.begin() + size, better);
      size = k;
      threshold = logits[ids_[k - 1]];
    }
  }
  if (size > k) {
    std::nth_element(ids_.begin(), ids_.begin() + (k - 1), ids_.begin() + size, better);
    size = k;
  }
  // No finite logit (all -inf/NaN), or a +inf one: as greedy, the first of the largest.
  if (size == 0) return static_cast<int32_t>(sampling::ArgMax(logits.data(), n).index);
  const int32_t first = *std::min_element(ids_.begin(), ids_.begin() + size, better);
  const float max = logits[first];
  if (!std::isfinite(max)) return first;
  // The softmax (and so top-p's mass) is over the k kept tokens.
  GrowTo(candidates_, size);
  double total = 0.0;
  size_t kept = 0;
  for (size_t i = 0; i < size; ++i) {
    const int32_t id = ids_[i];
    const float x = (logits[id] - max) * inv_temp;
    const float weight = std::exp(x);
    total += weight;
    if (x >= min_log_weight_) candidates_[kept++] = Candidate{logits[id], weight, id};
  }
  size_t count = kept;
  if (options_.top_p < 1.0f) count = SelectMassPrefix({candidates_.data(), kept}, options_.top_p * total, mass_prefix_scratch_);
  return Draw(count);
}

int32_t Sampler::SampleTopP(std::span<const float> logits, float max, float inv_temp) {
  const size_t n = logits.size();
  GrowTo(weights_, n);
  GrowTo(block_sums_, (n + sampling::kWeightBlock - 1) / sampling::kWeightBlock);
  double rung_mass[sampling::kMaxRungs];
  const sampling::WeightsPass pass{logits.data(), n, max, inv_temp, -kInf, kRungs, std::size(kRungs)};
  const double total = sampling::ExpWeights(pass, weights_.data(), block_sums_.data(), rung_mass);
  const double target = options_.top_p * total;
  // Every candidate must pass min-p; past the last rung, all of those are candidates.
  float threshold = min_log_weight_;
  for (size_t r = 0; r < std::size(kRungs); ++r) {
    if (rung_mass[r] >= target * kRungMargin) {
      threshold = std::max(threshold, kRungs[r]);
      break;
    }
  }
  GrowTo(ids_, n + sampling::kCollectPadding);
  const size_t found = sampling::CollectAtLeast(logits.data(), n, max, inv_temp, threshold, ids_.data());
  GrowTo(candidates_, found);
  for (size_t i = 0; i < found; ++i) {
    const int32_t id = ids_[i];
    candidates_[i] = Candidate{logits[id], weights_[id], id};
  }
  return Draw(SelectMassPrefix({candidates_.data(), found}, target, mass_prefix_scratch_));
}

int32_t Sampler::SampleAll(std::span<const float> logits, float max, float inv_temp, size_t fallback) {
  const size_t n = logits.size();
  GrowTo(weights_, n);
  GrowTo(block_sums_, (n + sampling::kWeightBlock - 1) / sampling::kWeightBlock);
  const sampling::WeightsPass pass{logits.data(), n, max, inv_temp, min_log_weight_, nullptr, 0};
  const double total = sampling::ExpWeights(pass, weights_.data(), block_sums_.data(), nullptr);
  std::uniform_real_distribution<double> uniform(0.0, total);
  double r = uniform(rng_);
  for (size_t begin = 0, block = 0; begin < n; begin += sampling::kWeightBlock, ++block) {
    if (r >= block_sums_[block]) {
      r -= block_sums_[block];
      continue;
    }
    // Rounding can leave r past the block's last weight: keep the last token that had one.
    size_t last = fallback;
    for (size_t i = begin; i < std::min(n, begin + sampling::kWeightBlock); ++i) {
      const float weight = weights_[i];
      if (r < weight) return static_cast<int32_t>(i);
      r -= weight;
      if (weight > 0.0f) last = i;
    }
    return static_cast<int32_t>(last);
  }
  return static_cast<int32_t>(fallback);
}

int32_t Sampler::Draw(size_t count) {
  GR_CHECK(count > 0) << "nothing left to sample from";  // the most likely token always stays
  double kept = 0.0;
  for (size_t i = 0; i < count; ++i) kept += candidates_[i].weight;
  std::uniform_real_distribution<double> uniform(0.0, kept);
  double r = uniform(rng_);
  int32_t last = candidates_[0].id;
  for (size_t i = 0; i < count; ++i) {
    const float weight = candidates_[i].weight;
    if (r < weight) return candidates_[i].id;
    r -= weight;
    if (weight > 0.0f) last = candidates_[i].id;
  }
  return last;
}

}  // namespace gemmarun
