// Matrix-vector (and up to 8-row) products for decode, written for HBM: each warp
// streams one weight row (or a K-slice of it when there are too few rows to fill
// the GPU) with 16-byte loads, dequantizes in registers and keeps one partial sum
// per activation row. Quantized rows are not 16-byte aligned block by block, so a
// warp stages an aligned window of whole blocks in shared memory and decodes from
// there, loading the next window while it computes on this one.
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace gemmarun::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;  // one row per warp
constexpr int kThreads = kWarpsPerBlock * 32;
// Enough warps in flight for HBM: below this many (row, slice) pairs, K is split.
constexpr int64_t kTargetWarps = 16384;

__device__ __forceinline__ uint4 LoadStreaming(const uint4* p) { return __ldcs(p); }

template <class W>
struct FloatUnpack;
template <>
struct FloatUnpack<float> {
  static constexpr int kPer = 4;
  __device__ static void Run(const uint4& raw, float* out) {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  }
};
template <>
struct FloatUnpack<__half> {
  static constexpr int kPer = 8;
  __device__ static void Run(const uint4& raw, float* out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = HalfBits(words[i] & 0xffff);
      out[2 * i + 1] = HalfBits(words[i] >> 16);
    }
  }
};
template <>
struct FloatUnpack<__nv_bfloat16> {
  static constexpr int kPer = 8;
  __device__ static void Run(const uint4& raw, float* out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
};

template <int T>
__device__ __forceinline__ void Accumulate4(float (&acc)[T], const float* w4, const float* x, int64_t k,
                                            int64_t col, int t_count) {
#pragma unroll
  for (int t = 0; t < T; ++t) {
    if (t < t_count) {
      const float4 xv = __ldg(reinterpret_cast<const float4*>(x + t * k + col));
      acc[t] += w4[0] * xv.x + w4[1] * xv.y + w4[2] * xv.z + w4[3] * xv.w;
    }
  }
}

// The targets of a launch and the first block of each: blocks [first_block[i],
// first_block[i + 1]) compute target i's rows, a warp per row.
struct LaunchTargets {
  GemvTargets group;
  int64_t first_block[kMaxGemvTargets + 1];
};

struct WarpRow {
  const GemvTarget* target;
  int64_t row;
};
__device__ __forceinline__ WarpRow RowOfWarp(const LaunchTargets& targets) {
  int i = 0;
  while (i + 1 < targets.group.count && blockIdx.x >= targets.first_block[i + 1]) ++i;
  const int64_t row = (blockIdx.x - targets.first_block[i]) * kWarpsPerBlock + threadIdx.x / 32;
  return {&targets.group.target[i], row};
}

// Writes the warp's sums: straight to out (+bias) without a split, else to partials[split].
template <int T>
__device__ __forceinline__ void StoreSums(float (&acc)[T], int lane, int64_t row, int64_t n, int t_count,
                                          const float* bias, float* out, float* partials) {
#pragma unroll
  for (int t = 0; t < T; ++t) acc[t] = WarpSum(acc[t]);
  if (lane != 0) return;
#pragma unroll
  for (int t = 0; t < T; ++t) {
    if (t >= t_count) continue;
    if (gridDim.y == 1) {
      out[t * n + row] = acc[t] + (bias ? bias[row] : 0.0f);
    } else {
      partials[(static_cast<int64_t>(blockIdx.y) * t_count + t) * n + row] = acc[t];
    }
  }
}

// Gated pair: row r of gate (acc) and of up (up_acc), and gelu(gate) * up.
template <int T>
__device__ __forceinline__ void StoreGated(float (&acc)[T], float (&up_acc)[T], int lane, int64_t row,
                                           const GemvTargets& group, int t_count) {
  const GemvTarget& gate = group.target[0];
  const GemvTarget& up = group.target[1];
#pragma unroll
  for (int t = 0; t < T; ++t) {
    acc[t] = WarpSum(acc[t]);
    up_acc[t] = WarpSum(up_acc[t]);
  }
  if (lane != 0) return;
#pragma unroll
  for (int t = 0; t < T; ++t) {
    if (t >= t_count) continue;
    const int64_t i = t * gate.n + row;
    const float g = acc[t] + (gate.bias ? gate.bias[row] : 0.0f);
    const float u = up_acc[t] + (up.bias ? up.bias[row] : 0.0f);
    gate.out[i] = g;
    up.out[i] = u;
    group.gated[i] = GeluTanh(g) * u;
  }
}

// Float weights; the vector path needs k a multiple of 16 bytes' worth of
// elements and aligned w and x, the scalar path takes anything.
template <class W, int T, bool kVector>
__device__ __forceinline__ void FloatRowDot(const W* __restrict__ w_row, int64_t k, int64_t k_begin, int64_t k_end,
                                            const float* __restrict__ x, int t_count, int lane, float (&acc)[T]) {
#pragma unroll
  for (int t = 0; t < T; ++t) acc[t] = 0.0f;
  if constexpr (kVector) {
    constexpr int kPer = FloatUnpack<W>::kPer;
    constexpr int kUnroll = 4;
    const uint4* vec = reinterpret_cast<const uint4*>(w_row);
    const int64_t v_begin = k_begin / kPer, v_end = k_end / kPer;
    int64_t v = v_begin + lane;
    for (; v + 32 * (kUnroll - 1) < v_end; v += 32 * kUnroll) {
      uint4 raw[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) raw[u] = LoadStreaming(vec + v + 32 * u);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float wf[kPer];
        FloatUnpack<W>::Run(raw[u], wf);
#pragma unroll
        for (int j = 0; j < kPer; j += 4) Accumulate4<T>(acc, wf + j, x, k, (v + 32 * u) * kPer + j, t_count);
      }
    }
    for (; v < v_end; v += 32) {
      float wf[kPer];
      FloatUnpack<W>::Run(LoadStreaming(vec + v), wf);
#pragma unroll
      for (int j = 0; j < kPer; j += 4) Accumulate4<T>(acc, wf + j, x, k, v * kPer + j, t_count);
    }
  } else {
    for (int64_t i = k_begin + lane; i < k_end; i += 32) {
      float wv;
      if constexpr (sizeof(W) == 4) {
        wv = w_row[i];
      } else if constexpr (std::is_same_v<W, __half>) {
        wv = __half2float(w_row[i]);
      } else {
        wv = __bfloat162float(w_row[i]);
      }
#pragma unroll
      for (int t = 0; t < T; ++t) {
        if (t < t_count) acc[t] += wv * x[t * k + i];
      }
    }
  }
}

