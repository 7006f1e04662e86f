// Highway per-target bodies of the sampler's passes (the file is compiled once per
// target through foreach_target.h) and their dynamic-dispatch entry points.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/sampler_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "runtime/sampler_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace gemmarun::sampling {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;

constexpr float kInf = std::numeric_limits<float>::infinity();

ArgMaxResult ArgMaxImpl(const float* HWY_RESTRICT x, size_t n) {
  const DF d;
  const DI di;
  const size_t N = hn::Lanes(d);
  // Per lane: the best value and the first index where it was seen (strict > keeps the first).
  auto best = hn::Set(d, -kInf);
  auto best_index = hn::Zero(di);
  auto index = hn::Iota(di, 0);
  const auto step = hn::Set(di, static_cast<int32_t>(N));
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, x + i);
    const auto better = hn::Gt(v, best);
    best = hn::IfThenElse(better, v, best);
    best_index = hn::IfThenElse(hn::RebindMask(di, better), index, best_index);
    index = hn::Add(index, step);
  }
  ArgMaxResult result;
  result.value = hn::GetLane(hn::MaxOfLanes(d, best));
  const auto holds_max = hn::RebindMask(di, hn::Eq(best, hn::Set(d, result.value)));
  const auto candidates = hn::IfThenElse(holds_max, best_index, hn::Set(di, std::numeric_limits<int32_t>::max()));
  result.index = i == 0 ? 0 : static_cast<size_t>(hn::GetLane(hn::MinOfLanes(di, candidates)));
  for (; i < n; ++i) {
    if (x[i] > result.value) {
      result.value = x[i];
      result.index = i;
    }
  }
  return result;
}

// kRungs / kMinP drop the work a pass without rungs or without min-p does not need.
template <bool kRungs, bool kMinP>
double ExpWeightsT(const WeightsPass& pass, float* HWY_RESTRICT weights, double* HWY_RESTRICT block_sums,
                   double* HWY_RESTRICT rung_mass) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto vmax = hn::Set(d, pass.max);
  const auto vinv = hn::Set(d, pass.inv_temp);
  const auto vmin = hn::Set(d, pass.min_log_weight);
  HWY_ALIGN float log_weights[kWeightBlock];
  std::fill(rung_mass, rung_mass + pass.rung_count, 0.0);
  double total = 0.0;
  for (size_t begin = 0, block = 0; begin < pass.n; begin += kWeightBlock, ++block) {
    const size_t len = std::min(kWeightBlock, pass.n - begin);
    const float* HWY_RESTRICT logits = pass.logits + begin;
    float* HWY_RESTRICT w_out = weights + begin;
    auto sum = hn::Zero(d);
    auto xmax = hn::Set(d, -kInf);
    size_t i = 0;
    for (; i + N <= len; i += N) {
      const auto x = hn::Mul(hn::Sub(hn::LoadU(d, logits + i), vmax), vinv);
      auto w = hn::Exp(d, x);
      if constexpr (kMinP) w = hn::IfThenElseZero(hn::Ge(x, vmin), w);
      hn::StoreU(w, d, w_out + i);
      sum = hn::Add(sum, w);
      if constexpr (kRungs) {
        hn::Store(x, d, log_weights + i);
        xmax = hn::Max(xmax, x);
      }
    }
    if constexpr (!kRungs) {
      float block_sum = hn::GetLane(hn::SumOfLanes(d, sum));
      for (; i < len; ++i) {
        const float x = (logits[i] - pass.max) * pass.inv_temp;
        const float w = x >= pass.min_log_weight ? std::exp(x) : 0.0f;  // NaN: 0, as in the vector part
        w_out[i] = w;
        block_sum += w;
      }
      block_sums[block] = block_sum;
      total += block_sum;
      continue;
    }
    float block_sum = hn::GetLane(hn::SumOfLanes(d, sum));
    float block_xmax = hn::GetLane(hn::MaxOfLanes(d, xmax));
    const size_t vector_end = i;
    for (; i < len; ++i) {
      const float x = (logits[i] - pass.max) * pass.inv_temp;
      const float w = x >= pass.min_log_weight ? std::exp(x) : 0.0f;
      log_weights[i] = x;
      w_out[i] = w;
      block_sum += w;
      block_xmax = std::max(block_xmax, x);
    }
    block_sums[block] = block_sum;
    total += block_sum;
    // Four rungs per sweep over the block (it is in L1). Rungs come highest first, so a group
    // whose last rung is above the block's max adds nothing: most blocks of a peaked
    // distribution skip every group.
    for (size_t g = 0; g < pass.rung_count; g += 4) {
      float r[4];
      for (size_t k = 0; k < 4; ++k) r[k] = g + k < pass.rung_count ? pass.rungs[g + k] : kInf;
      const float lowest = std::min(std::min(r[0], r[1]), std::min(r[2], r[3]));
      if (!(block_xmax >= lowest)) continue;
      const auto v0 = hn::Set(d, r[0]), v1 = hn::Set(d, r[1]), v2 = hn::Set(d, r[2]), v3 = hn::Set(d, r[3]);
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      for (size_t j = 0; j < vector_end; j += N) {
        const auto x = hn::Load(d, log_weights + j);
        const auto w = hn::LoadU(d, w_out + j);
        a0 = hn::Add(a0, hn::IfThenElseZero(hn::Ge(x, v0), w));
        a1 = hn::Add(a1, hn::IfThenElseZero(hn::Ge(x, v1), w));
        a2 = hn::Add(a2, hn::IfThenElseZero(hn::Ge(x, v2), w));
        a3 = hn::Add(a3, hn::IfThenElseZero(hn::Ge(x, v3), w));
      }
      float mass[4] = {hn::GetLane(hn::SumOfLanes(d, a0)), hn::GetLane(hn::SumOfLanes(d, a1)),
                       hn::GetLane(hn::SumOfLanes(d, a2)), hn::GetLane(hn::SumOfLanes(d, a3))};
      for (size_t j = vector_end; j < len; ++j) {
        for (size_t k = 0; k < 4; ++k) {
          if (log_weights[j] >= r[k]) mass[k] += w_out[j];
        }
      }
      for (size_t k = 0; k < 4 && g + k < pass.rung_count; ++k) rung_mass[g + k] += mass[k];
    }
  }
  return total;
}

