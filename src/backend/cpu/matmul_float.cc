// Highway per-target bodies of FloatMatMulBlock (this file is compiled once per
// target through foreach_target.h) and its dynamic-dispatch entry point.
//
// Register blocking: a micro-kernel keeps kRows x kTokens accumulators in
// registers, so each weight vector it loads (and widens) serves kTokens tokens
// and each activation vector serves kRows rows. Decode (one token) degenerates
// to kRows independent dot products, which also hides the FMA latency.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/matmul_float.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <utility>

#include "backend/cpu/matmul_float.h"
#include "base/check.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace gemmarun::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

struct F32Weights {
  using T = float;
  static HWY_INLINE VF Load(DF d, const T* p) { return hn::LoadU(d, p); }
  static HWY_INLINE float ToFloat(T v) { return v; }
};
// bf16 is the top half of an f32: widen to u32 and shift, which every target has.
struct BF16Weights {
  using T = uint16_t;
  static HWY_INLINE VF Load(DF d, const T* p) {
    const hn::RebindToUnsigned<DF> du32;
    const hn::Rebind<uint16_t, DF> du16;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, p))));
  }
  static HWY_INLINE float ToFloat(T v) { return BF16ToF32(v); }
};
struct F16Weights {
  using T = uint16_t;
  static HWY_INLINE VF Load(DF d, const T* p) {
    const hn::Rebind<hwy::float16_t, DF> df16;
    auto raw = hn::LoadU(df16, reinterpret_cast<const hwy::float16_t*>(p));
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
    // Keeps the load a plain load: folded into vcvtph2ps's memory operand it
    // streamed from DRAM at 20-21 GB/s per core on Zen 4, against 29-30 as
    // here (= bf16's widening); in cache both forms run alike.
    asm volatile("" : "+x"(raw.raw));
#endif
    return hn::PromoteTo(d, raw);
  }
  static HWY_INLINE float ToFloat(T v) { return F16ToF32(v); }
};

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// 32 vector registers: 4x4 accumulators + 4 weight vectors + 1 activation.
constexpr size_t kRows = 4, kTokens = 4;
#else
// 16 registers: 4x2 accumulators + 4 weights + 1 activation.
constexpr size_t kRows = 4, kTokens = 2;
#endif

// out[c * out_stride + r] (+)= sum_i w[r * w_stride + i] * x[c * x_stride + i], i < k.
template <class W, size_t R, size_t C>
HWY_NOINLINE void Micro(const typename W::T* HWY_RESTRICT w, size_t w_stride, const float* HWY_RESTRICT x,
                        size_t x_stride, size_t k, float* HWY_RESTRICT out, size_t out_stride, bool accumulate,
                        const float* bias) {
  const DF d;
  const size_t N = hn::Lanes(d);
#if HWY_HAVE_SCALABLE
  // Sizeless vectors cannot live in arrays: one (row, token) at a time.
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) {
      VF acc = hn::Zero(d);
      size_t i = 0;
      for (; i + N <= k; i += N) acc = hn::MulAdd(W::Load(d, w + r * w_stride + i), hn::LoadU(d, x + c * x_stride + i), acc);
      float sum = hn::GetLane(hn::SumOfLanes(d, acc));
      for (; i < k; ++i) sum += W::ToFloat(w[r * w_stride + i]) * x[c * x_stride + i];
      float& o = out[c * out_stride + r];
      o = accumulate ? o + sum : sum + (bias ? bias[r] : 0.0f);
    }
  }
#else
  VF acc[R][C];
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) acc[r][c] = hn::Zero(d);
  }
  size_t i = 0;
  for (; i + N <= k; i += N) {
    VF wv[R];
    for (size_t r = 0; r < R; ++r) wv[r] = W::Load(d, w + r * w_stride + i);
    for (size_t c = 0; c < C; ++c) {
      const VF xv = hn::LoadU(d, x + c * x_stride + i);
      for (size_t r = 0; r < R; ++r) acc[r][c] = hn::MulAdd(wv[r], xv, acc[r][c]);
    }
  }
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) {
      float sum = hn::GetLane(hn::SumOfLanes(d, acc[r][c]));
      for (size_t j = i; j < k; ++j) sum += W::ToFloat(w[r * w_stride + j]) * x[c * x_stride + j];
      float& o = out[c * out_stride + r];
      o = accumulate ? o + sum : sum + (bias ? bias[r] : 0.0f);
    }
  }