template <class W, int T, bool kVector>
__global__ void __launch_bounds__(kThreads) GemvFloat(LaunchTargets targets, int64_t k, int64_t k_slice,
                                                      const float* __restrict__ x, int t_count,
                                                      float* __restrict__ partials) {
  const int lane = threadIdx.x % 32;
  const WarpRow at = RowOfWarp(targets);
  if (at.row >= at.target->n) return;
  const int64_t k_begin = blockIdx.y * k_slice, k_end = min(k, k_begin + k_slice);
  float acc[T];
  FloatRowDot<W, T, kVector>(static_cast<const W*>(at.target->w) + at.row * k, k, k_begin, k_end, x, t_count, lane,
                             acc);
  if (targets.group.gated != nullptr) {
    float up_acc[T];
    FloatRowDot<W, T, kVector>(static_cast<const W*>(targets.group.target[1].w) + at.row * k, k, k_begin, k_end, x,
                               t_count, lane, up_acc);
    return StoreGated<T>(acc, up_acc, lane, at.row, targets.group, t_count);
  }
  StoreSums<T>(acc, lane, at.row, at.target->n, t_count, at.target->bias, at.target->out, partials);
}

// ---- quantized rows ----
// A window of staged blocks is walked in groups of 4 consecutive weights, group
// g by lane g % 32, so the activation loads of a warp are contiguous (float4 per
// lane). Small integers become floats with the 2^23 trick (or into the mantissa
// of 8388608.0f, subtract) instead of the quarter-rate I2F, and the block scale
// multiplies the group's dot product once: w = scale * q - min.
template <DType kType>
struct Quant;