double ExpWeightsImpl(const WeightsPass& pass, float* HWY_RESTRICT weights, double* HWY_RESTRICT block_sums,
                      double* HWY_RESTRICT rung_mass) {
  const bool min_p = pass.min_log_weight > -kInf;
  if (pass.rung_count > 0) {
    return min_p ? ExpWeightsT<true, true>(pass, weights, block_sums, rung_mass)
                 : ExpWeightsT<true, false>(pass, weights, block_sums, rung_mass);
  }
  return min_p ? ExpWeightsT<false, true>(pass, weights, block_sums, rung_mass)
               : ExpWeightsT<false, false>(pass, weights, block_sums, rung_mass);
}

size_t CollectAtLeastImpl(const float* HWY_RESTRICT logits, size_t n, float max, float inv_temp,
                          float min_log_weight, int32_t* HWY_RESTRICT out) {
  const DF d;
  const DI di;
  const size_t N = hn::Lanes(d);
  const auto vmax = hn::Set(d, max);
  const auto vinv = hn::Set(d, inv_temp);
  const auto vmin = hn::Set(d, min_log_weight);
  auto index = hn::Iota(di, 0);
  const auto step = hn::Set(di, static_cast<int32_t>(N));
  size_t count = 0;
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto x = hn::Mul(hn::Sub(hn::LoadU(d, logits + i), vmax), vinv);
    const auto keep = hn::Ge(x, vmin);
    if (!hn::AllFalse(d, keep)) count += hn::CompressStore(index, hn::RebindMask(di, keep), di, out + count);
    index = hn::Add(index, step);
  }
  for (; i < n; ++i) {
    if ((logits[i] - max) * inv_temp >= min_log_weight) out[count++] = static_cast<int32_t>(i);
  }
  return count;
}

size_t CollectAboveImpl(const float* HWY_RESTRICT logits, size_t begin, size_t end, float threshold,
                        int32_t* HWY_RESTRICT out) {
  const DF d;
  const DI di;
  const size_t N = hn::Lanes(d);
  const auto vthreshold = hn::Set(d, threshold);
  auto index = hn::Iota(di, static_cast<int32_t>(begin));
  const auto step = hn::Set(di, static_cast<int32_t>(N));
  size_t count = 0;
  size_t i = begin;
  for (; i + N <= end; i += N) {
    const auto keep = hn::Gt(hn::LoadU(d, logits + i), vthreshold);
    if (!hn::AllFalse(d, keep)) count += hn::CompressStore(index, hn::RebindMask(di, keep), di, out + count);
    index = hn::Add(index, step);
  }
  for (; i < end; ++i) {
    if (logits[i] > threshold) out[count++] = static_cast<int32_t>(i);
  }
  return count;
}

}  // namespace HWY_NAMESPACE
}  // namespace gemmarun::sampling
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmarun::sampling {

HWY_EXPORT(ArgMaxImpl);
HWY_EXPORT(ExpWeightsImpl);
HWY_EXPORT(CollectAtLeastImpl);
HWY_EXPORT(CollectAboveImpl);

ArgMaxResult ArgMax(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(ArgMaxImpl)(x, n); }
double ExpWeights(const WeightsPass& pass, float* weights, double* block_sums, double* rung_mass) {
  return HWY_DYNAMIC_DISPATCH(ExpWeightsImpl)(pass, weights, block_sums, rung_mass);
}
size_t CollectAtLeast(const float* logits, size_t n, float max, float inv_temp, float min_log_weight, int32_t* out) {
  return HWY_DYNAMIC_DISPATCH(CollectAtLeastImpl)(logits, n, max, inv_temp, min_log_weight, out);
}
size_t CollectAbove(const float* logits, size_t begin, size_t end, float threshold, int32_t* out) {
  return HWY_DYNAMIC_DISPATCH(CollectAboveImpl)(logits, begin, end, threshold, out);
}

}  // namespace gemmarun::sampling
#endif  // HWY_ONCE
