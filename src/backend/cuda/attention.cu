// Attention over the paged KV cache, flash-decoding style: the keys a query row
// sees are cut into splits, one block per (row, head, split) runs an online
// softmax over its keys (a warp per key, lanes over head_dim), and a second
// kernel merges the splits: decode gets its parallelism from the splits. Prefill
// uses a tiled kernel: a block takes up to 16 rows of one sequence and one head,
// stages 32 keys at a time in shared memory as f32, each lane scores one key for
// a row (no shuffles per key) and the softmax weights are broadcast for P*V.
// A tensor-core (mma) version is the next step.
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
  const int64_t t = a.decode_rows[blockIdx.x], h = blockIdx.y;
  const int split = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  // Lane owns dims lane + 32 * i (i < per_lane): consecutive lanes read
  // consecutive elements, and head sizes that are not a multiple of 32 (the
  // fixtures' 16 and 24) leave the last lanes idle.
  const int head_dim = static_cast<int>(a.head_dim);
  const int per_lane = static_cast<int>((a.head_dim + 31) / 32);
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
  const float* q_row = a.q + (t * a.heads + h) * a.head_dim + lane;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    q[i] = i < per_lane && lane + 32 * i < head_dim ? q_row[32 * i] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = begin + warp; j < end; j += kWarps) {
    const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
    const int64_t offset = (slot * a.kv_heads + kv_head) * a.head_dim + lane;
    const C* k = k_cache + offset;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (i < per_lane && lane + 32 * i < head_dim) dot += q[i] * CacheValue(k, 32 * i);
    }
    float s = WarpSum(dot) * a.scale;
    if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
    const float m_new = fmaxf(m, s);
    const float correction = __expf(m - m_new), p = __expf(s - m_new);
    l = l * correction + p;
    const C* v = v_cache + offset;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (i < per_lane && lane + 32 * i < head_dim) acc[i] = acc[i] * correction + p * CacheValue(v, 32 * i);
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
    if (i < per_lane && lane + 32 * i < head_dim) warp_acc[warp][lane + 32 * i] = acc[i];
  }
  __syncthreads();
  float block_m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) block_m = fmaxf(block_m, warp_m[w]);
  float* partial = a.scratch + ((blockIdx.x * a.heads + h) * splits + split) * (a.head_dim + 2);
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

__global__ void MergeSplits(const float* scratch, const int32_t* decode_rows, int64_t heads, int splits,
                            int64_t head_dim, float* out) {
  const int64_t vector = blockIdx.x;  // (decode row, head)
  const int64_t out_vector = decode_rows[vector / heads] * heads + vector % heads;
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
    out[out_vector * head_dim + d] = sum / l;
  }
}

constexpr int kKeyTile = 32;
constexpr int kTileWarps = 4;
constexpr int kRowsPerWarp = kAttentionTileRows / kTileWarps;

__host__ __device__ constexpr size_t TiledSmemBytes(int64_t head_dim) {
  // K with one float of padding per key (lane j reads key j: no bank conflicts), V, Q.
  return sizeof(float) * (kKeyTile * (head_dim + 1) + kKeyTile * head_dim + kAttentionTileRows * head_dim);
}