__device__ __forceinline__ uint16_t SmemU16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
__device__ __forceinline__ uint32_t SmemU32(const uint8_t* p) {  // p is 2-byte aligned
  return SmemU16(p) | (static_cast<uint32_t>(SmemU16(p + 2)) << 16);
}
// u (< 2^23) minus `offset`, exactly, as a float.
__device__ __forceinline__ float SmallInt(uint32_t u, float offset_plus_2_23) {
  return __uint_as_float(0x4B000000u | u) - offset_plus_2_23;
}
constexpr float k2p23 = 8388608.0f;

// Four weights e..e+3 of the window (e a multiple of 4): codes and the affine map.
struct Group {
  float q[4];
  float scale;
  float min;  // subtracted times the activations' sum (Q4_K only; 0 elsewhere)
};

template <>
struct Quant<DType::kQ8_0> {
  static constexpr int kBlockBytes = 34, kBlockWeights = 32, kWindowBlocks = 32;
  __device__ static Group Decode(const uint8_t* window, int e) {
    const uint8_t* b = window + (e / 32) * kBlockBytes;
    const uint32_t word = SmemU32(b + 2 + e % 32) ^ 0x80808080u;  // int8 + 128
    Group g;
#pragma unroll
    for (int i = 0; i < 4; ++i) g.q[i] = SmallInt((word >> (8 * i)) & 0xFF, k2p23 + 128.0f);
    g.scale = HalfBits(SmemU16(b));
    g.min = 0.0f;
    return g;
  }
};

template <>
struct Quant<DType::kQ4_0> {
  static constexpr int kBlockBytes = 18, kBlockWeights = 32, kWindowBlocks = 64;
  __device__ static Group Decode(const uint8_t* window, int e) {
    const uint8_t* b = window + (e / 32) * kBlockBytes;
    const int p = e % 32, shift = p < 16 ? 0 : 4;
    const uint32_t word = SmemU32(b + 2 + p % 16);
    Group g;
#pragma unroll
    for (int i = 0; i < 4; ++i) g.q[i] = SmallInt((word >> (8 * i + shift)) & 0xF, k2p23 + 8.0f);
    g.scale = HalfBits(SmemU16(b));
    g.min = 0.0f;
    return g;
  }
};

template <>
struct Quant<DType::kQ5_0> {
  static constexpr int kBlockBytes = 22, kBlockWeights = 32, kWindowBlocks = 64;
  __device__ static Group Decode(const uint8_t* window, int e) {
    const uint8_t* b = window + (e / 32) * kBlockBytes;
    const int p = e % 32, shift = p < 16 ? 0 : 4;
    const uint32_t word = SmemU32(b + 6 + p % 16);
    const uint32_t high = SmemU32(b + 2) >> p;  // bit i: 5th bit of weight p + i
    Group g;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      g.q[i] = SmallInt(((word >> (8 * i + shift)) & 0xF) | (((high >> i) & 1) << 4), k2p23 + 16.0f);
    }
    g.scale = HalfBits(SmemU16(b));
    g.min = 0.0f;
    return g;
  }
};

