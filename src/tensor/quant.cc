#include "tensor/quant.h"

#include <cstring>

#include "base/check.h"

namespace gemmarun {

void DequantizeRow(DType type, const void* src, float* dst, size_t count) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = BF16ToF32(in[i]);
      return;
    }
    case DType::kF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = F16ToF32(in[i]);
      return;
    }
    default:
      GR_CHECK(false) << "DequantizeRow: " << Name(type) << " not implemented yet";
  }
}

bool QuantizeRow(DType type, const float* src, void* dst, size_t count) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return true;
    case DType::kBF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; ++i) out[i] = F32ToBF16(src[i]);
      return true;
    }
    case DType::kF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; ++i) out[i] = F32ToF16(src[i]);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace gemmarun
