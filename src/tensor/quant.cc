#include "tensor/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"

namespace gemmarun {
namespace {

// Blocks are copied out with memcpy: rows inside a file mapping carry no
// alignment guarantee, and the structs want 2 bytes.
template <class Block>
Block LoadBlock(const void* src, size_t index) {
  Block block;
  std::memcpy(&block, static_cast<const uint8_t*>(src) + index * sizeof(Block), sizeof(Block));
  return block;
}

template <class Block>
void StoreBlock(const Block& block, void* dst, size_t index) {
  std::memcpy(static_cast<uint8_t*>(dst) + index * sizeof(Block), &block, sizeof(Block));
}

// ref: ggml/src/ggml-quants.c dequantize_row_q8_0
void DequantizeQ8_0(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = LoadBlock<BlockQ8_0>(src, i);
    const float d = F16ToF32(block.d);
    for (size_t j = 0; j < kQK; ++j) dst[i * kQK + j] = block.qs[j] * d;
  }
}

// ref: ggml/src/ggml-quants.c dequantize_row_q4_0
void DequantizeQ4_0(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = LoadBlock<BlockQ4_0>(src, i);
    const float d = F16ToF32(block.d);
    for (size_t j = 0; j < kQK / 2; ++j) {
      const int x0 = (block.qs[j] & 0x0F) - 8;
      const int x1 = (block.qs[j] >> 4) - 8;
      dst[i * kQK + j] = x0 * d;
      dst[i * kQK + j + kQK / 2] = x1 * d;
    }
  }
}

// ref: ggml/src/ggml-quants.c dequantize_row_q5_0
void DequantizeQ5_0(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = LoadBlock<BlockQ5_0>(src, i);
    const float d = F16ToF32(block.d);
    uint32_t qh;
    std::memcpy(&qh, block.qh, sizeof(qh));
    for (size_t j = 0; j < kQK / 2; ++j) {
      const int high0 = ((qh >> j) << 4) & 0x10;
      const int high1 = (qh >> (j + 12)) & 0x10;  // bit j+16, moved to 0x10
      const int x0 = ((block.qs[j] & 0x0F) | high0) - 16;
      const int x1 = ((block.qs[j] >> 4) | high1) - 16;
      dst[i * kQK + j] = x0 * d;
      dst[i * kQK + j + kQK / 2] = x1 * d;
    }
  }
}

// ref: ggml/src/ggml-quants.c dequantize_row_q4_K. The products are ordered as
// there ((d * scale) * q - dmin * min) so the floats match exactly.
void DequantizeQ4_K(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = LoadBlock<BlockQ4_K>(src, i);
    const float d = F16ToF32(block.d);
    const float dmin = F16ToF32(block.dmin);
    float* y = dst + i * kQKK;
    const uint8_t* q = block.qs;
    for (int chunk = 0; chunk < 4; ++chunk) {  // 64 weights, two sub-blocks
      uint8_t scale, min;
      Q4KScaleMin(2 * chunk, block.scales, &scale, &min);
      const float d1 = d * scale, m1 = dmin * min;
      Q4KScaleMin(2 * chunk + 1, block.scales, &scale, &min);
      const float d2 = d * scale, m2 = dmin * min;
      for (int l = 0; l < 32; ++l) y[l] = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[32 + l] = d2 * (q[l] >> 4) - m2;
      y += 64;
      q += 32;
    }
  }
}

// ref: ggml/src/ggml-quants.c dequantize_row_q6_K
void DequantizeQ6_K(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = LoadBlock<BlockQ6_K>(src, i);
    const float d = F16ToF32(block.d);
    float* y = dst + i * kQKK;
    const uint8_t* ql = block.ql;
    const uint8_t* qh = block.qh;
    const int8_t* sc = block.scales;
    for (int half = 0; half < 2; ++half) {  // 128 weights each
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// Truncating float -> int as ggml's `(int8_t)(v)` does for the in-range values
// its quantizers produce, clamped to [0, max] so a NaN or inf input cannot make
// the cast undefined.
int TruncClamp(float v, int max) {
  if (!(v > 0.0f)) return 0;  // also NaN
  if (v >= static_cast<float>(max)) return max;
  return static_cast<int>(v);
}

// ref: ggml/src/ggml-quants.c quantize_row_q8_0_ref
void QuantizeQ8_0(const float* x, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i, x += kQK) {
    float amax = 0.0f;
    for (size_t j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 block;
    block.d = F32ToF16(d);
    for (size_t j = 0; j < kQK; ++j) {
      // roundf: halves away from zero (numpy's round would give even).
      const float v = std::round(x[j] * id);
      block.qs[j] = static_cast<int8_t>(std::isfinite(v) ? std::clamp(v, -127.0f, 127.0f) : 0.0f);
    }
    StoreBlock(block, dst, i);
  }
}

// The signed value of largest magnitude, first one on ties, as ggml's
// quantize_row_q4_0_ref / q5_0_ref pick it.
float SignedAbsMax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (size_t j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// ref: ggml/src/ggml-quants.c quantize_row_q4_0_ref. The scale maps the
// largest-magnitude weight to code 0 (-8), so it is stored exactly.
void QuantizeQ4_0(const float* x, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i, x += kQK) {
    const float d = SignedAbsMax(x) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 block;
    block.d = F32ToF16(d);
    for (size_t j = 0; j < kQK / 2; ++j) {
      const int q0 = TruncClamp(x[j] * id + 8.5f, 15);
      const int q1 = TruncClamp(x[j + kQK / 2] * id + 8.5f, 15);
      block.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    StoreBlock(block, dst, i);
  }
}

// ref: ggml/src/ggml-quants.c quantize_row_q5_0_ref
void QuantizeQ5_0(const float* x, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i, x += kQK) {
    const float d = SignedAbsMax(x) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_0 block;
    block.d = F32ToF16(d);
    uint32_t qh = 0;
    for (size_t j = 0; j < kQK / 2; ++j) {
      const uint32_t q0 = TruncClamp(x[j] * id + 16.5f, 31);
      const uint32_t q1 = TruncClamp(x[j + kQK / 2] * id + 16.5f, 31);
      block.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= ((q0 & 0x10u) >> 4) << j;
      qh |= ((q1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    std::memcpy(block.qh, &qh, sizeof(qh));
    StoreBlock(block, dst, i);
  }
}

size_t Blocks(DType type, size_t count) {
  const size_t block = Info(type).block_elements;
  GR_CHECK(count % block == 0) << Name(type) << ": " << count << " values is not a whole number of "
                               << block << "-value blocks";
  return count / block;
}

}  // namespace

void DequantizeRow(DType type, const void* src, float* dst, size_t count) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kBF16:
    case DType::kF16: {
      const auto* in = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, in + 2 * i, sizeof(bits));
        dst[i] = type == DType::kF16 ? F16ToF32(bits) : BF16ToF32(bits);
      }
      return;
    }
    case DType::kQ8_0: return DequantizeQ8_0(src, dst, Blocks(type, count));
    case DType::kQ4_0: return DequantizeQ4_0(src, dst, Blocks(type, count));
    case DType::kQ5_0: return DequantizeQ5_0(src, dst, Blocks(type, count));
    case DType::kQ4_K: return DequantizeQ4_K(src, dst, Blocks(type, count));
    case DType::kQ6_K: return DequantizeQ6_K(src, dst, Blocks(type, count));
    case DType::kI32: break;
  }
  GR_CHECK(false) << "DequantizeRow: " << Name(type) << " is not a float format";
}