template <>
struct Quant<DType::kQ4_K> {
  static constexpr int kBlockBytes = 144, kBlockWeights = 256, kWindowBlocks = 8;
  __device__ static Group Decode(const uint8_t* window, int e) {
    const uint8_t* b = window + (e / 256) * kBlockBytes;
    const int r = e % 256, chunk = r / 64, high = (r % 64) >= 32, l = r % 32;
    const uint32_t word = SmemU32(b + 16 + chunk * 32 + l);
    const int j = 2 * chunk + high;
    const uint8_t* sc = b + 4;
    int s, m;
    if (j < 4) {
      s = sc[j] & 63;
      m = sc[j + 4] & 63;
    } else {
      s = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
      m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
    Group g;
#pragma unroll
    for (int i = 0; i < 4; ++i) g.q[i] = SmallInt((word >> (8 * i + 4 * high)) & 0xF, k2p23);
    g.scale = HalfBits(SmemU16(b)) * s;
    g.min = HalfBits(SmemU16(b + 2)) * m;
    return g;
  }
};

template <>
struct Quant<DType::kQ6_K> {
  static constexpr int kBlockBytes = 210, kBlockWeights = 256, kWindowBlocks = 8;
  __device__ static Group Decode(const uint8_t* window, int e) {
    const uint8_t* b = window + (e / 256) * kBlockBytes;
    const int r = e % 256, half = r / 128, quad = (r % 128) / 32, l = r % 32;
    const uint32_t low = SmemU32(b + half * 64 + (quad & 1) * 32 + l);
    const uint32_t high = SmemU32(b + 128 + half * 32 + l);
    const int low_shift = quad >= 2 ? 4 : 0, high_shift = 2 * quad;
    Group g;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t code = ((low >> (8 * i + low_shift)) & 0xF) | (((high >> (8 * i + high_shift)) & 3) << 4);
      g.q[i] = SmallInt(code, k2p23 + 32.0f);
    }
    const int8_t sub_scale = static_cast<int8_t>(b[192 + half * 8 + l / 16 + 2 * quad]);
    g.scale = HalfBits(SmemU16(b + 208)) * sub_scale;
    g.min = 0.0f;
    return g;
  }
};

template <DType kType, int T>
__device__ __forceinline__ void DotGroup(const uint8_t* window, int g, const float* x_window, int64_t k, int t_count,
                                         float (&acc)[T]) {
  const Group w = Quant<kType>::Decode(window, 4 * g);
#pragma unroll
  for (int t = 0; t < T; ++t) {
    if (t < t_count) {
      const float4 xv = __ldg(reinterpret_cast<const float4*>(x_window + t * k) + g);
      const float dot = w.q[0] * xv.x + w.q[1] * xv.y + w.q[2] * xv.z + w.q[3] * xv.w;
      if constexpr (kType == DType::kQ4_K) {
        acc[t] += w.scale * dot - w.min * (xv.x + xv.y + xv.z + xv.w);
      } else {
        acc[t] += w.scale * dot;
      }
    }
  }
}

template <DType kType, int T>
__device__ __forceinline__ void DotWindow(const uint8_t* window, int num_blocks, int lane, const float* x, int64_t k,
                                          int64_t col0, int t_count, float (&acc)[T]) {
  using Q = Quant<kType>;
  constexpr int kFullGroups = Q::kWindowBlocks * Q::kBlockWeights / 4;
  static_assert(kFullGroups % 32 == 0);
  const float* x_window = x + col0;
  if (num_blocks == Q::kWindowBlocks) {  // unrolled: independent groups in flight
#pragma unroll
    for (int i = 0; i < kFullGroups / 32; ++i) DotGroup<kType, T>(window, lane + 32 * i, x_window, k, t_count, acc);
    return;
  }
  const int groups = num_blocks * Q::kBlockWeights / 4;
  for (int g = lane; g < groups; g += 32) DotGroup<kType, T>(window, g, x_window, k, t_count, acc);
}

template <DType kType>
__host__ __device__ constexpr int WindowBytes() {
  return Quant<kType>::kWindowBlocks * Quant<kType>::kBlockBytes;
}
// 16-byte words a window can touch when it starts mid-word, rounded up to whole warps of loads.
template <DType kType>
__host__ __device__ constexpr int WindowLoads() {
  return (WindowBytes<kType>() + 15 + 15) / 16;
}
constexpr int kMaxWindowLoads = 4;  // per lane: 4 x 32 x 16 bytes covers every format's window
constexpr int kSmemPerWarp = kMaxWindowLoads * 32 * 16;

