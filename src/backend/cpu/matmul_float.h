// Matmul for f32 / bf16 / f16 weights against f32 activations (Highway, every
// target, chosen at run time). Exact with respect to the stored weights: bf16
// and f16 are widened to f32 (bf16 by a 16-bit shift) and multiplied with FMA
// in f32, so only the f32 summation order differs from a scalar loop.
//
// We deliberately do not use AVX512_BF16's vdpbf16ps: it would round the f32
// activations to bf16 (8 bits of mantissa, ~2e-3 relative per product), far
// outside the golden tests' 1e-4 and a change in results, whereas the weights'
// rounding is the model's own. Splitting x into two bf16 halves restores the
// accuracy but costs two vdpbf16ps per 32 products: the same throughput as
// f32 FMA (both 16 products per cycle per core here), so there is nothing to win.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace gemmarun::cpu {

// out[t, n] (+)= sum_{k in [k_begin, k_end)} x[t, k] * w[n, k] for rows
// [row_begin, row_end) and tokens [token_begin, token_end). With accumulate the
// sum is added to out; otherwise out = sum + bias[n] (bias may be null).
struct FloatBlock {
  DType type;  // kF32, kBF16 or kF16
  const uint8_t* w;
  size_t w_row_bytes;
  const float* x;
  size_t x_stride;
  size_t k_begin, k_end;
  size_t row_begin, row_end;
  size_t token_begin, token_end;
  float* out;
  size_t out_stride;
  const float* bias;
  bool accumulate;
};

void FloatMatMulBlock(const FloatBlock& block);

}  // namespace gemmarun::cpu
