// Integer matmul kernels for block-quantized weights (Q8_0, Q4_0, Q5_0, Q4_K,
// Q6_K). Activations are quantized once per MatMul call into int8 blocks of 32
// (QuantizeActivationsQ8 in tensor/quant.h); each 32-block of a weight row is
// unpacked to bytes and multiplied with them in integers (vpdpbusd on AVX-512
// VNNI, maddubs + madd on AVX2, sdot on ARM, plain C++ elsewhere), and the float scales are
// applied once per block. Weights are never expanded to f32.
//
// Every path computes, per weight row and token, exactly
//   sum_b  ws_b * xs_b * (sum_{i in b} q_i * x_i  -  offset * sum_{i in b} x_i)  [- min terms]
// with the integer parts exact, so paths differ from each other and from
// DotRowQ8Activations only in f32 rounding of the scaled block sums.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"

namespace gemmarun::cpu {

// Implementations of the integer kernels; one is chosen at run time from CPUID.
enum class QuantPath : uint8_t {
  kPortable,    // plain C++, any CPU
  kAvx2,        // AVX2 + FMA + F16C: maddubs / madd
  kAvx512VnniNoVbmi,  // AVX-512 F/BW/DQ/VL + VNNI (Cascade Lake): vpdpbusd
  kAvx512Vnni,        // AVX-512 F/BW/DQ/VL + VNNI + VBMI: vpdpbusd, byte permutes
  kNeonDot,           // ARMv8.2 dot product (sdot) for Q8_0 / Q4_0, portable for the rest
};
const char* Name(QuantPath path);
// The paths this CPU can run, portable first.
std::vector<QuantPath> SupportedQuantPaths();
// The path MatMul uses: the best supported one, unless overridden.
QuantPath ActiveQuantPath();
// For tests and benchmarks: make MatMul use `path` (must be supported).
void SetQuantPathForTest(QuantPath path);
// Undoes SetQuantPathForTest.
void ResetQuantPath();

// num_tokens rows of k activations (k a multiple of 32) quantized per 32 values,
// with the block sums the kernels use for the weights' offsets and mins. Rows
// are padded to 64 bytes. Owns its memory; Resize() reuses it.
class QuantizedActivations {
 public:
  void Resize(size_t num_tokens, size_t k);
  // Quantizes row t from f32 (any alignment).
  void QuantizeRow(size_t t, const float* x);

  size_t num_tokens() const { return num_tokens_; }
  size_t k() const { return k_; }
  size_t blocks() const { return k_ / 32; }
  const int8_t* qs(size_t t) const { return qs_ + t * qs_stride_; }
  // The codes again in the order in which 4-bit weights unpack: per 4 blocks
  // (128 bytes), codes 0-15 of each block, then codes 16-31 of each. 64 bytes
  // of nibbles from 4 blocks, masked and shifted, line up with the two halves;
  // 32 bytes from 2 blocks line up with a quarter. Trailing blocks that do not
  // fill 4 are left out.
  const int8_t* qs_quads(size_t t) const { return qs_ + (num_tokens_ + t) * qs_stride_; }
  const float* scales(size_t t) const { return scales_.data() + t * blocks_stride_; }
  // scale * (sum of the 32 codes), per block.
  const float* scaled_sums(size_t t) const { return scaled_sums_.data() + t * blocks_stride_; }
  // Sum of each 16 codes (Q6_K's sub-blocks), two per block.
  const int16_t* sums16(size_t t) const { return sums16_.data() + t * 2 * blocks_stride_; }
  // Minus the sum of each block's 32 codes (weights stored with an offset o
  // start their integer sums from o * this).
  const int32_t* neg_sums(size_t t) const { return neg_sums_.data() + t * blocks_stride_; }

 private:
  void QuantizeCodes(size_t t, const float* x);