template <DType kType, int T>
__device__ __forceinline__ void QuantRowDot(const uint8_t* __restrict__ row_ptr, int64_t k, int64_t k_slice,
                                            const float* __restrict__ x, int t_count, int lane, uint8_t* warp_smem,
                                            float (&acc)[T]) {
  using Q = Quant<kType>;
  static_assert(WindowLoads<kType>() <= kMaxWindowLoads * 32);
  const int64_t block_begin = blockIdx.y * k_slice / Q::kBlockWeights;
  const int64_t block_end = min(k, (blockIdx.y + 1) * k_slice) / Q::kBlockWeights;
#pragma unroll
  for (int t = 0; t < T; ++t) acc[t] = 0.0f;

  uint4 regs[kMaxWindowLoads];
  // Loads the aligned 16-byte words covering window [first, first + count) of blocks.
  auto load = [&](int64_t first, int count, int64_t* skew) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(row_ptr + first * Q::kBlockBytes);
    const uintptr_t aligned = begin & ~uintptr_t{15};
    *skew = static_cast<int64_t>(begin - aligned);
    const int words = static_cast<int>((begin + count * Q::kBlockBytes - aligned + 15) / 16);
    const uint4* src = reinterpret_cast<const uint4*>(aligned);
#pragma unroll
    for (int j = 0; j < kMaxWindowLoads; ++j) {
      const int word = lane + 32 * j;
      if (word < words) regs[j] = LoadStreaming(src + word);
    }
  };
  int64_t skew = 0, next_skew = 0;
  int64_t first = block_begin;
  if (first < block_end) load(first, static_cast<int>(min(static_cast<int64_t>(Q::kWindowBlocks), block_end - first)), &skew);
  uint4* stage = reinterpret_cast<uint4*>(warp_smem);
  while (first < block_end) {
    const int count = static_cast<int>(min(static_cast<int64_t>(Q::kWindowBlocks), block_end - first));
    __syncwarp();
#pragma unroll
    for (int j = 0; j < kMaxWindowLoads; ++j) stage[lane + 32 * j] = regs[j];
    __syncwarp();
    const int64_t next = first + count;
    if (next < block_end) load(next, static_cast<int>(min(static_cast<int64_t>(Q::kWindowBlocks), block_end - next)), &next_skew);
    DotWindow<kType, T>(warp_smem + skew, count, lane, x, k, first * Q::kBlockWeights, t_count, acc);
    first = next;
    skew = next_skew;
  }
}

template <DType kType, int T>
__global__ void __launch_bounds__(kThreads) GemvQuant(LaunchTargets targets, int64_t k, int64_t k_slice,
                                                      const float* __restrict__ x, int t_count,
                                                      float* __restrict__ partials) {
  using Q = Quant<kType>;
  __shared__ __align__(16) uint8_t smem[kWarpsPerBlock][kSmemPerWarp];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const WarpRow at = RowOfWarp(targets);
  if (at.row >= at.target->n) return;
  const int64_t row_bytes = k / Q::kBlockWeights * Q::kBlockBytes;
  float acc[T];
  QuantRowDot<kType, T>(static_cast<const uint8_t*>(at.target->w) + at.row * row_bytes, k, k_slice, x, t_count, lane,
                        smem[warp], acc);
  if (targets.group.gated != nullptr) {
    float up_acc[T];
    QuantRowDot<kType, T>(static_cast<const uint8_t*>(targets.group.target[1].w) + at.row * row_bytes, k, k_slice, x,
                          t_count, lane, smem[warp], up_acc);
    return StoreGated<T>(acc, up_acc, lane, at.row, targets.group, t_count);
  }
  StoreSums<T>(acc, lane, at.row, at.target->n, t_count, at.target->bias, at.target->out, partials);
}

__global__ void ReduceSplits(const float* __restrict__ partials, int splits, int64_t count, int64_t n,
                             const float* __restrict__ bias, float* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  float sum = bias ? bias[i % n] : 0.0f;
  for (int s = 0; s < splits; ++s) sum += partials[s * count + i];
  out[i] = sum;
}

int64_t SliceGranule(DType type) {
  switch (type) {
    case DType::kQ8_0: return 32 * 32;
    case DType::kQ4_0:
    case DType::kQ5_0: return 64 * 32;
    case DType::kQ4_K:
    case DType::kQ6_K: return 8 * 256;
    default: return 1024;
  }
}

