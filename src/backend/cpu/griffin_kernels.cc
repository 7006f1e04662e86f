// Highway per-target bodies of griffin_kernels.h (compiled once per target
// through foreach_target.h) and their dynamic-dispatch entry points.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/griffin_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/griffin_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace gemmarun::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
constexpr float kSqrt2OverPi = 0.7978845608028654f;

float GeluScalar(float a) { return 0.5f * a * (1.0f + std::tanh(kSqrt2OverPi * (a + 0.044715f * a * a * a))); }

// As GeluMulRow in kernels.cc: HF's order of f32 operations, Highway's Tanh.
void GeluRowImpl(float* HWY_RESTRICT x, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto k_cube = hn::Set(d, 0.044715f), k_scale = hn::Set(d, kSqrt2OverPi);
  const auto half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, x + i);
    const auto cube = hn::Mul(hn::Mul(hn::Mul(k_cube, v), v), v);
    const auto inner = hn::Mul(k_scale, hn::Add(v, cube));
    hn::StoreU(hn::Mul(hn::Mul(half, v), hn::Add(one, hn::Tanh(d, inner))), d, x + i);
  }
  for (; i < n; ++i) x[i] = GeluScalar(x[i]);
}

void MulRowImpl(const float* a, const float* b, float* out, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  for (; i < n; ++i) out[i] = a[i] * b[i];
}

void CausalConvRowImpl(const float* const* inputs, const float* HWY_RESTRICT taps, size_t tap_stride, size_t width,
                       const float* HWY_RESTRICT bias, float* HWY_RESTRICT out, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t c = 0;
  for (; c + N <= n; c += N) {
    auto y = hn::LoadU(d, bias + c);
    for (size_t k = 0; k < width; ++k) {
      y = hn::MulAdd(hn::LoadU(d, taps + k * tap_stride + c), hn::LoadU(d, inputs[k] + c), y);
    }
    hn::StoreU(y, d, out + c);
  }
  for (; c < n; ++c) {
    float y = bias[c];
    for (size_t k = 0; k < width; ++k) y += taps[k * tap_stride + c] * inputs[k][c];
    out[c] = y;
  }
}

float SoftplusScalar(float z) { return z > 20.0f ? z : std::log1p(std::exp(z)); }
float SigmoidScalar(float z) { return 1.0f / (1.0f + std::exp(-z)); }

void SoftplusRowImpl(const float* HWY_RESTRICT z, float* HWY_RESTRICT out, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto threshold = hn::Set(d, 20.0f);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, z + i);
    // Exp of at most 20 stays finite; above, the linear branch is taken.
    const auto smooth = hn::Log1p(d, hn::Exp(d, hn::Min(v, threshold)));
    hn::StoreU(hn::IfThenElse(hn::Gt(v, threshold), v, smooth), d, out + i);
  }
  for (; i < n; ++i) out[i] = SoftplusScalar(z[i]);
}

// 1 / (1 + e^-z), with z clamped to +-80 so that e^-z stays finite (sigmoid is
// within 2e-35 of 0 or 1 there).
template <class V>
HWY_INLINE V Sigmoid(DF d, V z) {
  const auto limit = hn::Set(d, 80.0f);
  const auto e = hn::Exp(d, hn::Neg(hn::Min(hn::Max(z, hn::Neg(limit)), limit)));
  return hn::Div(hn::Set(d, 1.0f), hn::Add(hn::Set(d, 1.0f), e));
}

void RgLruRowImpl(const float* x, const float* HWY_RESTRICT input_gate, const float* HWY_RESTRICT recurrent_gate,
                  const float* HWY_RESTRICT softplus, bool reset, float* HWY_RESTRICT h, float* out, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto minus8 = hn::Set(d, -8.0f), two = hn::Set(d, 2.0f);
  size_t c = 0;
  for (; c + N <= n; c += N) {
    const auto gated = hn::Mul(hn::LoadU(d, x + c), Sigmoid(d, hn::LoadU(d, input_gate + c)));
    hn::Vec<DF> next;
    if (reset) {
      next = gated;  // a = 0, multiplier 1: forget h
    } else {
      const auto log_a = hn::Mul(hn::Mul(minus8, Sigmoid(d, hn::LoadU(d, recurrent_gate + c))),
                                 hn::LoadU(d, softplus + c));
      // sqrt(1 - a²) as sqrt(-expm1(2 log a)): no cancellation when a is near 1.
      const auto multiplier = hn::Sqrt(hn::Neg(hn::Expm1(d, hn::Mul(two, log_a))));
      next = hn::MulAdd(hn::Exp(d, log_a), hn::LoadU(d, h + c), hn::Mul(gated, multiplier));
    }
    hn::StoreU(next, d, h + c);
    hn::StoreU(next, d, out + c);
  }
  for (; c < n; ++c) {
    const float log_a = -8.0f * SigmoidScalar(recurrent_gate[c]) * softplus[c];
    const float multiplier = reset ? 1.0f : std::sqrt(-std::expm1(2.0f * log_a));
    const float carried = reset ? 0.0f : std::exp(log_a) * h[c];
    h[c] = carried + x[c] * SigmoidScalar(input_gate[c]) * multiplier;
    out[c] = h[c];
  }
}