#endif
}

// How far ahead RowDot4 prefetches 2-byte weight rows into L2.
constexpr size_t kL2PrefetchBytes = 8192;

// Decode: one row against one token with four accumulators (hiding the FMA
// latency), rows one after another so that each thread reads one sequential
// stream, which the hardware prefetchers follow best.
template <class W>
HWY_INLINE float RowDot(const typename W::T* HWY_RESTRICT w, const float* HWY_RESTRICT x, size_t k) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  // f32 weights are fetched 4 KiB ahead, non-temporal (read once, they should
  // not evict the activations from L1): 28 -> 31 GB/s here. For bf16/f16 the
  // hardware prefetchers do better alone: the same prefetch measured 2x
  // slower, and into L2 8 KiB ahead bf16 went 27 -> 22 GB/s.
  constexpr size_t kAhead = 4096 / sizeof(typename W::T);
  const size_t step = 4 * N * sizeof(typename W::T);
  for (; i + 4 * N <= k; i += 4 * N) {
    if constexpr (sizeof(typename W::T) == 4) {
      for (size_t b = 0; b < step; b += 64) __builtin_prefetch(reinterpret_cast<const char*>(w + i + kAhead) + b, 0, 0);
    }
    s0 = hn::MulAdd(W::Load(d, w + i), hn::LoadU(d, x + i), s0);
    s1 = hn::MulAdd(W::Load(d, w + i + N), hn::LoadU(d, x + i + N), s1);
    s2 = hn::MulAdd(W::Load(d, w + i + 2 * N), hn::LoadU(d, x + i + 2 * N), s2);
    s3 = hn::MulAdd(W::Load(d, w + i + 3 * N), hn::LoadU(d, x + i + 3 * N), s3);
  }
  for (; i + N <= k; i += N) s0 = hn::MulAdd(W::Load(d, w + i), hn::LoadU(d, x + i), s0);
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < k; ++i) sum += W::ToFloat(w[i]) * x[i];
  return sum;
}

constexpr size_t kSharedActivationBytes = 16 << 10;

// Four rows against one token: each activation vector loaded serves four rows,
// which quarters the activation traffic once a row of them (64 KiB at K =
// 16384) no longer stays in L1 and comes from L2 for every row. Measured on the
// Gemma-2B down projection (bf16, one thread): one row at a time 12 GB/s, pairs
// 18, pairs prefetched into L2 20, fours prefetched 22.5 (two threads 33 -> 36-46).
template <class W>
HWY_INLINE void RowDot4(const typename W::T* HWY_RESTRICT w, size_t w_stride, const float* HWY_RESTRICT x,
                        size_t k, float* sums) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  const typename W::T* w0 = w;
  const typename W::T* w1 = w + w_stride;
  const typename W::T* w2 = w + 2 * w_stride;
  const typename W::T* w3 = w + 3 * w_stride;
  size_t i = 0;
  for (; i + N <= k; i += N) {
    if constexpr (sizeof(typename W::T) == 2) {
      // bf16/f16 rows fetched ahead into L2; for f32 the same costs 15%.
      if ((i & 31) == 0) {
        __builtin_prefetch(reinterpret_cast<const char*>(w0 + i) + kL2PrefetchBytes, 0, 2);
        __builtin_prefetch(reinterpret_cast<const char*>(w1 + i) + kL2PrefetchBytes, 0, 2);
        __builtin_prefetch(reinterpret_cast<const char*>(w2 + i) + kL2PrefetchBytes, 0, 2);
        __builtin_prefetch(reinterpret_cast<const char*>(w3 + i) + kL2PrefetchBytes, 0, 2);
      }
    }
    const VF xv = hn::LoadU(d, x + i);
    a0 = hn::MulAdd(W::Load(d, w0 + i), xv, a0);
    a1 = hn::MulAdd(W::Load(d, w1 + i), xv, a1);
    a2 = hn::MulAdd(W::Load(d, w2 + i), xv, a2);
    a3 = hn::MulAdd(W::Load(d, w3 + i), xv, a3);
  }
  float s[4] = {hn::GetLane(hn::SumOfLanes(d, a0)), hn::GetLane(hn::SumOfLanes(d, a1)),
                hn::GetLane(hn::SumOfLanes(d, a2)), hn::GetLane(hn::SumOfLanes(d, a3))};
  for (; i < k; ++i) {
    s[0] += W::ToFloat(w0[i]) * x[i];
    s[1] += W::ToFloat(w1[i]) * x[i];
    s[2] += W::ToFloat(w2[i]) * x[i];
    s[3] += W::ToFloat(w3[i]) * x[i];
  }
  for (int r = 0; r < 4; ++r) sums[r] = s[r];
}

