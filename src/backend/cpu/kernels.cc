// Highway per-target bodies (the file is compiled once per target through
// foreach_target.h) and their dynamic-dispatch entry points.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu/kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <cmath>

#include "backend/cpu/kernels.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace gemmarun::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Four independent accumulators hide FMA latency on long rows.
float DotF32Impl(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
    s2 = hn::MulAdd(hn::LoadU(d, a + i + 2 * N), hn::LoadU(d, b + i + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(d, a + i + 3 * N), hn::LoadU(d, b + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// bf16 is the top half of an f32: widen to u32 and shift, which every target has.
template <class D16>
HWY_INLINE hn::Vec<DF> LoadBF16(D16 d16, const uint16_t* p) {
  const DF df;
  const hn::RebindToUnsigned<DF> du32;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(d16, p))));
}

float DotBF16Impl(const uint16_t* HWY_RESTRICT w, const float* HWY_RESTRICT x, size_t n) {
  const DF d;
  const hn::Rebind<uint16_t, DF> d16;
  const size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(LoadBF16(d16, w + i), hn::LoadU(d, x + i), s0);
    s1 = hn::MulAdd(LoadBF16(d16, w + i + N), hn::LoadU(d, x + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(LoadBF16(d16, w + i), hn::LoadU(d, x + i), s0);
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(w[i]) << 16;
    float value;
    __builtin_memcpy(&value, &bits, sizeof(value));
    sum += value * x[i];
  }
  return sum;
}

float DotF16Impl(const uint16_t* HWY_RESTRICT w, const float* HWY_RESTRICT x, size_t n) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> d16;
  const size_t N = hn::Lanes(d);
  const auto* wh = reinterpret_cast<const hwy::float16_t*>(w);
  auto s0 = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::PromoteTo(d, hn::LoadU(d16, wh + i)), hn::LoadU(d, x + i), s0);
  float sum = hn::GetLane(hn::SumOfLanes(d, s0));
  for (; i < n; ++i) sum += F16ToF32(w[i]) * x[i];
  return sum;
}

void AxpyImpl(float alpha, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto va = hn::Set(d, alpha);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += alpha * x[i];
}

float SumSquaresImpl(const float* HWY_RESTRICT x, size_t n) { return DotF32Impl(x, x, n); }

void ScaleMulImpl(const float* HWY_RESTRICT x, float scale, const float* HWY_RESTRICT w,
                  float* HWY_RESTRICT out, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, scale);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), vs), hn::LoadU(d, w + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = x[i] * scale * w[i];
}

// gelu_tanh(x) = 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))), written as x·sigmoid(2u)
// = x / (1 + exp(-2u)) so that one Exp serves; exact in real arithmetic.
void GeluMulRowImpl(const float* HWY_RESTRICT gate, const float* HWY_RESTRICT up,
                    float* HWY_RESTRICT out, size_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (size_t i = 0; i < n; ++i) {
    const float x = gate[i];
    const float inner = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    out[i] = 0.5f * x * (1.0f + std::tanh(inner)) * up[i];
  }
}

void AddRowImpl(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, float* HWY_RESTRICT out,
                size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace gemmarun::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmarun::cpu {

HWY_EXPORT(DotF32Impl);
HWY_EXPORT(DotBF16Impl);
HWY_EXPORT(DotF16Impl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(SumSquaresImpl);
HWY_EXPORT(ScaleMulImpl);
HWY_EXPORT(GeluMulRowImpl);
HWY_EXPORT(AddRowImpl);

float DotF32(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotF32Impl)(a, b, n); }
float DotBF16(const uint16_t* w, const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(DotBF16Impl)(w, x, n); }
float DotF16(const uint16_t* w, const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(DotF16Impl)(w, x, n); }
void Axpy(float alpha, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(alpha, x, y, n); }
float SumSquares(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(SumSquaresImpl)(x, n); }
void ScaleMul(const float* x, float scale, const float* w, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(ScaleMulImpl)(x, scale, w, out, n);
}
void GeluMulRow(const float* gate, const float* up, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(GeluMulRowImpl)(gate, up, out, n);
}
void AddRow(const float* a, const float* b, float* out, size_t n) { HWY_DYNAMIC_DISPATCH(AddRowImpl)(a, b, out, n); }

const char* SelectedTarget() {
  // Highway orders targets best-first by bit value: the lowest set bit wins.
  const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(targets & -targets);
}

}  // namespace gemmarun::cpu
#endif  // HWY_ONCE
