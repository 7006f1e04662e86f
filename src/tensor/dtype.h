// Element types of weights and activations, including ggml's block-quantized
// formats (a row of a quantized tensor is a whole number of blocks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace gemmarun {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kI32,
  kQ8_0,  // 32 weights: f16 scale + 32 x int8 (34 bytes)
  kQ4_0,  // 32 weights: f16 scale + 16 bytes of nibbles (18 bytes)
  kQ4_K,  // 256 weights: super-block with 6-bit sub-scales (144 bytes)
  kQ6_K,  // 256 weights: 6-bit quants, int8 sub-scales (210 bytes)
  kQ5_0,  // 32 weights: f16 scale + 32 high bits + 16 bytes of nibbles (22 bytes)
};

struct DTypeInfo {
  const char* name;
  size_t block_elements;  // 1 for plain types
  size_t block_bytes;     // bytes of one block
};

const DTypeInfo& Info(DType type);
inline const char* Name(DType type) { return Info(type).name; }
inline bool IsQuantized(DType type) { return Info(type).block_elements > 1; }
// Bytes of `elements` values; elements must be a multiple of the block size.
inline size_t RowBytes(DType type, size_t elements) {
  const DTypeInfo& info = Info(type);
  return elements / info.block_elements * info.block_bytes;
}
// Parses "f32", "bf16", "q8_0", ... (case-insensitive); false if unknown.
bool ParseDType(std::string_view name, DType* out);

// bfloat16 / IEEE half conversions. F32ToBF16 rounds to nearest even, as
// PyTorch's .to(torch.bfloat16) does; NaN stays NaN.
inline float BF16ToF32(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof(value));
  return value;
}
inline uint16_t F32ToBF16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof(word));
  if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((word >> 16) | 0x40);
  const uint32_t rounding = 0x7fffu + ((word >> 16) & 1u);
  return static_cast<uint16_t>((word + rounding) >> 16);
}
float F16ToF32(uint16_t bits);
uint16_t F32ToF16(float value);

// Rounds a float to the precision of `type` (f32 unchanged), as a cast there and back.
float RoundTo(DType type, float value);

}  // namespace gemmarun