int Splits(DType type, int64_t n, int64_t k, int64_t* k_slice) {
  const int64_t granule = SliceGranule(type);
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>(CeilDiv(kTargetWarps, n), k / (2 * granule)));
  *k_slice = CeilDiv(CeilDiv(k, splits), granule) * granule;
  splits = CeilDiv(k, *k_slice);
  return static_cast<int>(splits);
}

template <class W, int T>
void LaunchFloat(dim3 grid, const LaunchTargets& targets, int64_t k, int64_t k_slice, const float* x, int t_count,
                 float* partials, cudaStream_t stream) {
  constexpr int kPer = FloatUnpack<W>::kPer;
  bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && k % kPer == 0 && k_slice % kPer == 0;
  for (int i = 0; i < targets.group.count; ++i) aligned &= reinterpret_cast<uintptr_t>(targets.group.target[i].w) % 16 == 0;
  if (aligned) {
    GemvFloat<W, T, true><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
  } else {
    GemvFloat<W, T, false><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
  }
}

// Launches the targets' rows with `splits` K-slices (1 for a group).
template <int T>
void LaunchTargetsOf(DType type, const GemvTargets& group, int64_t k, int splits, int64_t k_slice, const float* x,
                     int t_count, float* partials, cudaStream_t stream) {
  LaunchTargets targets{};
  targets.group = group;
  const int rows_count = group.gated != nullptr ? 1 : static_cast<int>(group.count);  // a gated pair: gate's rows
  for (int i = 0; i < rows_count; ++i) {
    targets.first_block[i + 1] = targets.first_block[i] + CeilDiv(group.target[i].n, kWarpsPerBlock);
  }
  for (int i = rows_count; i < kMaxGemvTargets; ++i) targets.first_block[i + 1] = targets.first_block[i];
  if (group.gated != nullptr) targets.group.count = 1;  // every block maps to the gate's rows
  const dim3 grid(static_cast<unsigned>(targets.first_block[rows_count]), splits);
  switch (type) {
    case DType::kF32: return LaunchFloat<float, T>(grid, targets, k, k_slice, x, t_count, partials, stream);
    case DType::kF16: return LaunchFloat<__half, T>(grid, targets, k, k_slice, x, t_count, partials, stream);
    case DType::kBF16: return LaunchFloat<__nv_bfloat16, T>(grid, targets, k, k_slice, x, t_count, partials, stream);
    case DType::kQ8_0:
      GemvQuant<DType::kQ8_0, T><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
      return;
    case DType::kQ4_0:
      GemvQuant<DType::kQ4_0, T><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
      return;
    case DType::kQ5_0:
      GemvQuant<DType::kQ5_0, T><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
      return;
    case DType::kQ4_K:
      GemvQuant<DType::kQ4_K, T><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
      return;
    case DType::kQ6_K:
      GemvQuant<DType::kQ6_K, T><<<grid, kThreads, 0, stream>>>(targets, k, k_slice, x, t_count, partials);
      return;
    default: return;
  }
}

template <int T>
void LaunchBatch(DType type, const void* w, int64_t n, int64_t k, const float* x, int t_count,
                 const float* bias, float* out, float* partials, cudaStream_t stream) {
  int64_t k_slice = 0;
  const int splits = Splits(type, n, k, &k_slice);
  GemvTargets group{};
  group.target[0] = GemvTarget{w, splits > 1 ? nullptr : bias, out, n};
  group.count = 1;
  LaunchTargetsOf<T>(type, group, k, splits, k_slice, x, t_count, partials, stream);
  if (splits > 1) {
    const int64_t count = static_cast<int64_t>(t_count) * n;
    ReduceSplits<<<static_cast<unsigned>(CeilDiv(count, 256)), 256, 0, stream>>>(partials, splits, count, n, bias,
                                                                                 out);
  }
}

template <int T>
void LaunchGroup(DType type, const GemvTargets& group, int64_t k, const float* x, int t_count, cudaStream_t stream) {
  LaunchTargetsOf<T>(type, group, k, 1, k, x, t_count, nullptr, stream);
}