bool QuantizeRow(DType type, const float* src, void* dst, size_t count) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return true;
    case DType::kBF16:
    case DType::kF16: {
      auto* out = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < count; ++i) {
        const uint16_t bits = type == DType::kF16 ? F32ToF16(src[i]) : F32ToBF16(src[i]);
        std::memcpy(out + 2 * i, &bits, sizeof(bits));
      }
      return true;
    }
    case DType::kQ8_0:
      QuantizeQ8_0(src, dst, Blocks(type, count));
      return true;
    case DType::kQ4_0:
      QuantizeQ4_0(src, dst, Blocks(type, count));
      return true;
    case DType::kQ5_0:
      QuantizeQ5_0(src, dst, Blocks(type, count));
      return true;
    case DType::kQ4_K:  // ggml's K-quant search (make_qkx2_quants) is not ported
    case DType::kQ6_K:
    case DType::kI32:
      return false;
  }
  return false;
}

float DotRow(DType type, const void* w_row, const float* x, size_t count) {
  // One K super-block at a time keeps the scratch on the stack; plain types
  // use the same chunk length.
  constexpr size_t kChunk = kQKK;
  const size_t block_elements = Info(type).block_elements;
  GR_CHECK(kChunk % block_elements == 0);
  Blocks(type, count);
  const auto* w = static_cast<const uint8_t*>(w_row);
  float scratch[kChunk];
  double sum = 0.0;
  for (size_t done = 0; done < count; done += kChunk) {
    const size_t n = std::min(kChunk, count - done);
    DequantizeRow(type, w + RowBytes(type, done), scratch, n);
    for (size_t j = 0; j < n; ++j) sum += static_cast<double>(scratch[j]) * x[done + j];
  }
  return static_cast<float>(sum);
}

void QuantizeActivationsQ8(const float* x, size_t count, int8_t* qs, float* scales) {
  GR_CHECK(count % kQK == 0) << "QuantizeActivationsQ8: " << count << " values";
  for (size_t b = 0; b < count / kQK; ++b) {
    const float* in = x + b * kQK;
    float amax = 0.0f;
    for (size_t j = 0; j < kQK; ++j) {
      const float a = std::fabs(in[j]);
      amax = a > amax ? a : amax;  // a NaN never wins
    }
    scales[b] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (size_t j = 0; j < kQK; ++j) {
      // Clamp first (fmax/fmin drop a NaN), then round to nearest even by adding
      // and subtracting 1.5 * 2^23: exact IEEE steps, so SIMD copies can match.
      const float v = std::fmin(std::fmax(in[j] * id, -127.0f), 127.0f);
      const float rounded = (v + 12582912.0f) - 12582912.0f;
      qs[b * kQK + j] = static_cast<int8_t>(rounded);
    }
  }
}

float DotRowQ8Activations(DType type, const void* w_row, const int8_t* qs, const float* scales,
                          size_t count) {
  constexpr size_t kChunk = kQKK;
  GR_CHECK(IsQuantized(type) && count % kQK == 0);
  Blocks(type, count);
  const auto* w = static_cast<const uint8_t*>(w_row);
  float scratch[kChunk];
  double sum = 0.0;
  for (size_t done = 0; done < count; done += kChunk) {
    const size_t n = std::min(kChunk, count - done);
    DequantizeRow(type, w + RowBytes(type, done), scratch, n);
    for (size_t j = 0; j < n; ++j) {
      const size_t i = done + j;
      sum += static_cast<double>(scratch[j]) * (static_cast<double>(qs[i]) * scales[i / kQK]);
    }
  }
  return static_cast<float>(sum);
}

}  // namespace gemmarun