  size_t num_tokens_ = 0, k_ = 0, qs_stride_ = 0, blocks_stride_ = 0;
  std::vector<int8_t> qs_storage_;
  int8_t* qs_ = nullptr;  // qs_storage_ rounded up to 64 bytes: qs rows, then qs_quads rows
  std::vector<float> scales_, scaled_sums_;
  std::vector<int16_t> sums16_;
  std::vector<int32_t> neg_sums_;
};

// One tile of the product: rows [row_begin, row_begin + rows) of W (rows <=
// QuantTileRows(path))
// times tokens [token_begin, token_begin + num_tokens) of the activations, over
// weights [k_begin, k_end) of each row (k_begin a multiple of 256). With
// accumulate the sums are added to out, otherwise out = sum + bias.
//
// Batch invariance: a token's outputs must not depend on how many tokens share
// the call (a sequence decoded in a batch gives the text it gives alone). So K
// is always cut into pieces of kQuantKChunk weights whose sums are added to out
// in order (first = sum + bias, then out + sum), and every kernel computes a
// (row, token) sum with the same operations in the same order whatever
// num_tokens is. A tile may span more than one piece (MatMul hands one token
// the whole of K, so that each row is one stream); the kernel then adds the
// pieces itself exactly as separate calls would.
constexpr size_t kQuantKChunk = 1024;
struct QuantTile {
  DType type;
  const uint8_t* w;      // row 0 of W
  size_t w_row_bytes;
  size_t k_begin, k_end;
  size_t row_begin, rows;
  const QuantizedActivations* acts;
  size_t token_begin, num_tokens;
  float* out;            // out[t * out_stride + n] for token t, row n (absolute indices)
  size_t out_stride;
  const float* bias;     // [N] or null
  bool accumulate;
  // Rows of W right after this tile that the same thread is likely to take next
  // (kernels may prefetch their weights); 0 when there are none.
  size_t next_rows = 0;
};
// Rows per tile: 16 on AVX-512 VNNI (a 512-bit vector of int32), else 8.
size_t QuantTileRows(QuantPath path);
constexpr size_t kMaxQuantTileRows = 16;

// Per path; `scratch` must hold num_tokens * kQuantScratchPerToken floats
// (8 partial sums per row, one per block position of a group).
constexpr size_t kQuantScratchPerToken = 8 * kMaxQuantTileRows;
void QuantTilePortable(const QuantTile& tile, float* scratch);
void QuantTileAvx2(const QuantTile& tile, float* scratch);
void QuantTileAvx512Vnni(const QuantTile& tile, float* scratch);
void QuantTileAvx512VnniNoVbmi(const QuantTile& tile, float* scratch);
void QuantTileNeonDot(const QuantTile& tile, float* scratch);

// QuantizedActivations::QuantizeRow's SIMD body (any path but portable):
// bit-identical to QuantizeActivationsQ8 plus the sums.
void QuantizeActivationsAvx2(const float* x, size_t k, int8_t* qs, float* scales, float* scaled_sums,
                             int16_t* sums16, int32_t* neg_sums);

// Writes a tile's sums (scratch[t * stride + r]) to out, as QuantTile describes.
void StoreTile(const QuantTile& tile, const float* scratch, size_t stride);

// Calls kernel(piece) for the pieces of tile's K range cut at multiples of
// kQuantKChunk: the first as tile says, the rest accumulating.
template <class Kernel>
void ForEachKChunk(const QuantTile& tile, Kernel&& kernel) {
  QuantTile piece = tile;
  for (size_t begin = tile.k_begin; begin < tile.k_end; begin = piece.k_end) {
    piece.k_begin = begin;
    piece.k_end = std::min(tile.k_end, (begin / kQuantKChunk + 1) * kQuantKChunk);
    piece.accumulate = tile.accumulate || begin > tile.k_begin;
    kernel(piece);
  }
}

// True for the weight types these kernels take.
bool IsIntegerKernelType(DType type);

}  // namespace gemmarun::cpu
