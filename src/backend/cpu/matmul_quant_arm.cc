// NEON int8 dot-product kernels (ARMv8.2 sdot) for Q8_0 and Q4_0 weights
// against the int8 activations of QuantizedActivations; the other formats take
// the portable kernel. Compiled with the dotprod target attribute and chosen
// at run time (HWCAP_ASIMDDP, cpu_target.h), so the binary still runs on
// ARMv8.0 cores.
//
// Per row and token, four blocks at a time: each block's 32 byte products are
// two sdot (16 each, signed x signed, so Q4_0 is unpacked to q - 8 and needs
// no offset correction), two pairwise adds leave the 4 blocks' integer sums in
// one vector, and one FMA applies the 4 blocks' weight x activation scales.
// A tile's rows are swept one at a time against every token of the tile, so a
// row (a few KiB) stays in L1 while the tokens pass over it.
#include "backend/cpu/matmul_quant.h"

#include "base/check.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#include <arm_neon.h>

#include <cstring>

#include "tensor/quant.h"

namespace gemmarun::cpu {
namespace {

// The spelling arm_neon.h guards its dot-product intrinsics with (GCC 12).
#define GR_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

constexpr size_t kRows = 8;  // QuantTileRows(kNeonDot): the scratch stride

inline float HalfToFloat(const uint8_t* p) {
  __fp16 h;
  std::memcpy(&h, p, sizeof(h));
  return static_cast<float>(h);
}

// The 32 weights of one block as signed bytes: lo = weights 0-15, hi = 16-31.
struct Q8_0Weights {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static inline void Load(const uint8_t* block, int8x16_t* lo, int8x16_t* hi) {
    *lo = vld1q_s8(reinterpret_cast<const int8_t*>(block + 2));
    *hi = vld1q_s8(reinterpret_cast<const int8_t*>(block + 18));
  }
};
struct Q4_0Weights {
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0);
  static inline void Load(const uint8_t* block, int8x16_t* lo, int8x16_t* hi) {
    const uint8x16_t v = vld1q_u8(block + 2);
    const int8x16_t eight = vdupq_n_s8(8);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), eight);
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
  }
};

template <class W>
GR_DOTPROD inline int32x4_t BlockDot(const uint8_t* block, const int8_t* x) {
  int8x16_t lo, hi;
  W::Load(block, &lo, &hi);
  return vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(x)), hi, vld1q_s8(x + 16));
}

// Sum over blocks [begin, end) of one row times one token's activations.
template <class W>
GR_DOTPROD float RowDot(const uint8_t* row, const QuantizedActivations& acts, size_t token, size_t begin,
                        size_t end) {
  const int8_t* x = acts.qs(token);
  const float* xs = acts.scales(token);
  float32x4_t acc = vdupq_n_f32(0.0f);
  size_t b = begin;
  for (; b + 4 <= end; b += 4) {
    const uint8_t* block = row + b * W::kBlockBytes;
    const int32x4_t s0 = BlockDot<W>(block, x + 32 * b);
    const int32x4_t s1 = BlockDot<W>(block + W::kBlockBytes, x + 32 * (b + 1));
    const int32x4_t s2 = BlockDot<W>(block + 2 * W::kBlockBytes, x + 32 * (b + 2));
    const int32x4_t s3 = BlockDot<W>(block + 3 * W::kBlockBytes, x + 32 * (b + 3));
    const int32x4_t sums = vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));  // block b + j in lane j
    const float ws[4] = {HalfToFloat(block), HalfToFloat(block + W::kBlockBytes),
                         HalfToFloat(block + 2 * W::kBlockBytes), HalfToFloat(block + 3 * W::kBlockBytes)};
    const float32x4_t scales = vmulq_f32(vld1q_f32(ws), vld1q_f32(xs + b));
    acc = vfmaq_f32(acc, vcvtq_f32_s32(sums), scales);
  }
  float sum = vaddvq_f32(acc);
  for (; b < end; ++b) {
    const uint8_t* block = row + b * W::kBlockBytes;
    sum += static_cast<float>(vaddvq_s32(BlockDot<W>(block, x + 32 * b))) * (HalfToFloat(block) * xs[b]);
  }
  return sum;
}

template <class W>
void Tile(const QuantTile& tile, float* scratch) {
  const size_t begin = tile.k_begin / 32, end = tile.k_end / 32;
  for (size_t r = 0; r < tile.rows; ++r) {
    const uint8_t* row = tile.w + (tile.row_begin + r) * tile.w_row_bytes;
    for (size_t t = 0; t < tile.num_tokens; ++t) {
      scratch[t * kRows + r] = RowDot<W>(row, *tile.acts, tile.token_begin + t, begin, end);
    }
  }
  StoreTile(tile, scratch, kRows);
}

}  // namespace

void QuantTileNeonDot(const QuantTile& tile, float* scratch) {
  if (tile.k_end - tile.k_begin > kQuantKChunk) {
    return ForEachKChunk(tile, [&](const QuantTile& piece) { QuantTileNeonDot(piece, scratch); });
  }
  switch (tile.type) {
    case DType::kQ8_0: return Tile<Q8_0Weights>(tile, scratch);
    case DType::kQ4_0: return Tile<Q4_0Weights>(tile, scratch);
    default: return QuantTilePortable(tile, scratch);
  }
}

}  // namespace gemmarun::cpu

#else  // not aarch64: SupportedQuantPaths() never offers it.

namespace gemmarun::cpu {
void QuantTileNeonDot(const QuantTile&, float*) { GR_CHECK(false) << "NEON dot-product kernels on a non-ARM build"; }
}  // namespace gemmarun::cpu

#endif
