// Elementwise ops, RoPE and the embedding gather: memory-bound one-pass kernels.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace gemmarun::cuda {
namespace {

constexpr int kThreads = 256;
unsigned Blocks(int64_t count) { return static_cast<unsigned>(CeilDiv(count, kThreads)); }

__global__ void GeluMulKernel(const float* gate, const float* up, float* out, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = GeluTanh(gate[i]) * up[i];
}
__global__ void GeluKernel(float* x, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = GeluTanh(x[i]);
}
__global__ void AddKernel(const float* a, const float* b, float* out, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = a[i] + b[i];
}
__global__ void MulKernel(const float* a, const float* b, float* out, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = a[i] * b[i];
}
__global__ void SoftCapKernel(float* x, int64_t count, float cap) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = cap * tanhf(x[i] / cap);
}

// One thread per rotated pair. The angle is formed in double: positions reach
// 10^5 and an f32 product would lose the low bits that sin/cos need.
__global__ void RopeKernel(float* x, const float* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                           int rotary_dim, float theta, float position_scale) {
  const int half = rotary_dim / 2;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * heads * half) return;
  const int pair = static_cast<int>(i % half);
  const int64_t vector = i / half;  // (token, head)
  const int64_t token = vector / heads;
  const double angle = positions[token] / pow(static_cast<double>(theta), 2.0 * pair / rotary_dim) / position_scale;
  double s, c;
  sincos(angle, &s, &c);
  float* v = x + vector * head_dim;
  const float a = v[pair], b = v[pair + half];
  v[pair] = static_cast<float>(a * c - b * s);
  v[pair + half] = static_cast<float>(b * c + a * s);
}

template <class C>
__device__ __forceinline__ C CacheFromFloat(float v) {
  if constexpr (std::is_same_v<C, float>) {
    return v;
  } else if constexpr (std::is_same_v<C, __half>) {
    return __float2half_rn(v);
  } else {
    return __float2bfloat16_rn(v);
  }
}

// RoPE on q and k and the KV-cache write of k and v in one launch, each value
// as RopeKernel and WriteKvKernel compute it. Threads: q pairs, k pairs (which
// also store to the cache), v elements, then k's unrotated tail, if any.
template <class C>
__global__ void RopeWriteKvKernel(RopeWriteKv a) {
  const int half = a.rotary_dim / 2;
  const int64_t kv_dim = a.kv_heads * a.head_dim;
  const int64_t q_pairs = a.tokens * a.q_heads * half, k_pairs = a.tokens * a.kv_heads * half;
  const int64_t values = a.tokens * kv_dim, tail = a.tokens * a.kv_heads * (a.head_dim - a.rotary_dim);
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  C* k_cache = static_cast<C*>(a.k_cache);
  C* v_cache = static_cast<C*>(a.v_cache);
  if (i < q_pairs + k_pairs) {
    const bool is_k = i >= q_pairs;
    if (is_k) i -= q_pairs;
    const int64_t heads = is_k ? a.kv_heads : a.q_heads;
    const int pair = static_cast<int>(i % half);
    const int64_t vector = i / half;  // (token, head)
    const int64_t token = vector / heads;
    const double angle =
        a.positions[token] / pow(static_cast<double>(a.theta), 2.0 * pair / a.rotary_dim) / a.position_scale;
    double s, c;
    sincos(angle, &s, &c);
    float* v = (is_k ? a.k : a.q) + vector * a.head_dim;
    const float x0 = v[pair], x1 = v[pair + half];
    const float r0 = static_cast<float>(x0 * c - x1 * s), r1 = static_cast<float>(x1 * c + x0 * s);
    v[pair] = r0;
    v[pair + half] = r1;
    if (is_k) {
      const int64_t dst = a.slots[token] * kv_dim + (vector % heads) * a.head_dim;
      k_cache[dst + pair] = CacheFromFloat<C>(r0);
      k_cache[dst + pair + half] = CacheFromFloat<C>(r1);
    }
    return;
  }
  i -= q_pairs + k_pairs;
  if (i < values) {
    v_cache[a.slots[i / kv_dim] * kv_dim + i % kv_dim] = CacheFromFloat<C>(a.v[i]);
    return;
  }
  i -= values;
  if (i < tail) {
    const int64_t width = a.head_dim - a.rotary_dim;
    const int64_t vector = i / width, d = a.rotary_dim + i % width;
    const int64_t token = vector / a.kv_heads;
    k_cache[a.slots[token] * kv_dim + (vector % a.kv_heads) * a.head_dim + d] =
        CacheFromFloat<C>(a.k[vector * a.head_dim + d]);
  }
}

