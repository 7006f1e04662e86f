// Row conversions between stored weight formats and float32, and the byte
// layouts of ggml's block-quantized formats. Dequantization reproduces ggml's
// dequantize_row_* bit for bit (ref: ggml/src/ggml-quants.c), so a GGUF file
// computes here with the same weights as in llama.cpp. These are the scalar
// references: SIMD kernels in backend/ are tested against them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace gemmarun {

// Block layouts (ref: ggml/src/ggml-common.h). Every f16 field is IEEE half
// bits. The structs need 2-byte alignment; a row inside a GGUF mapping may not
// have it, so code that cannot prove alignment copies a block out with memcpy.
constexpr size_t kQK = 32;   // weights per Q8_0 / Q4_0 / Q5_0 block
constexpr size_t kQKK = 256; // weights per K-quant super-block

struct BlockQ8_0 {
  uint16_t d;       // scale
  int8_t qs[kQK];   // y[j] = qs[j] * d
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];  // low nibbles: weights 0..15, high nibbles: 16..31; offset 8
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];        // bit j = 5th bit of weight j (little-endian u32)
  uint8_t qs[kQK / 2];  // low 4 bits, as in Q4_0; offset 16
};
struct BlockQ4_K {
  uint16_t d;            // super-block scale of the 6-bit sub-scales
  uint16_t dmin;         // super-block scale of the 6-bit sub-mins
  uint8_t scales[12];    // 8 (scale, min) pairs of 6 bits, see Q4KScaleMin
  uint8_t qs[kQKK / 2];  // 4 chunks of 32 bytes: low nibbles then high nibbles
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];  // low 4 bits
  uint8_t qh[kQKK / 4];  // high 2 bits
  int8_t scales[kQKK / 16];
  uint16_t d;            // last, unlike the other formats
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K super-block.
// ref: ggml/src/ggml-quants.c get_scale_min_k4
inline void Q4KScaleMin(int j, const uint8_t* scales, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Converts `count` values of `type` at `src` (any alignment) to float32. For
// block types, count must be a multiple of the block size. I32 is not a float
// format and aborts.
void DequantizeRow(DType type, const void* src, float* dst, size_t count);

// Converts `count` floats into `type` (f32, f16, bf16, q8_0, q4_0, q5_0).
// Returns false for a type we cannot produce. The block quantizers follow
// ggml's quantize_row_*_ref, so files we write are byte-identical to
// llama-quantize's output for those types (without an importance matrix).
// Non-finite inputs give unspecified but in-range codes (ggml's would be UB).
bool QuantizeRow(DType type, const float* src, void* dst, size_t count);

// Reference dot product of one stored weight row with float activations:
// dequantizes block by block and accumulates in double. Slow; for tests.
float DotRow(DType type, const void* w_row, const float* x, size_t count);

// Activations quantized for the integer matmul kernels (backend/cpu): per 32
// values an f32 scale d = max|x| / 127 and int8 codes q = round(x * 127 / max|x|)
// in [-127, 127], rounded to nearest even. This is ggml's Q8_0 activation format
// (quantize_row_q8_0, whose SIMD path also rounds to even) except that the scale
// stays f32 instead of being rounded to f16: the same approximation llama.cpp
// makes for Q8_0/Q4_0/Q5_0 weights, slightly finer than its per-256 Q8_K for
// K-quants. count must be a multiple of 32; writes count codes and count / 32
// scales. A block holding a NaN or inf gives unspecified codes (no UB).
void QuantizeActivationsQ8(const float* x, size_t count, int8_t* qs, float* scales);

// Reference for the integer kernels: the dot product of a stored weight row with
// activations quantized as above, sum_i w_i * (qs_i * scales[i / 32]),
// accumulated in double. Weights dequantize exactly as DequantizeRow does.
float DotRowQ8Activations(DType type, const void* w_row, const int8_t* qs, const float* scales,
                          size_t count);

}  // namespace gemmarun
