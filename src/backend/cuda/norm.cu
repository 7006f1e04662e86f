// RMSNorm and LayerNorm: one block per row, the row's sums reduced in f32
// across the block (the row stays in L1/L2 for the second pass).
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace gemmarun::cuda {
namespace {

constexpr int kThreads = 256;

__device__ float BlockSum(float v) {
  __shared__ float partial[kThreads / 32];
  __shared__ float total;
  v = WarpSum(v);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.0f;
    s = WarpSum(s);
    if (threadIdx.x == 0) total = s;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();  // partial/total are reused by the next call
  return result;
}

__global__ void RmsNormKernel(const float* x, const float* weight, int64_t dim, float eps, float* out) {
  const float* in = x + blockIdx.x * dim;
  float* dst = out + blockIdx.x * dim;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) ss += in[i] * in[i];
  const float inv = rsqrtf(BlockSum(ss) / dim + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) dst[i] = in[i] * inv * weight[i];
}

// sum = a + b, then out = RmsNorm(sum): the residual add and the next norm in
// one pass, each value as the two kernels compute it apart.
__global__ void AddRmsNormKernel(const float* a, const float* b, float* sum, const float* weight, int64_t dim,
                                 float eps, float* out) {
  const int64_t base = blockIdx.x * dim;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const float v = a[base + i] + b[base + i];
    sum[base + i] = v;
    ss += v * v;
  }
  const float inv = rsqrtf(BlockSum(ss) / dim + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) out[base + i] = sum[base + i] * inv * weight[i];
}

__global__ void LayerNormKernel(const float* x, const float* weight, const float* bias, int64_t dim, float eps,
                                float* out) {
  const float* in = x + blockIdx.x * dim;
  float* dst = out + blockIdx.x * dim;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) sum += in[i];
  const float mean = BlockSum(sum) / dim;
  float var = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) var += (in[i] - mean) * (in[i] - mean);
  const float inv = rsqrtf(BlockSum(var) / dim + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) dst[i] = (in[i] - mean) * inv * weight[i] + bias[i];
}

}  // namespace

void LaunchRmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out,
                   cudaStream_t stream) {
  if (rows == 0) return;
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, dim, eps, out);
}

void LaunchAddRmsNorm(const float* a, const float* b, float* sum, const float* weight, int64_t rows, int64_t dim,
                      float eps, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  AddRmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(a, b, sum, weight, dim, eps, out);
}

void LaunchLayerNorm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim, float eps,
                     float* out, cudaStream_t stream) {
  if (rows == 0) return;
  LayerNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, bias, dim, eps, out);
}

}  // namespace gemmarun::cuda
