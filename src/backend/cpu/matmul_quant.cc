// Run-time choice of the integer kernels, the quantized-activation buffers, and
// the portable kernel (any CPU; also the readable statement of what the SIMD
// copies in matmul_quant_x86-inl.h compute).
#include "backend/cpu/matmul_quant.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "base/check.h"
#include "tensor/quant.h"

namespace gemmarun::cpu {
namespace {

QuantPath DetectBestPath() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool vnni = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512vnni");
  if (vnni) return QuantPath::kAvx512Vnni;
  if (avx2) return QuantPath::kAvx2;
#endif
  return QuantPath::kPortable;
}

const QuantPath kBestPath = DetectBestPath();
std::atomic<int> g_forced_path{-1};

// One block of 32 weights as signed integers: weight i = scale * sc16[i / 16] * q[i] - min.
struct BlockInts {
  int8_t q[32];
  int32_t sc16[2] = {1, 1};  // Q6_K's integer sub-block scales
  float scale = 0.0f;
  float min = 0.0f;  // Q4_K: dmin * min
};

template <class Block>
Block LoadBlock(const uint8_t* p) {
  Block block;
  std::memcpy(&block, p, sizeof(block));
  return block;
}

// Block b (of 32 weights) of a stored row, in the layouts of tensor/quant.h.
void UnpackBlock(DType type, const uint8_t* row, size_t b, BlockInts* out) {
  switch (type) {
    case DType::kQ8_0: {
      const auto block = LoadBlock<BlockQ8_0>(row + b * sizeof(BlockQ8_0));
      out->scale = F16ToF32(block.d);
      std::memcpy(out->q, block.qs, 32);
      return;
    }
    case DType::kQ4_0: {
      const auto block = LoadBlock<BlockQ4_0>(row + b * sizeof(BlockQ4_0));
      out->scale = F16ToF32(block.d);
      for (int i = 0; i < 16; ++i) {
        out->q[i] = static_cast<int8_t>((block.qs[i] & 0x0F) - 8);
        out->q[i + 16] = static_cast<int8_t>((block.qs[i] >> 4) - 8);
      }
      return;
    }
    case DType::kQ5_0: {
      const auto block = LoadBlock<BlockQ5_0>(row + b * sizeof(BlockQ5_0));
      out->scale = F16ToF32(block.d);
      uint32_t high;
      std::memcpy(&high, block.qh, sizeof(high));
      for (int i = 0; i < 16; ++i) {
        out->q[i] = static_cast<int8_t>(((block.qs[i] & 0x0F) | (((high >> i) & 1) << 4)) - 16);
        out->q[i + 16] = static_cast<int8_t>(((block.qs[i] >> 4) | (((high >> (i + 16)) & 1) << 4)) - 16);
      }
      return;
    }
    case DType::kQ4_K: {
      const auto block = LoadBlock<BlockQ4_K>(row + (b / 8) * sizeof(BlockQ4_K));
      const int j = static_cast<int>(b % 8);
      uint8_t scale, min;
      Q4KScaleMin(j, block.scales, &scale, &min);
      out->scale = F16ToF32(block.d) * scale;
      out->min = F16ToF32(block.dmin) * min;
      const uint8_t* qs = block.qs + 32 * (j / 2);
      for (int i = 0; i < 32; ++i) out->q[i] = static_cast<int8_t>(j % 2 ? qs[i] >> 4 : qs[i] & 0x0F);
      return;
    }
    case DType::kQ6_K: {
      const auto block = LoadBlock<BlockQ6_K>(row + (b / 8) * sizeof(BlockQ6_K));
      const int j = static_cast<int>(b % 8);
      const int half = j / 4, part = j % 4;
      const uint8_t* ql = block.ql + 64 * half + 32 * (part & 1);
      const uint8_t* qh = block.qh + 32 * half;
      for (int i = 0; i < 32; ++i) {
        const int low = (ql[i] >> (4 * (part >> 1))) & 0x0F;
        const int high = (qh[i] >> (2 * part)) & 3;
        out->q[i] = static_cast<int8_t>((low | (high << 4)) - 32);
      }
      out->scale = F16ToF32(block.d);
      out->sc16[0] = block.scales[2 * j];
      out->sc16[1] = block.scales[2 * j + 1];
      return;
    }
    default: GR_CHECK(false) << "integer matmul: " << Name(type);
  }
}

}  // namespace