// NT (<= 6) tokens x two vectors of columns at col: 2 * NT sums in registers,
// two weight loads and NT broadcasts per input i. Named variables rather than
// arrays, which SVE's sizeless vector types cannot form.
template <size_t NT>
HWY_INLINE void BlockDiagonalMicro(const float* HWY_RESTRICT x, size_t x_stride, const float* HWY_RESTRICT w,
                                   size_t block, const float* HWY_RESTRICT bias, size_t col, float* out,
                                   size_t out_stride) {
  static_assert(NT >= 1 && NT <= 6);
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto b0 = hn::LoadU(d, bias + col), b1 = hn::LoadU(d, bias + col + N);
  auto a0 = b0, a1 = b0, a2 = b0, a3 = b0, a4 = b0, a5 = b0;
  auto c0 = b1, c1 = b1, c2 = b1, c3 = b1, c4 = b1, c5 = b1;
  for (size_t i = 0; i < block; ++i) {
    const auto w0 = hn::LoadU(d, w + i * block + col), w1 = hn::LoadU(d, w + i * block + col + N);
#define GR_TOKEN(t)                                   \
  if constexpr (NT > t) {                             \
    const auto xv = hn::Set(d, x[t * x_stride + i]); \
    a##t = hn::MulAdd(xv, w0, a##t);                  \
    c##t = hn::MulAdd(xv, w1, c##t);                  \
  }
    GR_TOKEN(0) GR_TOKEN(1) GR_TOKEN(2) GR_TOKEN(3) GR_TOKEN(4) GR_TOKEN(5)
#undef GR_TOKEN
  }
#define GR_STORE(t)                                          \
  if constexpr (NT > t) {                                    \
    hn::StoreU(a##t, d, out + t * out_stride + col);         \
    hn::StoreU(c##t, d, out + t * out_stride + col + N);     \
  }
  GR_STORE(0) GR_STORE(1) GR_STORE(2) GR_STORE(3) GR_STORE(4) GR_STORE(5)
#undef GR_STORE
}

constexpr size_t kMicroTokens = 6;

template <size_t NT>
void BlockDiagonalTokens(const float* x, size_t x_stride, const float* w, size_t block, const float* bias,
                         size_t col_begin, size_t col_end, float* out, size_t out_stride) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t col = col_begin;
  for (; col + 2 * N <= col_end; col += 2 * N) {
    BlockDiagonalMicro<NT>(x, x_stride, w, block, bias, col, out, out_stride);
  }
  for (; col + N <= col_end; col += N) {
    for (size_t t = 0; t < NT; ++t) {
      auto acc = hn::LoadU(d, bias + col);
      for (size_t i = 0; i < block; ++i) acc = hn::MulAdd(hn::Set(d, x[t * x_stride + i]), hn::LoadU(d, w + i * block + col), acc);
      hn::StoreU(acc, d, out + t * out_stride + col);
    }
  }
  for (; col < col_end; ++col) {
    for (size_t t = 0; t < NT; ++t) {
      float acc = bias[col];
      for (size_t i = 0; i < block; ++i) acc += x[t * x_stride + i] * w[i * block + col];
      out[t * out_stride + col] = acc;
    }
  }
}

void BlockDiagonalTileImpl(const float* x, size_t x_stride, const float* w, size_t block, const float* bias,
                           size_t tokens, size_t col_begin, size_t col_end, float* out, size_t out_stride) {
  size_t t = 0;
  for (; t + kMicroTokens <= tokens; t += kMicroTokens) {
    BlockDiagonalTokens<kMicroTokens>(x + t * x_stride, x_stride, w, block, bias, col_begin, col_end,
                                      out + t * out_stride, out_stride);
  }
  const float* xr = x + t * x_stride;
  float* outr = out + t * out_stride;
  switch (tokens - t) {
    case 1: return BlockDiagonalTokens<1>(xr, x_stride, w, block, bias, col_begin, col_end, outr, out_stride);
    case 2: return BlockDiagonalTokens<2>(xr, x_stride, w, block, bias, col_begin, col_end, outr, out_stride);
    case 3: return BlockDiagonalTokens<3>(xr, x_stride, w, block, bias, col_begin, col_end, outr, out_stride);
    case 4: return BlockDiagonalTokens<4>(xr, x_stride, w, block, bias, col_begin, col_end, outr, out_stride);
    case 5: return BlockDiagonalTokens<5>(xr, x_stride, w, block, bias, col_begin, col_end, outr, out_stride);
    default: return;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace gemmarun::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmarun::cpu {

HWY_EXPORT(GeluRowImpl);
HWY_EXPORT(MulRowImpl);
HWY_EXPORT(CausalConvRowImpl);
HWY_EXPORT(SoftplusRowImpl);
HWY_EXPORT(RgLruRowImpl);
HWY_EXPORT(BlockDiagonalTileImpl);

void GeluRow(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(GeluRowImpl)(x, n); }
void MulRow(const float* a, const float* b, float* out, size_t n) { HWY_DYNAMIC_DISPATCH(MulRowImpl)(a, b, out, n); }
void CausalConvRow(const float* const* inputs, const float* taps, size_t tap_stride, size_t width,
                   const float* bias, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(CausalConvRowImpl)(inputs, taps, tap_stride, width, bias, out, n);
}
void SoftplusRow(const float* z, float* out, size_t n) { HWY_DYNAMIC_DISPATCH(SoftplusRowImpl)(z, out, n); }
void RgLruRow(const float* x, const float* input_gate, const float* recurrent_gate, const float* softplus,
              bool reset, float* h, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(RgLruRowImpl)(x, input_gate, recurrent_gate, softplus, reset, h, out, n);
}
void BlockDiagonalTile(const float* x, size_t x_stride, const float* w, size_t block, const float* bias,
                       size_t tokens, size_t col_begin, size_t col_end, float* out, size_t out_stride) {
  HWY_DYNAMIC_DISPATCH(BlockDiagonalTileImpl)(x, x_stride, w, block, bias, tokens, col_begin, col_end, out,
                                              out_stride);
}

}  // namespace gemmarun::cpu
#endif  // HWY_ONCE
