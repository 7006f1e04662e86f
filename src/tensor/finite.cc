#include "tensor/finite.h"

#include <cstdint>
#include <cstring>

#include "tensor/quant.h"

namespace gemmarun {
namespace {

// Chunks of 4096 values are OR-reduced without a branch (the compiler vectorises
// the inner loop); only a chunk that holds a bad value is searched element by element.
template <typename Bits>
std::optional<size_t> FindAllOnesExponent(const Bits* values, size_t count, Bits exponent_mask) {
  constexpr size_t kChunk = 4096;
  for (size_t begin = 0; begin < count; begin += kChunk) {
    const size_t end = begin + kChunk < count ? begin + kChunk : count;
    Bits bad = 0;
    for (size_t i = begin; i < end; ++i) bad |= static_cast<Bits>((values[i] & exponent_mask) == exponent_mask);
    if (bad == 0) continue;
    for (size_t i = begin; i < end; ++i) {
      if ((values[i] & exponent_mask) == exponent_mask) return i;
    }
  }
  return std::nullopt;
}

bool F16NonFinite(uint16_t half) { return (half & 0x7C00u) == 0x7C00u; }

// The first block for which `bad` (a test of its f16 scales) holds.
template <typename Block, typename ScalesNonFinite>
std::optional<size_t> FindBadBlock(const void* data, size_t bytes, size_t block_elements, ScalesNonFinite bad) {
  const size_t blocks = bytes / sizeof(Block);
  const auto* base = static_cast<const uint8_t*>(data);
  for (size_t b = 0; b < blocks; ++b) {
    Block block;
    std::memcpy(&block, base + b * sizeof(Block), sizeof(Block));  // file data may be unaligned
    if (bad(block)) return b * block_elements;
  }
  return std::nullopt;
}

}  // namespace

std::optional<size_t> FindNonFinite(DType dtype, const void* data, size_t bytes) {
  switch (dtype) {
    case DType::kF32: {
      // Copied in chunks rather than cast: GGUF tensor data is only 32-byte aligned
      // by convention and a corrupt file may break it.
      constexpr size_t kChunk = 4096;
      uint32_t words[kChunk];
      const size_t count = bytes / 4;
      for (size_t begin = 0; begin < count; begin += kChunk) {
        const size_t n = count - begin < kChunk ? count - begin : kChunk;
        std::memcpy(words, static_cast<const uint8_t*>(data) + begin * 4, n * 4);
        if (auto at = FindAllOnesExponent<uint32_t>(words, n, 0x7F800000u)) return begin + *at;
      }
      return std::nullopt;
    }
    case DType::kF16:
    case DType::kBF16: {
      constexpr size_t kChunk = 8192;
      uint16_t halves[kChunk];
      const uint16_t mask = dtype == DType::kF16 ? 0x7C00u : 0x7F80u;
      const size_t count = bytes / 2;
      for (size_t begin = 0; begin < count; begin += kChunk) {
        const size_t n = count - begin < kChunk ? count - begin : kChunk;
        std::memcpy(halves, static_cast<const uint8_t*>(data) + begin * 2, n * 2);
        if (auto at = FindAllOnesExponent<uint16_t>(halves, n, mask)) return begin + *at;
      }
      return std::nullopt;
    }
    case DType::kI32:
      return std::nullopt;
    case DType::kQ8_0:
      return FindBadBlock<BlockQ8_0>(data, bytes, 32, [](const BlockQ8_0& b) { return F16NonFinite(b.d); });
    case DType::kQ4_0:
      return FindBadBlock<BlockQ4_0>(data, bytes, 32, [](const BlockQ4_0& b) { return F16NonFinite(b.d); });
    case DType::kQ5_0:
      return FindBadBlock<BlockQ5_0>(data, bytes, 32, [](const BlockQ5_0& b) { return F16NonFinite(b.d); });
    case DType::kQ4_K:
      return FindBadBlock<BlockQ4_K>(data, bytes, kQKK,
                                     [](const BlockQ4_K& b) { return F16NonFinite(b.d) || F16NonFinite(b.dmin); });
    case DType::kQ6_K:
      return FindBadBlock<BlockQ6_K>(data, bytes, kQKK, [](const BlockQ6_K& b) { return F16NonFinite(b.d); });
  }
  return std::nullopt;
}

}  // namespace gemmarun