template <class C>
__global__ void __launch_bounds__(kTileWarps * 32) TiledAttention(AttentionLaunch a) {
  extern __shared__ float smem[];
  const int64_t head_dim = a.head_dim;
  float* k_tile = smem;
  float* v_tile = k_tile + kKeyTile * (head_dim + 1);
  float* q_tile = v_tile + kKeyTile * head_dim;
  const DeviceTile tile = a.tiles[blockIdx.x];
  const int64_t h = blockIdx.y, kv_head = h / (a.heads / a.kv_heads);
  const DeviceSequence seq = a.sequences[tile.sequence];
  const int32_t* table = a.block_tables + seq.table_offset;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int per_lane = static_cast<int>((head_dim + 31) / 32);  // lane owns dims lane + 32 * i
  const int64_t first_index = seq.first_index + (tile.first_row - seq.first_row);
  auto lo_of = [&](int64_t index) { return a.window > 0 ? max(int64_t{0}, index - a.window + 1) : int64_t{0}; };
  auto hi_of = [&](int64_t index) { return index < seq.prefix_end ? seq.prefix_end : index + 1; };
  const int64_t key_begin = lo_of(first_index);
  const int64_t key_end = max(hi_of(first_index), hi_of(first_index + tile.num_rows - 1));

  for (int64_t i = threadIdx.x; i < tile.num_rows * head_dim; i += blockDim.x) {
    q_tile[i] = a.q[((tile.first_row + i / head_dim) * a.heads + h) * head_dim + i % head_dim] * a.scale;
  }
  // Lane owns dims lane + 32 * i of its rows' outputs.
  float acc[kRowsPerWarp][kMaxPerLane];
  float m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) acc[r][i] = 0.0f;
  }
  const C* k_cache = static_cast<const C*>(a.k_cache);
  const C* v_cache = static_cast<const C*>(a.v_cache);
  for (int64_t tile_begin = key_begin; tile_begin < key_end; tile_begin += kKeyTile) {
    const int keys = static_cast<int>(min(static_cast<int64_t>(kKeyTile), key_end - tile_begin));
    __syncthreads();
    for (int64_t i = threadIdx.x; i < keys * head_dim; i += blockDim.x) {
      const int64_t j = tile_begin + i / head_dim, d = i % head_dim;
      const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
      const int64_t offset = (slot * a.kv_heads + kv_head) * head_dim + d;
      k_tile[(i / head_dim) * (head_dim + 1) + d] = CacheValue(k_cache + offset, 0);
      v_tile[i] = CacheValue(v_cache + offset, 0);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      if (row >= tile.num_rows) continue;
      const int64_t index = first_index + row;
      const int64_t j = tile_begin + lane;
      const bool visible = lane < keys && j >= lo_of(index) && j < hi_of(index);
      float s = -INFINITY;
      if (visible) {
        const float* q = q_tile + row * head_dim;
        const float* k = k_tile + lane * (head_dim + 1);
        float dot = 0.0f;
        for (int64_t d = 0; d < head_dim; ++d) dot += q[d] * k[d];
        s = a.softcap > 0.0f ? a.softcap * tanhf(dot / a.softcap) : dot;
      }
      const float m_new = fmaxf(m[r], WarpMax(s));
      if (m_new == -INFINITY) continue;  // nothing visible yet for this row
      const float p = visible ? __expf(s - m_new) : 0.0f;
      const float correction = __expf(m[r] - m_new);
      l[r] = l[r] * correction + WarpSum(p);
      m[r] = m_new;
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i) acc[r][i] *= correction;
      for (int key = 0; key < keys; ++key) {
        const float pk = __shfl_sync(0xffffffffu, p, key);
        if (pk == 0.0f) continue;
        const float* v = v_tile + key * head_dim + lane;
#pragma unroll
        for (int i = 0; i < kMaxPerLane; ++i) {
          if (i < per_lane && lane + 32 * i < head_dim) acc[r][i] += pk * v[32 * i];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = warp * kRowsPerWarp + r;
    if (row >= tile.num_rows) continue;
    float* out = a.out + ((tile.first_row + row) * a.heads + h) * head_dim + lane;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (i < per_lane && lane + 32 * i < head_dim) out[32 * i] = acc[r][i] / l[r];
    }
  }
}

