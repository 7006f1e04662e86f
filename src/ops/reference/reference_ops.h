// Straightforward scalar versions of every op, accumulating in double. Tests
// compare each backend kernel against these; nothing in the engine calls them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ops/backend.h"

namespace gemmarun::reference {

// w is dequantized row by row, so this checks every weight dtype.
std::vector<float> MatMul(const TensorView& x, const TensorView& w, const TensorView& bias);
std::vector<float> RmsNorm(const TensorView& x, const TensorView& weight, float eps);
std::vector<float> LayerNorm(const TensorView& x, const TensorView& weight, const TensorView& bias, float eps);
std::vector<float> Rope(const TensorView& x, std::span<const float> positions, int rotary_dim,
                        float theta, float position_scale);
// The cache is dequantized row by row (any cache dtype); returns out [num_tokens, heads, head_dim].
std::vector<float> Attention(const AttentionArgs& args);
// Stores k/v rows into their slots with QuantizeRow (round to nearest even; ggml's q8_0).
void WriteKv(const TensorView& k, const TensorView& v, std::span<const int64_t> slots, const KvCacheView& cache);
std::vector<float> GeluMul(std::span<const float> gate, std::span<const float> up);
std::vector<float> SoftCap(std::span<const float> x, float cap);

// Griffin ops (Backend documents the math). `state` is read and updated in place, as
// the backend's state tensor is; x etc. are [num_tokens, channels].
std::vector<float> CausalConv1D(const TensorView& x, const TensorView& weight, const TensorView& bias,
                                std::vector<float>& state);
std::vector<float> BlockDiagonalMatMul(const TensorView& x, const TensorView& w, const TensorView& bias);
std::vector<float> RgLru(const TensorView& x, const TensorView& input_gate, const TensorView& recurrent_gate,
                         const TensorView& recurrent_param, int64_t first_index, std::vector<float>& state);

}  // namespace gemmarun::reference
