// FindNonFinite: the first NaN/inf of plain float tensors, the first block whose
// f16 scale is NaN/inf for the quantized formats, from unaligned file bytes;
// large finite values, subnormals and extreme integer codes are not flagged.
#include "tensor/finite.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/quant.h"

namespace gemmarun {
namespace {

constexpr uint16_t kF16Inf = 0x7C00, kF16NaN = 0x7E00, kF16Max = 0x7BFF;

// The bytes at an odd address, as a corrupt GGUF may place them.
template <typename T>
std::vector<uint8_t> Unaligned(const std::vector<T>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T) + 1);
  std::memcpy(bytes.data() + 1, values.data(), values.size() * sizeof(T));
  return bytes;
}

TEST(FiniteTest, F32FindsTheFirstNanOrInfAcrossChunks) {
  std::vector<float> values(10000, 3.0e38f);
  values[17] = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(FindNonFinite(DType::kF32, values.data(), values.size() * 4), std::nullopt);
  for (size_t at : {size_t{0}, size_t{4095}, size_t{4096}, size_t{9999}}) {
    for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
      std::vector<float> copy = values;
      copy[at] = bad;
      copy[9999] = at == 9999 ? bad : -INFINITY;  // a later one must not win
      const auto bytes = Unaligned(copy);
      EXPECT_EQ(FindNonFinite(DType::kF32, bytes.data() + 1, copy.size() * 4), at) << at;
    }
  }
}

TEST(FiniteTest, HalfTypesUseTheirOwnExponent) {
  std::vector<uint16_t> f16(9000, kF16Max);
  EXPECT_EQ(FindNonFinite(DType::kF16, f16.data(), f16.size() * 2), std::nullopt);
  f16[8500] = kF16Inf;
  EXPECT_EQ(FindNonFinite(DType::kF16, f16.data(), f16.size() * 2), 8500u);
  // 0x7C00 is a finite bf16 (2^121); 0x7F80 is bf16 inf.
  std::vector<uint16_t> bf16(100, 0x7C00);
  EXPECT_EQ(FindNonFinite(DType::kBF16, bf16.data(), bf16.size() * 2), std::nullopt);
  bf16[42] = 0xFFC1;  // a negative NaN
  const auto bytes = Unaligned(bf16);
  EXPECT_EQ(FindNonFinite(DType::kBF16, bytes.data() + 1, bf16.size() * 2), 42u);
}

template <typename Block>
std::vector<Block> Blocks(size_t n) {
  std::vector<Block> blocks(n);
  std::memset(blocks.data(), 0xFF, n * sizeof(Block));  // every integer code at its extreme
  for (Block& b : blocks) b.d = kF16Max;
  return blocks;
}

TEST(FiniteTest, QuantizedFormatsCheckTheirScales) {
  auto q8 = Blocks<BlockQ8_0>(5);
  EXPECT_EQ(FindNonFinite(DType::kQ8_0, q8.data(), q8.size() * sizeof(BlockQ8_0)), std::nullopt);
  q8[3].d = kF16NaN;
  const auto q8_bytes = Unaligned(q8);
  EXPECT_EQ(FindNonFinite(DType::kQ8_0, q8_bytes.data() + 1, q8.size() * sizeof(BlockQ8_0)), 3u * 32);

  auto q4 = Blocks<BlockQ4_0>(4);
  q4[1].d = kF16Inf;
  EXPECT_EQ(FindNonFinite(DType::kQ4_0, q4.data(), q4.size() * sizeof(BlockQ4_0)), 32u);
  auto q5 = Blocks<BlockQ5_0>(4);
  q5[2].d = kF16Inf | 0x8000;
  EXPECT_EQ(FindNonFinite(DType::kQ5_0, q5.data(), q5.size() * sizeof(BlockQ5_0)), 64u);

  auto q4k = Blocks<BlockQ4_K>(3);
  for (BlockQ4_K& b : q4k) b.dmin = kF16Max;
  EXPECT_EQ(FindNonFinite(DType::kQ4_K, q4k.data(), q4k.size() * sizeof(BlockQ4_K)), std::nullopt);
  q4k[2].dmin = kF16NaN;  // the mins' scale counts too
  EXPECT_EQ(FindNonFinite(DType::kQ4_K, q4k.data(), q4k.size() * sizeof(BlockQ4_K)), 2u * kQKK);

  auto q6k = Blocks<BlockQ6_K>(2);
  EXPECT_EQ(FindNonFinite(DType::kQ6_K, q6k.data(), q6k.size() * sizeof(BlockQ6_K)), std::nullopt);
  q6k[1].d = kF16Inf;
  EXPECT_EQ(FindNonFinite(DType::kQ6_K, q6k.data(), q6k.size() * sizeof(BlockQ6_K)), 1u * kQKK);
}

}  // namespace
}  // namespace gemmarun
