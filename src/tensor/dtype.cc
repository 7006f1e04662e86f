#include "tensor/dtype.h"

#include <cctype>
#include <cmath>

#include "base/check.h"

namespace gemmarun {

const DTypeInfo& Info(DType type) {
  static const DTypeInfo kInfos[] = {
      {"f32", 1, 4},    {"f16", 1, 2},    {"bf16", 1, 2},    {"i32", 1, 4},
      {"q8_0", 32, 34}, {"q4_0", 32, 18}, {"q4_k", 256, 144}, {"q6_k", 256, 210},
      {"q5_0", 32, 22},
  };
  const size_t index = static_cast<size_t>(type);
  GR_CHECK(index < sizeof(kInfos) / sizeof(kInfos[0]));
  return kInfos[index];
}

bool ParseDType(std::string_view name, DType* out) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kQ8_0,
                     DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_0}) {
    if (lower == Info(type).name) {
      *out = type;
      return true;
    }
  }
  return false;
}

float F16ToF32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  uint32_t word;
  if (exponent == 0) {
    if (mantissa == 0) {
      word = sign;
    } else {  // subnormal: value = mantissa * 2^-24
      const float value = std::ldexp(static_cast<float>(mantissa), -24);
      return sign ? -value : value;
    }
  } else if (exponent == 31) {
    word = sign | 0x7f800000u | (mantissa << 13);
  } else {
    word = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &word, sizeof(value));
  return value;
}

uint16_t F32ToF16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof(word));
  const uint16_t sign = static_cast<uint16_t>((word >> 16) & 0x8000u);
  const uint32_t abs_word = word & 0x7fffffffu;
  if (abs_word > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs_word >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: inf
  if (abs_word < 0x38800000u) {                        // below the smallest normal half
    float abs_value;
    std::memcpy(&abs_value, &abs_word, sizeof(abs_value));
    // Subnormal half: multiples of 2^-24, rounded to nearest even by nearbyint.
    return sign | static_cast<uint16_t>(std::nearbyint(abs_value * 16777216.0f));
  }
  const uint32_t rounding = 0xfffu + ((abs_word >> 13) & 1u);
  return sign | static_cast<uint16_t>((abs_word + rounding - 0x38000000u) >> 13);
}

float RoundTo(DType type, float value) {
  switch (type) {
    case DType::kBF16: return BF16ToF32(F32ToBF16(value));
    case DType::kF16: return F16ToF32(F32ToF16(value));
    default: return value;
  }
}

}  // namespace gemmarun
