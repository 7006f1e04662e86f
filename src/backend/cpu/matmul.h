// The CPU MatMul: out[t, n] = sum_k x[t, k] * w[n, k] + bias[n] for every
// weight dtype, spread over the thread pool.
//
// Decode (one token) is bound by memory bandwidth: every weight is read once, so
// the threads split the rows of W into contiguous ranges that each streams, and
// the per-block work is kept small enough to run at the bandwidth. Prefill is
// bound by arithmetic: tokens are processed in blocks against tiles of rows, so
// a weight tile is unpacked once and reused by every token of the block, while
// the activations of the block stay in cache; K is cut into chunks when a block
// of activations would not fit in L2.
//
// Paths: f32 / bf16 / f16 weights -> matmul_float (Highway, exact w.r.t. f32
// activations); Q8_0 / Q4_0 / Q5_0 / Q4_K / Q6_K -> matmul_quant (activations
// quantized to int8 once per call, integer block dot products: AVX-512 VNNI,
// AVX2 or portable, chosen at run time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cpu/matmul_quant.h"
#include "ops/backend.h"
#include "tensor/tensor.h"

namespace gemmarun {
class ThreadPool;
}

namespace gemmarun::cpu {

// Buffers a backend keeps between calls (grown on demand, never per token).
struct MatMulWorkspace {
  explicit MatMulWorkspace(int num_threads) : tile_scratch_(num_threads) {}

  QuantizedActivations acts_;
  std::vector<float> packed_x_;   // PackActivations (matmul_panel.h)
  std::vector<float> rounded_x_;  // activations rounded to bf16, for kernels without bf16 products
  std::vector<std::vector<float>> tile_scratch_;  // per thread
};

// x [num_tokens, k] f32, w [n, k] any weight dtype, bias [n] f32 or empty, out [num_tokens, n] f32.
// Prefills of at least `tokens` tokens take the panel kernels
// (matmul_panel.h) where the CPU has them; 0 restores the default (16). Lets
// the golden tests, whose prompts are shorter, run the fixtures through them.
void SetPanelMinTokensForTest(size_t tokens);

// precision: see MatMulPrecision (ops/backend.h); only bf16 weights look at it.
void MatMul(ThreadPool& pool, MatMulWorkspace& workspace, const TensorView& x, const TensorView& w,
            const TensorView& bias, const TensorView& out, MatMulPrecision precision = MatMulPrecision::kF32);

}  // namespace gemmarun::cpu