template <class C>
void LaunchTiled(const AttentionLaunch& args, cudaStream_t stream) {
  const size_t smem = TiledSmemBytes(args.head_dim);
  cudaFuncSetAttribute(TiledAttention<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  const dim3 grid(static_cast<unsigned>(args.num_tiles), static_cast<unsigned>(args.heads));
  TiledAttention<C><<<grid, kTileWarps * 32, smem, stream>>>(args);
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

template <class C>
__device__ __forceinline__ void StoreAs(DType type, void* base, int64_t i, float v) {
  if (type == DType::kBF16) {
    static_cast<uint16_t*>(base)[i] = ToBF16Bits(v);
  } else {
    static_cast<float*>(base)[i] = v;
  }
}

template <class C>
__global__ void GatherKvKernel(GemmAttentionPlan p) {
  const int64_t j = blockIdx.x, kv_head = blockIdx.y;
  const int64_t dst = (kv_head * p.keys_padded + j) * p.head_dim;
  int64_t src = -1;
  if (j < p.keys) {
    const int64_t key = p.key_lo + j;
    const int64_t slot = static_cast<int64_t>(p.block_table[key / p.block_size]) * p.block_size + key % p.block_size;
    src = (slot * p.kv_heads + kv_head) * p.head_dim;
  }
  const C* k = static_cast<const C*>(p.k_cache);
  const C* v = static_cast<const C*>(p.v_cache);
  for (int64_t d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    StoreAs<C>(p.gemm_type, p.kc, dst + d, src >= 0 ? CacheValue(k + src, static_cast<int>(d)) : 0.0f);
    StoreAs<C>(p.gemm_type, p.vc, dst + d, src >= 0 ? CacheValue(v + src, static_cast<int>(d)) : 0.0f);
  }
}

__global__ void PackQueriesKernel(GemmAttentionPlan p) {
  const int64_t r = blockIdx.x / p.heads, h = blockIdx.x % p.heads;
  const int64_t group = p.heads / p.kv_heads;
  const int64_t dst = ((h / group) * p.rows * group + r * group + h % group) * p.head_dim;
  const float* src = p.q + ((p.first_row + r) * p.heads + h) * p.head_dim;
  for (int64_t d = threadIdx.x; d < p.head_dim; d += blockDim.x) StoreAs<float>(p.gemm_type, p.qp, dst + d, src[d]);
}

// One block per score row: scale, soft-cap, mask (window, causality, prefix),
// softmax, probabilities normalized (so the second GEMM gives the output).
__global__ void MaskedSoftmaxKernel(GemmAttentionPlan p) {
  const int64_t group = p.heads / p.kv_heads;
  const int64_t r = (blockIdx.x % (p.rows * group)) / group;
  const int64_t index = p.first_index + r;
  const int64_t lo = p.window > 0 ? max(int64_t{0}, index - p.window + 1) : int64_t{0};
  const int64_t hi = index < p.prefix_end ? p.prefix_end : index + 1;
  const float* row = p.scores + static_cast<int64_t>(blockIdx.x) * p.keys_padded;
  auto score = [&](int64_t j, bool* visible) {
    const int64_t key = p.key_lo + j;
    *visible = j < p.keys && key >= lo && key < hi;
    float s = row[j] * p.scale;
    if (p.softcap > 0.0f) s = p.softcap * tanhf(s / p.softcap);
    return s;
  };
  __shared__ float reduce[32];
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < p.keys_padded; j += blockDim.x) {
    bool visible;
    const float s = score(j, &visible);
    if (visible) m = fmaxf(m, s);
  }
  m = WarpMax(m);
  if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = m;
  __syncthreads();
  m = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, reduce[w]);
  __syncthreads();
  float l = 0.0f;
  for (int64_t j = threadIdx.x; j < p.keys_padded; j += blockDim.x) {
    bool visible;
    const float s = score(j, &visible);
    if (visible) l += expf(s - m);
  }
  l = WarpSum(l);
  if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = l;
  __syncthreads();
  l = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) l += reduce[w];
  const float inv = 1.0f / l;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * p.keys_padded;
  for (int64_t j = threadIdx.x; j < p.keys_padded; j += blockDim.x) {
    bool visible;
    const float s = score(j, &visible);
    StoreAs<float>(p.gemm_type, p.probs, base + j, visible ? expf(s - m) * inv : 0.0f);
  }
}

