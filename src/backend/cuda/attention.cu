// Attention over the paged KV cache, flash-decoding style: the keys a query row
// sees are cut into splits, one block per (row, head, split) runs an online
// softmax over its keys (a warp per key, lanes over head_dim), and a second
// kernel merges the splits. Decode gets its parallelism from the splits; prefill
// from its rows (keys then come from L2). A tiled tensor-core prefill kernel is
// the next step.
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace gemmarun::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head_dim <= 256
constexpr int64_t kTargetBlocks = 4 * 132;

int64_t NumSplits(int64_t tokens, int64_t heads, int64_t max_keys) {
  const int64_t wanted = CeilDiv(kTargetBlocks, std::max<int64_t>(1, tokens * heads));
  const int64_t most = CeilDiv(max_keys, 64);  // no split under 64 keys
  return std::max<int64_t>({1, CeilDiv(max_keys, 2048), std::min(wanted, most)});
}

template <class C>
__device__ __forceinline__ float CacheValue(const C* p, int i);
template <>
__device__ __forceinline__ float CacheValue<float>(const float* p, int i) { return p[i]; }
template <>
__device__ __forceinline__ float CacheValue<__half>(const __half* p, int i) { return __half2float(p[i]); }
template <>
__device__ __forceinline__ float CacheValue<__nv_bfloat16>(const __nv_bfloat16* p, int i) {
  return __bfloat162float(p[i]);
}

template <class C>
__global__ void __launch_bounds__(kWarps * 32) SplitAttention(AttentionLaunch a, int64_t keys_per_split, int splits) {
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int split = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int per_lane = static_cast<int>(a.head_dim / 32);
  const DeviceSequence seq = a.sequences[a.row_sequence[t]];
  const int64_t index = seq.first_index + (t - seq.first_row);
  const int64_t lo = a.window > 0 ? max(int64_t{0}, index - a.window + 1) : int64_t{0};
  const int64_t hi = index < seq.prefix_end ? seq.prefix_end : index + 1;
  const int64_t begin = lo + split * keys_per_split, end = min(hi, begin + keys_per_split);
  const int64_t kv_head = h / (a.heads / a.kv_heads);
  const int32_t* table = a.block_tables + seq.table_offset;
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);

  float q[kMaxPerLane], acc[kMaxPerLane];
  const float* q_row = a.q + (t * a.heads + h) * a.head_dim + lane * per_lane;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    q[i] = i < per_lane ? q_row[i] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = begin + warp; j < end; j += kWarps) {
    const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
    const int64_t offset = (slot * a.kv_heads + kv_head) * a.head_dim + lane * per_lane;
    const C* k = k_cache + offset;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (i < per_lane) dot += q[i] * CacheValue(k, i);
    }
    float s = WarpSum(dot) * a.scale;
    if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
    const float m_new = fmaxf(m, s);
    const float correction = __expf(m - m_new), p = __expf(s - m_new);
    l = l * correction + p;
    const C* v = v_cache + offset;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (i < per_lane) acc[i] = acc[i] * correction + p * CacheValue(v, i);
    }
    m = m_new;
  }

  // Merge the warps' running softmaxes, then store this split's (m, l, acc).
  __shared__ float warp_m[kWarps], warp_l[kWarps];
  __shared__ float warp_acc[kWarps][256];
  if (lane == 0) {
    warp_m[warp] = m;
    warp_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    if (i < per_lane) warp_acc[warp][lane * per_lane + i] = acc[i];
  }
  __syncthreads();
  float block_m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) block_m = fmaxf(block_m, warp_m[w]);
  float* partial = a.scratch + ((t * a.heads + h) * splits + split) * (a.head_dim + 2);
  for (int64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (warp_m[w] != -INFINITY) sum += warp_acc[w][d] * __expf(warp_m[w] - block_m);
    }
    partial[2 + d] = sum;
  }
  if (threadIdx.x == 0) {
    float block_l = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (warp_m[w] != -INFINITY) block_l += warp_l[w] * __expf(warp_m[w] - block_m);
    }
    partial[0] = block_m;
    partial[1] = block_l;
  }
}

