// Detects NaN and infinity in stored weights, cheaply enough to run on every
// tensor at load: one pass over the exponent bits of plain floats, and over the
// f16 scales only of block-quantized types (their integer codes are always finite).
#pragma once

#include <cstddef>
#include <optional>

#include "tensor/dtype.h"

namespace gemmarun {

// The index of the first non-finite value (for quantized types: the first weight
// of the block whose scale is NaN/inf), or nullopt when every value is finite.
// `bytes` must be whole elements (whole blocks).
std::optional<size_t> FindNonFinite(DType dtype, const void* data, size_t bytes);

}  // namespace gemmarun
