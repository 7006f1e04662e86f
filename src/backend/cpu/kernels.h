// Row-level SIMD kernels of the CPU backend, compiled for every Highway target
// and chosen at run time (one binary serves SSE4, AVX2 and AVX-512 machines).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gemmarun::cpu {

float DotF32(const float* a, const float* b, size_t n);
// w holds bfloat16 / IEEE half bits; x is f32.
float DotBF16(const uint16_t* w, const float* x, size_t n);
float DotF16(const uint16_t* w, const float* x, size_t n);
// y += alpha * x
void Axpy(float alpha, const float* x, float* y, size_t n);
// out[j] = q . (k + j * stride)[0, dim) for j < count.
void DotsF32(const float* q, const float* k, size_t stride, size_t count, size_t dim, float* out);
// out[0, dim) += sum_j w[j] * (v + j * stride)[0, dim) for j < count.
void WeightedSumF32(const float* w, const float* v, size_t stride, size_t count, size_t dim, float* out);
// x = exp(x - max) in place; returns the sum of the results.
float ExpShiftSum(float* x, size_t n, float max);
// sum of x² (f32 lanes, used for RMSNorm)
float SumSquares(const float* x, size_t n);
// out = x * scale * w
void ScaleMul(const float* x, float scale, const float* w, float* out, size_t n);
// out = gelu_tanh(gate) * up
void GeluMulRow(const float* gate, const float* up, float* out, size_t n);
void AddRow(const float* a, const float* b, float* out, size_t n);

// Name of the kernel target in use: pinned (cpu_target.h) or the best this
// CPU offers (e.g. "AVX3_DL", "AVX2").
const char* SelectedTarget();

}  // namespace gemmarun::cpu
