// Row kernels of Griffin's (RecurrentGemma's) temporal block, compiled for every
// Highway target and chosen at run time like kernels.h. The backend splits the
// channels (or heads and columns) over its threads and calls these per range.
#pragma once

#include <cstddef>

namespace gemmarun::cpu {

// x = gelu_tanh(x) in place.
void GeluRow(float* x, size_t n);
// out = a * b (out may alias either).
void MulRow(const float* a, const float* b, float* out, size_t n);

// One output row of the depthwise causal convolution over `width` taps:
// out[c] = bias[c] + sum_k taps[k * tap_stride + c] * inputs[k][c] for c < n
// (taps transposed to [width][channels]; inputs[k] is the row of tap k).
void CausalConvRow(const float* const* inputs, const float* taps, size_t tap_stride, size_t width,
                   const float* bias, float* out, size_t n);

// softplus(z) = log(1 + e^z), with torch's linear threshold at 20.
void SoftplusRow(const float* z, float* out, size_t n);
// One time step of the RG-LRU for n channels (Backend::RgLru has the math);
// softplus = SoftplusRow(recurrent_param); h is read and updated; out may alias x.
void RgLruRow(const float* x, const float* input_gate, const float* recurrent_gate, const float* softplus,
              bool reset, float* h, float* out, size_t n);

// Columns [col_begin, col_end) of one head of the block-diagonal product for
// `tokens` rows: out[t * out_stride + j] = bias[j] + sum_i x[t * x_stride + i] * w[i * block + j],
// w a head's [block (in), block (out)] matrix. The [in, out] layout is already
// what an outer-product GEMM wants (a row of w is contiguous over the outputs),
// so tokens x columns of sums stay in registers while i sweeps the block.
void BlockDiagonalTile(const float* x, size_t x_stride, const float* w, size_t block, const float* bias,
                       size_t tokens, size_t col_begin, size_t col_end, float* out, size_t out_stride);

}  // namespace gemmarun::cpu