const char* Name(QuantPath path) {
  switch (path) {
    case QuantPath::kPortable: return "portable";
    case QuantPath::kAvx2: return "avx2";
    case QuantPath::kAvx512Vnni: return "avx512_vnni";
  }
  return "?";
}

std::vector<QuantPath> SupportedQuantPaths() {
  std::vector<QuantPath> paths = {QuantPath::kPortable};
  if (kBestPath == QuantPath::kAvx2 || kBestPath == QuantPath::kAvx512Vnni) paths.push_back(QuantPath::kAvx2);
  if (kBestPath == QuantPath::kAvx512Vnni) paths.push_back(QuantPath::kAvx512Vnni);
  return paths;
}

QuantPath ActiveQuantPath() {
  const int forced = g_forced_path.load(std::memory_order_relaxed);
  return forced >= 0 ? static_cast<QuantPath>(forced) : kBestPath;
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
  const size_t qs_bytes = num_tokens * qs_stride_ + 64;
  if (qs_storage_.size() < qs_bytes) qs_storage_.resize(qs_bytes);
  const auto base = reinterpret_cast<uintptr_t>(qs_storage_.data());
  qs_ = qs_storage_.data() + ((64 - base % 64) % 64);
  const size_t blocks = num_tokens * blocks_stride_;
  if (scales_.size() < blocks) {
    scales_.resize(blocks);
    scaled_sums_.resize(blocks);
    sums16_.resize(2 * blocks);
  }
}

void QuantizedActivations::QuantizeRow(size_t t, const float* x) {
  int8_t* q = qs_ + t * qs_stride_;
  float* scales = scales_.data() + t * blocks_stride_;
  float* scaled_sums = scaled_sums_.data() + t * blocks_stride_;
  int16_t* sums16 = sums16_.data() + t * 2 * blocks_stride_;
  if (ActiveQuantPath() != QuantPath::kPortable) {
    QuantizeActivationsAvx2(x, k_, q, scales, scaled_sums, sums16);
    return;
  }
  QuantizeActivationsQ8(x, k_, q, scales);
  for (size_t h = 0; h < 2 * blocks(); ++h) {
    int sum = 0;
    for (size_t i = 0; i < 16; ++i) sum += q[16 * h + i];
    sums16[h] = static_cast<int16_t>(sum);
  }
  for (size_t b = 0; b < blocks(); ++b) scaled_sums[b] = scales[b] * static_cast<float>(sums16[2 * b] + sums16[2 * b + 1]);
}

void QuantTilePortable(const QuantTile& tile, float* scratch) {
  const QuantizedActivations& acts = *tile.acts;
  std::fill(scratch, scratch + tile.num_tokens * kQuantTileRows, 0.0f);
  BlockInts block;
  for (size_t r = 0; r < tile.rows; ++r) {
    const uint8_t* row = tile.w + (tile.row_begin + r) * tile.w_row_bytes;
    for (size_t b = tile.k_begin / 32; b < tile.k_end / 32; ++b) {
      UnpackBlock(tile.type, row, b, &block);
      for (size_t t = 0; t < tile.num_tokens; ++t) {
        const int8_t* x = acts.qs(tile.token_begin + t) + 32 * b;
        int32_t half[2] = {0, 0};
        for (int i = 0; i < 32; ++i) half[i / 16] += block.q[i] * x[i];
        const int32_t sum = block.sc16[0] * half[0] + block.sc16[1] * half[1];
        float& acc = scratch[t * kQuantTileRows + r];
        acc += static_cast<float>(sum) * acts.scales(tile.token_begin + t)[b] * block.scale;
        acc -= block.min * acts.scaled_sums(tile.token_begin + t)[b];
      }
    }
  }
  StoreTile(tile, scratch);
}

void StoreTile(const QuantTile& tile, const float* scratch) {
  for (size_t t = 0; t < tile.num_tokens; ++t) {
    float* out = tile.out + (tile.token_begin + t) * tile.out_stride + tile.row_begin;
    const float* sums = scratch + t * kQuantTileRows;
    if (tile.accumulate) {
      for (size_t r = 0; r < tile.rows; ++r) out[r] += sums[r];
    } else {
      for (size_t r = 0; r < tile.rows; ++r) out[r] = sums[r] + (tile.bias ? tile.bias[tile.row_begin + r] : 0.0f);
    }
  }
}

}  // namespace gemmarun::cpu
