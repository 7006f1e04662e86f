// Row conversions between stored weight formats and float32. Dequantization
// reproduces ggml's dequantize_row_* exactly (ref: ggml/src/ggml-quants.c).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace gemmarun {

// Converts `count` values of `type` at `src` to float32. For block types,
// count must be a multiple of the block size.
void DequantizeRow(DType type, const void* src, float* dst, size_t count);

// Converts `count` floats into `type` (f32, f16, bf16, q8_0, q4_0). Returns
// false for a type we cannot produce. Quantizers follow ggml's reference
// quantize_row_*_ref so that files we write read back identically in llama.cpp.
bool QuantizeRow(DType type, const float* src, void* dst, size_t count);

}  // namespace gemmarun