// Rows in steps of kRows (then singles), tokens in steps of kTokens (then the rest).
template <class W, size_t R, size_t... Cs>
HWY_INLINE void MicroForTokens(size_t c, std::index_sequence<Cs...>, const typename W::T* w, size_t w_stride,
                               const float* x, size_t x_stride, size_t k, float* out, size_t out_stride,
                               bool accumulate, const float* bias) {
  // c in [1, kTokens]: call Micro<W, R, c>.
  ((c == Cs + 1 ? Micro<W, R, Cs + 1>(w, w_stride, x, x_stride, k, out, out_stride, accumulate, bias) : void()), ...);
}

template <class W>
void Block(const FloatBlock& b) {
  const size_t w_stride = b.w_row_bytes / sizeof(typename W::T);
  const size_t k = b.k_end - b.k_begin;
  const auto* w0 = reinterpret_cast<const typename W::T*>(b.w) + b.k_begin;
  const float* x0 = b.x + b.k_begin;
  const float* bias = b.bias;
  if (b.token_end - b.token_begin == 1) {
    const float* x = x0 + b.token_begin * b.x_stride;
    float* out = b.out + b.token_begin * b.out_stride;
    size_t row = b.row_begin;
    // Fours only when a row of activations outgrows L1 (see RowDot4); for
    // short rows one stream per thread is faster.
    if (k * sizeof(float) > kSharedActivationBytes) {
      for (; row + 4 <= b.row_end; row += 4) {
        float sums[4];
        RowDot4<W>(w0 + row * w_stride, w_stride, x, k, sums);
        for (size_t r = 0; r < 4; ++r) {
          out[row + r] = b.accumulate ? out[row + r] + sums[r] : sums[r] + (bias ? bias[row + r] : 0.0f);
        }
      }
    }
    for (; row < b.row_end; ++row) {
      const float sum = RowDot<W>(w0 + row * w_stride, x, k);
      out[row] = b.accumulate ? out[row] + sum : sum + (bias ? bias[row] : 0.0f);
    }
    return;
  }
  for (size_t row = b.row_begin; row < b.row_end;) {
    const bool full = row + kRows <= b.row_end;
    const size_t rows = full ? kRows : 1;
    for (size_t t = b.token_begin; t < b.token_end; t += kTokens) {
      const size_t tokens = std::min(kTokens, b.token_end - t);
      const auto* w = w0 + row * w_stride;
      const float* x = x0 + t * b.x_stride;
      float* out = b.out + t * b.out_stride + row;
      const float* row_bias = bias ? bias + row : nullptr;
      if (full) {
        MicroForTokens<W, kRows>(tokens, std::make_index_sequence<kTokens>(), w, w_stride, x, b.x_stride, k, out,
                                 b.out_stride, b.accumulate, row_bias);
      } else {
        MicroForTokens<W, 1>(tokens, std::make_index_sequence<kTokens>(), w, w_stride, x, b.x_stride, k, out,
                             b.out_stride, b.accumulate, row_bias);
      }
    }
    row += rows;
  }
}

void FloatMatMulBlockImpl(const FloatBlock& b) {
  switch (b.type) {
    case DType::kF32: return Block<F32Weights>(b);
    case DType::kBF16: return Block<BF16Weights>(b);
    case DType::kF16: return Block<F16Weights>(b);
    default: GR_CHECK(false) << "float matmul: " << Name(b.type);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace gemmarun::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmarun::cpu {

HWY_EXPORT(FloatMatMulBlockImpl);

void FloatMatMulBlock(const FloatBlock& block) { HWY_DYNAMIC_DISPATCH(FloatMatMulBlockImpl)(block); }

}  // namespace gemmarun::cpu
#endif  // HWY_ONCE