// Quantized rows for the prefill GEMM: a thread decodes 4 consecutive weights
// with the matvec's decoders (rows are 2-byte aligned, whole blocks).
template <DType kType>
__global__ void DequantizeQuantRows(const uint8_t* w, int64_t row_bytes, int64_t row_begin, int64_t rows, int64_t k,
                                    DType out_type, void* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // group of 4
  if (i >= rows * k / 4) return;
  const int64_t r = i / (k / 4);
  const int e = static_cast<int>((i % (k / 4)) * 4);
  const Group g = Quant<kType>::Decode(w + (row_begin + r) * row_bytes, e);
  float v[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) v[j] = g.scale * g.q[j] - g.min;
  if (out_type == DType::kF32) {
    reinterpret_cast<float4*>(out)[i] = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    const bool half = out_type == DType::kF16;
    uint2 packed;
    packed.x = (half ? ToHalfBits(v[0]) : ToBF16Bits(v[0])) | (static_cast<uint32_t>(half ? ToHalfBits(v[1]) : ToBF16Bits(v[1])) << 16);
    packed.y = (half ? ToHalfBits(v[2]) : ToBF16Bits(v[2])) | (static_cast<uint32_t>(half ? ToHalfBits(v[3]) : ToBF16Bits(v[3])) << 16);
    reinterpret_cast<uint2*>(out)[i] = packed;
  }
}

// out is f32 when out_type is kF32, else f16 or bf16 bits.
__global__ void DequantizeRowsKernel(DType type, const uint8_t* w, int64_t row_bytes, int64_t row_begin,
                                     int64_t rows, int64_t k, DType out_type, void* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * k) return;
  const int64_t r = i / k, c = i % k;
  const float v = DecodeElement(type, w + (row_begin + r) * row_bytes, c);
  if (out_type == DType::kF32) {
    static_cast<float*>(out)[i] = v;
  } else {
    static_cast<uint16_t*>(out)[i] = out_type == DType::kF16 ? ToHalfBits(v) : ToBF16Bits(v);
  }
}

__global__ void ConvertKernel(const float* x, int64_t count, bool to_half, uint16_t* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = to_half ? ToHalfBits(x[i]) : ToBF16Bits(x[i]);
}

__global__ void AddBiasKernel(float* out, int64_t rows, int64_t n, int64_t ld, const float* bias) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * n) out[(i / n) * ld + i % n] += bias[i % n];
}

__global__ void ArgMaxKernel(const float* logits, int64_t cols, int32_t* ids) {
  const float* row = logits + blockIdx.x * cols;
  float best = -INFINITY;
  int64_t best_index = cols;  // larger than any real index: loses every tie
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = row[i];
    if (v > best || (v == best && i < best_index)) {
      best = v;
      best_index = i;
    }
  }
  __shared__ float values[32];
  __shared__ int64_t indices[32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, offset);
    const int64_t j = __shfl_xor_sync(0xffffffffu, best_index, offset);
    if (v > best || (v == best && j < best_index)) {
      best = v;
      best_index = j;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    values[warp] = best;
    indices[warp] = best_index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < static_cast<int>(blockDim.x / 32); ++i) {
      if (values[i] > best || (values[i] == best && indices[i] < best_index)) {
        best = values[i];
        best_index = indices[i];
      }
    }
    // A row of NaNs has no maximum; report index 0 rather than an out-of-range id.
    ids[blockIdx.x] = static_cast<int32_t>(best_index == cols ? 0 : best_index);
  }
}

}  // namespace

bool GemvSupports(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ4_K:
    case DType::kQ6_K: return true;
    default: return false;
  }
}

int64_t GemvScratchFloats(int64_t n, int64_t k, int t_count) {
  int64_t k_slice = 0;
  // Same split for every float type; the quantized granules are at least as large.
  const int splits = std::max(Splits(DType::kF32, n, k, &k_slice), Splits(DType::kQ8_0, n, k, &k_slice));
  return splits > 1 ? splits * t_count * n : 0;
}

int GemvSplits(DType type, int64_t n, int64_t k) {
  int64_t k_slice = 0;
  return Splits(type, n, k, &k_slice);
}

