// Device helpers shared by the .cu files: half/bfloat16 bits, warp reductions,
// and the element decode of every stored dtype (ggml block layouts, as tensor/quant.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "tensor/dtype.h"

namespace gemmarun::cuda {

__device__ __forceinline__ float HalfBits(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
__device__ __forceinline__ float BF16Bits(uint16_t bits) { return __uint_as_float(static_cast<uint32_t>(bits) << 16); }
__device__ __forceinline__ uint16_t ToHalfBits(float v) { return __half_as_ushort(__float2half_rn(v)); }
__device__ __forceinline__ uint16_t ToBF16Bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

// GELU, tanh approximation (gelu_pytorch_tanh).
__device__ __forceinline__ float GeluTanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Element i of a row of `type` starting at `row` (any alignment). Slow but
// general: for embedding rows and dequantized tiles, not for the matvec loops.
__device__ inline float DecodeElement(DType type, const uint8_t* row, int64_t i) {
  switch (type) {
    case DType::kF32: {
      float v;
      memcpy(&v, row + 4 * i, 4);
      return v;
    }
    case DType::kF16: return HalfBits(LoadU16(row + 2 * i));
    case DType::kBF16: return BF16Bits(LoadU16(row + 2 * i));
    case DType::kQ8_0: {
      const uint8_t* b = row + (i / 32) * 34;
      return HalfBits(LoadU16(b)) * static_cast<int8_t>(b[2 + i % 32]);
    }
    case DType::kQ4_0: {
      const uint8_t* b = row + (i / 32) * 18;
      const int j = i % 32;
      const int q = j < 16 ? (b[2 + j] & 0xF) : (b[2 + j - 16] >> 4);
      return (q - 8) * HalfBits(LoadU16(b));
    }
    case DType::kQ5_0: {
      const uint8_t* b = row + (i / 32) * 22;
      const int j = i % 32;
      const uint32_t qh = b[2] | (b[3] << 8) | (b[4] << 16) | (static_cast<uint32_t>(b[5]) << 24);
      const int low = j < 16 ? (b[6 + j] & 0xF) : (b[6 + j - 16] >> 4);
      const int q = (low | (((qh >> j) & 1) << 4)) - 16;
      return q * HalfBits(LoadU16(b));
    }
    case DType::kQ4_K: {
      const uint8_t* b = row + (i / 256) * 144;
      const int e = i % 256, chunk = e / 64, high = (e % 64) >= 32, l = e % 32;
      const int j = 2 * chunk + high;
      const uint8_t* sc = b + 4;
      int scale, min;
      if (j < 4) {
        scale = sc[j] & 63;
        min = sc[j + 4] & 63;
      } else {
        scale = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
        min = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
      }
      const uint8_t byte = b[16 + chunk * 32 + l];
      const int q = high ? (byte >> 4) : (byte & 0xF);
      return HalfBits(LoadU16(b)) * scale * q - HalfBits(LoadU16(b + 2)) * min;
    }
    case DType::kQ6_K: {
      const uint8_t* b = row + (i / 256) * 210;
      const int e = i % 256, half = e / 128, quad = (e % 128) / 32, l = e % 32;
      const uint8_t* ql = b + half * 64;
      const uint8_t* qh = b + 128 + half * 32;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + half * 8;
      const int low = (quad & 1) ? ql[l + 32] : ql[l];
      const int q = (((quad >= 2) ? (low >> 4) : (low & 0xF)) | (((qh[l] >> (2 * quad)) & 3) << 4)) - 32;
      return HalfBits(LoadU16(b + 208)) * sc[l / 16 + 2 * quad] * q;
    }
    default: return 0.0f;
  }
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace gemmarun::cuda