__global__ void ScatterOutputsKernel(GemmAttentionPlan p) {
  const int64_t r = blockIdx.x / p.heads, h = blockIdx.x % p.heads;
  const int64_t group = p.heads / p.kv_heads;
  const float* src = p.outputs + ((h / group) * p.rows * group + r * group + h % group) * p.head_dim;
  float* dst = p.out + ((p.first_row + r) * p.heads + h) * p.head_dim;
  for (int64_t d = threadIdx.x; d < p.head_dim; d += blockDim.x) dst[d] = src[d];
}

}  // namespace

void LaunchGatherKv(const GemmAttentionPlan& plan, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(plan.keys_padded), static_cast<unsigned>(plan.kv_heads));
  const unsigned threads = static_cast<unsigned>(std::min<int64_t>(256, (plan.head_dim + 31) / 32 * 32));
  switch (plan.cache_type) {
    case DType::kF32: GatherKvKernel<float><<<grid, threads, 0, stream>>>(plan); break;
    case DType::kF16: GatherKvKernel<__half><<<grid, threads, 0, stream>>>(plan); break;
    case DType::kBF16: GatherKvKernel<__nv_bfloat16><<<grid, threads, 0, stream>>>(plan); break;
    default: break;
  }
}

void LaunchPackQueries(const GemmAttentionPlan& plan, cudaStream_t stream) {
  const unsigned threads = static_cast<unsigned>(std::min<int64_t>(256, (plan.head_dim + 31) / 32 * 32));
  PackQueriesKernel<<<static_cast<unsigned>(plan.rows * plan.heads), threads, 0, stream>>>(plan);
}

void LaunchMaskedSoftmax(const GemmAttentionPlan& plan, cudaStream_t stream) {
  MaskedSoftmaxKernel<<<static_cast<unsigned>(plan.rows * plan.heads), 256, 0, stream>>>(plan);
}

void LaunchScatterOutputs(const GemmAttentionPlan& plan, cudaStream_t stream) {
  const unsigned threads = static_cast<unsigned>(std::min<int64_t>(256, (plan.head_dim + 31) / 32 * 32));
  ScatterOutputsKernel<<<static_cast<unsigned>(plan.rows * plan.heads), threads, 0, stream>>>(plan);
}

bool AttentionSupports(DType cache_type, int64_t head_dim) {
  const bool type_ok = cache_type == DType::kF32 || cache_type == DType::kF16 || cache_type == DType::kBF16;
  return type_ok && head_dim > 0 && head_dim <= 32 * kMaxPerLane;
}

int64_t AttentionScratchFloats(int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_keys) {
  return tokens * heads * NumSplits(tokens, heads, max_keys) * (head_dim + 2);
}

void LaunchAttention(const AttentionLaunch& args, cudaStream_t stream) {
  if (args.tokens == 0) return;
  if (args.num_tiles > 0) {
    switch (args.cache_type) {
      case DType::kF32: LaunchTiled<float>(args, stream); break;
      case DType::kF16: LaunchTiled<__half>(args, stream); break;
      case DType::kBF16: LaunchTiled<__nv_bfloat16>(args, stream); break;
      default: return;
    }
  }
  if (args.num_decode_rows == 0) return;
  const int64_t splits = NumSplits(args.num_decode_rows, args.heads, args.max_keys);
  const int64_t keys_per_split = CeilDiv(args.max_keys, splits);
  const dim3 grid(static_cast<unsigned>(args.num_decode_rows), static_cast<unsigned>(args.heads),
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
  MergeSplits<<<static_cast<unsigned>(args.num_decode_rows * args.heads),
                static_cast<unsigned>(std::min<int64_t>(args.head_dim, 256)), 0, stream>>>(
      args.scratch, args.decode_rows, args.heads, s, args.head_dim, args.out);
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