void LaunchGemvGroup(DType type, const GemvTargets& targets, int64_t k, const float* x, int t_count,
                     cudaStream_t stream) {
  if (t_count <= 1) return LaunchGroup<1>(type, targets, k, x, t_count, stream);
  if (t_count <= 2) return LaunchGroup<2>(type, targets, k, x, t_count, stream);
  if (t_count <= 4) return LaunchGroup<4>(type, targets, k, x, t_count, stream);
  return LaunchGroup<8>(type, targets, k, x, t_count, stream);
}

void LaunchGemv(DType type, const void* w, int64_t n, int64_t k, const float* x, int t_count,
                const float* bias, float* out, float* partials, cudaStream_t stream) {
  if (t_count <= 1) return LaunchBatch<1>(type, w, n, k, x, t_count, bias, out, partials, stream);
  if (t_count <= 2) return LaunchBatch<2>(type, w, n, k, x, t_count, bias, out, partials, stream);
  if (t_count <= 4) return LaunchBatch<4>(type, w, n, k, x, t_count, bias, out, partials, stream);
  return LaunchBatch<8>(type, w, n, k, x, t_count, bias, out, partials, stream);
}

void LaunchDequantizeRows(DType type, const void* w, int64_t row_begin, int64_t rows, int64_t k, DType out_type,
                          void* out, cudaStream_t stream) {
  const int64_t count = rows * k;
  const unsigned blocks = static_cast<unsigned>(CeilDiv(count, 256));
  const auto* bytes = static_cast<const uint8_t*>(w);
  const int64_t row_bytes = static_cast<int64_t>(RowBytes(type, k));
  const unsigned group_blocks = static_cast<unsigned>(CeilDiv(count / 4, 256));
  const bool aligned = reinterpret_cast<uintptr_t>(w) % 2 == 0;
  switch (aligned ? type : DType::kI32) {
    case DType::kQ8_0:
      return DequantizeQuantRows<DType::kQ8_0><<<group_blocks, 256, 0, stream>>>(bytes, row_bytes, row_begin, rows, k,
                                                                               out_type, out);
    case DType::kQ4_0:
      return DequantizeQuantRows<DType::kQ4_0><<<group_blocks, 256, 0, stream>>>(bytes, row_bytes, row_begin, rows, k,
                                                                               out_type, out);
    case DType::kQ5_0:
      return DequantizeQuantRows<DType::kQ5_0><<<group_blocks, 256, 0, stream>>>(bytes, row_bytes, row_begin, rows, k,
                                                                               out_type, out);
    case DType::kQ4_K:
      return DequantizeQuantRows<DType::kQ4_K><<<group_blocks, 256, 0, stream>>>(bytes, row_bytes, row_begin, rows, k,
                                                                               out_type, out);
    case DType::kQ6_K:
      return DequantizeQuantRows<DType::kQ6_K><<<group_blocks, 256, 0, stream>>>(bytes, row_bytes, row_begin, rows, k,
                                                                               out_type, out);
    default:
      DequantizeRowsKernel<<<blocks, 256, 0, stream>>>(type, bytes, row_bytes, row_begin, rows, k, out_type, out);
  }
}

void LaunchConvertF32(const float* x, int64_t count, DType out_type, void* out, cudaStream_t stream) {
  ConvertKernel<<<static_cast<unsigned>(CeilDiv(count, 256)), 256, 0, stream>>>(
      x, count, out_type == DType::kF16, static_cast<uint16_t*>(out));
}

void LaunchAddBias(float* out, int64_t rows, int64_t n, int64_t ld, const float* bias, cudaStream_t stream) {
  AddBiasKernel<<<static_cast<unsigned>(CeilDiv(rows * n, 256)), 256, 0, stream>>>(out, rows, n, ld, bias);
}

void LaunchArgMax(const float* logits, int64_t rows, int64_t cols, int32_t* ids, cudaStream_t stream) {
  ArgMaxKernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, cols, ids);
}

}  // namespace gemmarun::cuda
