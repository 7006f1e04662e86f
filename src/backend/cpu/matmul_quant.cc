// Run-time choice of the integer kernels, the quantized-activation buffers, and
// the portable kernel (any CPU; also the readable statement of what the SIMD
// copies in matmul_quant_x86-inl.h compute).
#include "backend/cpu/matmul_quant.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "backend/cpu/cpu_target.h"
#include "base/check.h"
#include "tensor/quant.h"

namespace gemmarun::cpu {
namespace {

// The best path the CPU runs within the pinned target (cpu_target.h).
QuantPath BestPath() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (Allows(CpuFeature::kAvx512Vnni) && Allows(CpuFeature::kAvx512Vbmi)) return QuantPath::kAvx512Vnni;
  if (Allows(CpuFeature::kAvx512Vnni)) return QuantPath::kAvx512VnniNoVbmi;
  if (Allows(CpuFeature::kAvx2)) return QuantPath::kAvx2;
#elif defined(__aarch64__)
  if (Allows(CpuFeature::kNeonDot)) return QuantPath::kNeonDot;
#endif
  return QuantPath::kPortable;
}

std::atomic<int> g_forced_path{-1};

// Up to 8 blocks (a group of 256 weights) of one row as signed integers:
// weight i of block j = scale[j] * sc16[2j + i/16] * q[32j + i] - min[j].
struct GroupInts {
  int8_t q[256];
  float scale[8];
  float min[8] = {};
  int32_t sc16[16];
};

float HalfAt(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return F16ToF32(bits);
}

// Blocks [8g, 8g + nb) of a stored row, in the layouts of tensor/quant.h. The
// loops have fixed trip counts so that the compiler vectorizes them.
void UnpackGroup(DType type, const uint8_t* row, size_t g, size_t nb, GroupInts* out) {
  std::fill(out->sc16, out->sc16 + 16, 1);
  switch (type) {
    case DType::kQ8_0:
      for (size_t j = 0; j < nb; ++j) {
        const uint8_t* block = row + (8 * g + j) * sizeof(BlockQ8_0);
        out->scale[j] = HalfAt(block);
        std::memcpy(out->q + 32 * j, block + 2, 32);
      }
      return;
    case DType::kQ4_0:
      for (size_t j = 0; j < nb; ++j) {
        const uint8_t* block = row + (8 * g + j) * sizeof(BlockQ4_0);
        out->scale[j] = HalfAt(block);
        for (int i = 0; i < 16; ++i) {
          out->q[32 * j + i] = static_cast<int8_t>((block[2 + i] & 0x0F) - 8);
          out->q[32 * j + 16 + i] = static_cast<int8_t>((block[2 + i] >> 4) - 8);
        }
      }
      return;
    case DType::kQ5_0:
      for (size_t j = 0; j < nb; ++j) {
        const uint8_t* block = row + (8 * g + j) * sizeof(BlockQ5_0);
        out->scale[j] = HalfAt(block);
        uint32_t high;
        std::memcpy(&high, block + 2, sizeof(high));
        for (int i = 0; i < 16; ++i) {
          out->q[32 * j + i] = static_cast<int8_t>(((block[6 + i] & 0x0F) | (((high >> i) & 1) << 4)) - 16);
          out->q[32 * j + 16 + i] = static_cast<int8_t>(((block[6 + i] >> 4) | (((high >> (i + 16)) & 1) << 4)) - 16);
        }
      }
      return;
    case DType::kQ4_K: {
      const uint8_t* block = row + g * sizeof(BlockQ4_K);
      const float d = HalfAt(block), dmin = HalfAt(block + 2);
      for (int j = 0; j < 8; ++j) {
        uint8_t scale, min;
        Q4KScaleMin(j, block + 4, &scale, &min);
        out->scale[j] = d * scale;
        out->min[j] = dmin * min;
      }
      const uint8_t* qs = block + 16;
      for (int c = 0; c < 4; ++c) {
        for (int i = 0; i < 32; ++i) {
          out->q[64 * c + i] = static_cast<int8_t>(qs[32 * c + i] & 0x0F);
          out->q[64 * c + 32 + i] = static_cast<int8_t>(qs[32 * c + i] >> 4);
        }
      }
      return;
    }
    case DType::kQ6_K: {
      const uint8_t* block = row + g * sizeof(BlockQ6_K);
      const float d = HalfAt(block + 208);
      for (int j = 0; j < 8; ++j) out->scale[j] = d;
      for (int i = 0; i < 16; ++i) out->sc16[i] = static_cast<int8_t>(block[192 + i]);
      for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = block + 64 * half;
        const uint8_t* qh = block + 128 + 32 * half;
        int8_t* q = out->q + 128 * half;
        for (int l = 0; l < 32; ++l) {
          q[l] = static_cast<int8_t>(((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32);
          q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
          q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
      return;
    }
    default: GR_CHECK(false) << "integer matmul: " << Name(type);
  }
}

int32_t Dot16(const int8_t* a, const int8_t* b) {
  int32_t sum = 0;
  for (int i = 0; i < 16; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

const char* Name(QuantPath path) {
  switch (path) {
    case QuantPath::kPortable: return "portable";
    case QuantPath::kAvx2: return "avx2";
    case QuantPath::kAvx512VnniNoVbmi: return "avx512_vnni_no_vbmi";
    case QuantPath::kAvx512Vnni: return "avx512_vnni";
    case QuantPath::kNeonDot: return "neon_dot";
  }
  return "?";
}

std::vector<QuantPath> SupportedQuantPaths() {
  const QuantPath best = BestPath();
  std::vector<QuantPath> paths = {QuantPath::kPortable};
  if (best == QuantPath::kNeonDot) {
    paths.push_back(best);
    return paths;
  }
  // Each x86 path needs a subset of the features of the next.
  for (QuantPath path : {QuantPath::kAvx2, QuantPath::kAvx512VnniNoVbmi, QuantPath::kAvx512Vnni}) {
    if (static_cast<int>(path) <= static_cast<int>(best)) paths.push_back(path);
  }
  return paths;
}

QuantPath ActiveQuantPath() {
  const int forced = g_forced_path.load(std::memory_order_relaxed);
  return forced >= 0 ? static_cast<QuantPath>(forced) : BestPath();
}

void SetQuantPathForTest(QuantPath path) {
  const auto supported = SupportedQuantPaths();
  GR_CHECK(std::find(supported.begin(), supported.end(), path) != supported.end())
      << "quant path " << Name(path) << " is not supported on this CPU";
  g_forced_path.store(static_cast<int>(path));
}

void ResetQuantPath() { g_forced_path.store(-1); }

bool IsIntegerKernelType(DType type) {
  switch (type) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ4_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void QuantizedActivations::Resize(size_t num_tokens, size_t k) {
  GR_CHECK(k % 32 == 0) << "quantized activations: k = " << k;
  num_tokens_ = num_tokens;
  k_ = k;
  qs_stride_ = (k + 63) / 64 * 64;
  blocks_stride_ = k / 32;
  const size_t qs_bytes = 2 * num_tokens * qs_stride_ + 64;
  if (qs_storage_.size() < qs_bytes) qs_storage_.resize(qs_bytes);
  const auto base = reinterpret_cast<uintptr_t>(qs_storage_.data());
  qs_ = qs_storage_.data() + ((64 - base % 64) % 64);
  const size_t blocks = num_tokens * blocks_stride_;
  if (scales_.size() < blocks) {
    scales_.resize(blocks);
    scaled_sums_.resize(blocks);
    sums16_.resize(2 * blocks);
    neg_sums_.resize(blocks);
  }
}

void QuantizedActivations::QuantizeRow(size_t t, const float* x) {
  int8_t* q = qs_ + t * qs_stride_;
  QuantizeCodes(t, x);
  int8_t* quads = qs_ + (num_tokens_ + t) * qs_stride_;
  for (size_t i = 0; i + 128 <= k_; i += 128) {
    for (size_t block = 0; block < 4; ++block) {
      std::memcpy(quads + i + 16 * block, q + i + 32 * block, 16);
      std::memcpy(quads + i + 64 + 16 * block, q + i + 32 * block + 16, 16);
    }
  }
}

void QuantizedActivations::QuantizeCodes(size_t t, const float* x) {
  int8_t* q = qs_ + t * qs_stride_;
  float* scales = scales_.data() + t * blocks_stride_;
  float* scaled_sums = scaled_sums_.data() + t * blocks_stride_;
  int16_t* sums16 = sums16_.data() + t * 2 * blocks_stride_;
  int32_t* neg_sums = neg_sums_.data() + t * blocks_stride_;
  const QuantPath path = ActiveQuantPath();
  if (path != QuantPath::kPortable && path != QuantPath::kNeonDot) {
    QuantizeActivationsAvx2(x, k_, q, scales, scaled_sums, sums16, neg_sums);
    return;
  }
  QuantizeActivationsQ8(x, k_, q, scales);
  for (size_t h = 0; h < 2 * blocks(); ++h) {
    int sum = 0;
    for (size_t i = 0; i < 16; ++i) sum += q[16 * h + i];
    sums16[h] = static_cast<int16_t>(sum);
  }
  for (size_t b = 0; b < blocks(); ++b) {
    const int32_t sum = sums16[2 * b] + sums16[2 * b + 1];
    scaled_sums[b] = scales[b] * static_cast<float>(sum);
    neg_sums[b] = -sum;
  }
}

size_t QuantTileRows(QuantPath path) {
  return path == QuantPath::kAvx512Vnni || path == QuantPath::kAvx512VnniNoVbmi ? 16 : 8;
}

void QuantTilePortable(const QuantTile& tile, float* scratch) {
  if (tile.k_end - tile.k_begin > kQuantKChunk) {
    return ForEachKChunk(tile, [&](const QuantTile& piece) { QuantTilePortable(piece, scratch); });
  }
  constexpr size_t kRows = 8;
  const QuantizedActivations& acts = *tile.acts;
  std::fill(scratch, scratch + tile.num_tokens * kRows, 0.0f);
  GroupInts w;
  const size_t begin_block = tile.k_begin / 32, end_block = tile.k_end / 32;
  for (size_t r = 0; r < tile.rows; ++r) {
    const uint8_t* row = tile.w + (tile.row_begin + r) * tile.w_row_bytes;
    for (size_t block0 = begin_block; block0 < end_block; block0 += 8) {
      const size_t nb = std::min<size_t>(8, end_block - block0);
      UnpackGroup(tile.type, row, block0 / 8, nb, &w);
      for (size_t t = 0; t < tile.num_tokens; ++t) {
        const size_t token = tile.token_begin + t;
        const int8_t* x = acts.qs(token) + 32 * block0;
        float acc = 0.0f;
        for (size_t j = 0; j < nb; ++j) {
          const int32_t sum = w.sc16[2 * j] * Dot16(w.q + 32 * j, x + 32 * j) +
                              w.sc16[2 * j + 1] * Dot16(w.q + 32 * j + 16, x + 32 * j + 16);
          acc += static_cast<float>(sum) * acts.scales(token)[block0 + j] * w.scale[j];
          acc -= w.min[j] * acts.scaled_sums(token)[block0 + j];
        }
        scratch[t * kRows + r] += acc;
      }
    }
  }
  StoreTile(tile, scratch, kRows);
}

void StoreTile(const QuantTile& tile, const float* scratch, size_t stride) {
  for (size_t t = 0; t < tile.num_tokens; ++t) {
    float* out = tile.out + (tile.token_begin + t) * tile.out_stride + tile.row_begin;
    const float* sums = scratch + t * stride;
    if (tile.accumulate) {
      for (size_t r = 0; r < tile.rows; ++r) out[r] += sums[r];
    } else {
      for (size_t r = 0; r < tile.rows; ++r) out[r] = sums[r] + (tile.bias ? tile.bias[tile.row_begin + r] : 0.0f);
    }
  }
}

}  // namespace gemmarun::cpu