__global__ void MergeSplits(const float* scratch, int splits, int64_t head_dim, float* out) {
  const int64_t vector = blockIdx.x;  // (token, head)
  const float* partials = scratch + vector * splits * (head_dim + 2);
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, partials[s * (head_dim + 2)]);
  float l = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float ms = partials[s * (head_dim + 2)];
    if (ms != -INFINITY) l += partials[s * (head_dim + 2) + 1] * __expf(ms - m);
  }
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float ms = partials[s * (head_dim + 2)];
      if (ms != -INFINITY) sum += partials[s * (head_dim + 2) + 2 + d] * __expf(ms - m);
    }
    out[vector * head_dim + d] = sum / l;
  }
}

template <class C>
__global__ void WriteKvKernel(const float* k, const float* v, const int64_t* slots, int64_t tokens, int64_t kv_dim,
                              C* k_cache, C* v_cache) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * kv_dim) return;
  const int64_t t = i / kv_dim, d = i % kv_dim;
  const int64_t dst = slots[t] * kv_dim + d;
  if constexpr (std::is_same_v<C, float>) {
    k_cache[dst] = k[i];
    v_cache[dst] = v[i];
  } else if constexpr (std::is_same_v<C, __half>) {
    k_cache[dst] = __float2half_rn(k[i]);
    v_cache[dst] = __float2half_rn(v[i]);
  } else {
    k_cache[dst] = __float2bfloat16_rn(k[i]);
    v_cache[dst] = __float2bfloat16_rn(v[i]);
  }
}

}  // namespace

bool AttentionSupports(DType cache_type, int64_t head_dim) {
  const bool type_ok = cache_type == DType::kF32 || cache_type == DType::kF16 || cache_type == DType::kBF16;
  return type_ok && head_dim % 32 == 0 && head_dim <= 32 * kMaxPerLane;
}

int64_t AttentionScratchFloats(int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_keys) {
  return tokens * heads * NumSplits(tokens, heads, max_keys) * (head_dim + 2);
}

void LaunchAttention(const AttentionLaunch& args, cudaStream_t stream) {
  if (args.tokens == 0) return;
  const int64_t splits = NumSplits(args.tokens, args.heads, args.max_keys);
  const int64_t keys_per_split = CeilDiv(args.max_keys, splits);
  const dim3 grid(static_cast<unsigned>(args.tokens), static_cast<unsigned>(args.heads),
                  static_cast<unsigned>(splits));
  const int s = static_cast<int>(splits);
  switch (args.cache_type) {
    case DType::kF32: SplitAttention<float><<<grid, kWarps * 32, 0, stream>>>(args, keys_per_split, s); break;
    case DType::kF16: SplitAttention<__half><<<grid, kWarps * 32, 0, stream>>>(args, keys_per_split, s); break;
    case DType::kBF16:
      SplitAttention<__nv_bfloat16><<<grid, kWarps * 32, 0, stream>>>(args, keys_per_split, s);
      break;
    default: return;
  }
  MergeSplits<<<static_cast<unsigned>(args.tokens * args.heads), static_cast<unsigned>(std::min<int64_t>(args.head_dim, 256)),
                0, stream>>>(args.scratch, s, args.head_dim, args.out);
}

void LaunchWriteKv(const float* k, const float* v, const int64_t* slots, int64_t tokens, int64_t kv_dim,
                   DType cache_type, void* k_cache, void* v_cache, cudaStream_t stream) {
  const int64_t count = tokens * kv_dim;
  if (count == 0) return;
  const unsigned blocks = static_cast<unsigned>(CeilDiv(count, 256));
  switch (cache_type) {
    case DType::kF32:
      WriteKvKernel<float><<<blocks, 256, 0, stream>>>(k, v, slots, tokens, kv_dim, static_cast<float*>(k_cache),
                                                       static_cast<float*>(v_cache));
      break;
    case DType::kF16:
      WriteKvKernel<__half><<<blocks, 256, 0, stream>>>(k, v, slots, tokens, kv_dim, static_cast<__half*>(k_cache),
                                                        static_cast<__half*>(v_cache));
      break;
    case DType::kBF16:
      WriteKvKernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(k, v, slots, tokens, kv_dim,
                                                               static_cast<__nv_bfloat16*>(k_cache),
                                                               static_cast<__nv_bfloat16*>(v_cache));
      break;
    default: return;
  }
}

}  // namespace gemmarun::cuda
