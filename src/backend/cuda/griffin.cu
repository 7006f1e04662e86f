// Griffin's temporal mixing. Both scans are sequential in time and parallel over
// channels: one thread per channel walks the rows, so the state never leaves a
// register between steps.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace gemmarun::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxWidth = 8;  // Griffin's conv width is 4

__global__ void CausalConv1DKernel(const float* x, const float* weight, const float* bias, float* state, float* out,
                                   int64_t tokens, int64_t channels, int width) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const int history = width - 1;
  float window[kMaxWidth];  // window[k] = in[t - (width-1) + k]
  float taps[kMaxWidth];
  for (int k = 0; k < width; ++k) taps[k] = weight[c * width + k];
  for (int k = 0; k < history; ++k) window[k] = state[k * channels + c];
  const float b = bias[c];
  for (int64_t t = 0; t < tokens; ++t) {
    window[history] = x[t * channels + c];
    float sum = b;
    for (int k = 0; k < width; ++k) sum += taps[k] * window[k];
    out[t * channels + c] = sum;
    for (int k = 0; k < history; ++k) window[k] = window[k + 1];
  }
  for (int k = 0; k < history; ++k) state[k * channels + c] = window[k];
}

// One thread per output (token, channel); the head's block of w is read column-wise.
__global__ void BlockDiagonalKernel(const float* x, const float* w, const float* bias, float* out, int64_t tokens,
                                    int64_t heads, int64_t block) {
  const int64_t channels = heads * block;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * channels) return;
  const int64_t t = i / channels, c = i % channels, h = c / block, j = c % block;
  const float* in = x + t * channels + h * block;
  const float* wh = w + h * block * block;
  float sum = bias[c];
  for (int64_t r = 0; r < block; ++r) sum += in[r] * wh[r * block + j];
  out[i] = sum;
}

__device__ __forceinline__ float Sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

__global__ void RgLruKernel(const float* x, const float* input_gate, const float* recurrent_gate,
                            const float* recurrent_param, int64_t first_index, float* state, float* out,
                            int64_t tokens, int64_t channels) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const float z = recurrent_param[c];
  const float softplus = z > 20.0f ? z : log1pf(expf(z));  // as torch.nn.functional.softplus
  float h = state[c];
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t i = t * channels + c;
    const float log_a = -8.0f * Sigmoid(recurrent_gate[i]) * softplus;
    const bool reset = first_index + t == 0;
    // sqrt(1 - a^2) = sqrt(-expm1(2 log_a)): exact where a is close to 1.
    const float multiplier = reset ? 1.0f : sqrtf(-expm1f(2.0f * log_a));
    const float carried = reset ? 0.0f : expf(log_a) * h;
    h = carried + x[i] * Sigmoid(input_gate[i]) * multiplier;
    out[i] = h;
  }
  state[c] = h;
}

}  // namespace

void LaunchCausalConv1D(const float* x, const float* weight, const float* bias, float* state, float* out,
                        int64_t tokens, int64_t channels, int64_t width, cudaStream_t stream) {
  CausalConv1DKernel<<<static_cast<unsigned>(CeilDiv(channels, kThreads)), kThreads, 0, stream>>>(
      x, weight, bias, state, out, tokens, channels, static_cast<int>(width));
}

void LaunchBlockDiagonalMatMul(const float* x, const float* w, const float* bias, float* out, int64_t tokens,
                               int64_t heads, int64_t block, cudaStream_t stream) {
  const int64_t count = tokens * heads * block;
  if (count == 0) return;
  BlockDiagonalKernel<<<static_cast<unsigned>(CeilDiv(count, kThreads)), kThreads, 0, stream>>>(x, w, bias, out,
                                                                                               tokens, heads, block);
}

void LaunchRgLru(const float* x, const float* input_gate, const float* recurrent_gate, const float* recurrent_param,
                 int64_t first_index, float* state, float* out, int64_t tokens, int64_t channels,
                 cudaStream_t stream) {
  RgLruKernel<<<static_cast<unsigned>(CeilDiv(channels, kThreads)), kThreads, 0, stream>>>(
      x, input_gate, recurrent_gate, recurrent_param, first_index, state, out, tokens, channels);
}

}  // namespace gemmarun::cuda