__global__ void EmbedKernel(DType type, const uint8_t* table, int64_t row_bytes, int64_t cols, const int32_t* ids,
                            float scale, float* out) {
  const uint8_t* row = table + static_cast<int64_t>(ids[blockIdx.y]) * row_bytes;
  float* dst = out + static_cast<int64_t>(blockIdx.y) * cols;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[c] = DecodeElement(type, row, c) * scale;
  }
}

__global__ void CopyKernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t words) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    dst[i] = __ldcs(src + i);
  }
}

// Spins one thread until `cycles` clock ticks have passed.
__global__ void HoldKernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

}  // namespace

void LaunchHold(double milliseconds, cudaStream_t stream) {
  int device = 0, khz = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device);
  HoldKernel<<<1, 1, 0, stream>>>(static_cast<long long>(milliseconds * (khz > 0 ? khz : 2000000)));
}

void LaunchCopy(const void* src, void* dst, size_t bytes, cudaStream_t stream) {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const size_t words = bytes / 16;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>(CeilDiv(words, kThreads), sms * 8));
  CopyKernel<<<blocks, kThreads, 0, stream>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), words);
}

void LaunchGeluMul(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream) {
  GeluMulKernel<<<Blocks(count), kThreads, 0, stream>>>(gate, up, out, count);
}
void LaunchGelu(float* x, int64_t count, cudaStream_t stream) {
  GeluKernel<<<Blocks(count), kThreads, 0, stream>>>(x, count);
}
void LaunchAdd(const float* a, const float* b, float* out, int64_t count, cudaStream_t stream) {
  AddKernel<<<Blocks(count), kThreads, 0, stream>>>(a, b, out, count);
}
void LaunchMul(const float* a, const float* b, float* out, int64_t count, cudaStream_t stream) {
  MulKernel<<<Blocks(count), kThreads, 0, stream>>>(a, b, out, count);
}
void LaunchSoftCap(float* x, int64_t count, float cap, cudaStream_t stream) {
  SoftCapKernel<<<Blocks(count), kThreads, 0, stream>>>(x, count, cap);
}
void LaunchRope(float* x, const float* positions, int64_t tokens, int64_t heads, int64_t head_dim, int rotary_dim,
                float theta, float position_scale, cudaStream_t stream) {
  const int64_t count = tokens * heads * (rotary_dim / 2);
  if (count == 0) return;
  RopeKernel<<<Blocks(count), kThreads, 0, stream>>>(x, positions, tokens, heads, head_dim, rotary_dim, theta,
                                                    position_scale);
}
void LaunchRopeWriteKv(const RopeWriteKv& args, cudaStream_t stream) {
  const int half = args.rotary_dim / 2;
  const int64_t count = args.tokens * ((args.q_heads + args.kv_heads) * half + args.kv_heads * args.head_dim +
                                       args.kv_heads * (args.head_dim - args.rotary_dim));
  if (count == 0) return;
  switch (static_cast<DType>(args.cache_type)) {
    case DType::kF32: RopeWriteKvKernel<float><<<Blocks(count), kThreads, 0, stream>>>(args); break;
    case DType::kF16: RopeWriteKvKernel<__half><<<Blocks(count), kThreads, 0, stream>>>(args); break;
    case DType::kBF16: RopeWriteKvKernel<__nv_bfloat16><<<Blocks(count), kThreads, 0, stream>>>(args); break;
    default: break;
  }
}

void LaunchEmbed(DType type, const void* table, int64_t cols, const int32_t* ids, int64_t count, float scale,
                 float* out, cudaStream_t stream) {
  if (count == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(CeilDiv(cols, kThreads), 64)), static_cast<unsigned>(count));
  EmbedKernel<<<grid, kThreads, 0, stream>>>(type, static_cast<const uint8_t*>(table),
                                             static_cast<int64_t>(RowBytes(type, cols)), cols, ids, scale, out);
}

}  // namespace gemmarun::cuda
