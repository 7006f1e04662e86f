// The panel GEMM of matmul_panel.h on AVX2 + FMA + F16C (Haswell .. Alder
// Lake, Zen 1-3): the same packed activations and loop structure as the
// AVX-512 kernels in matmul_panel_x86.cc, at 8 lanes and 16 registers. A
// 64-row work item is packed and swept as four sub-panels of 16 rows, each
// transposed once per K chunk into [k][16 rows] f32, and the micro-kernel keeps
// 6 tokens x 16 rows of sums in 12 registers (+ 2 weight vectors + a
// broadcast = 15 of 16). f32 products only: bf16 products (MatMulPrecision::kBF16)
// arrive as activations already rounded to bf16, which is the same arithmetic.
#include <algorithm>
#include <cstring>
#include <utility>

#include "backend/cpu/matmul_panel.h"
#include "base/check.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "hwy/base.h"  // HWY_PUSH_ATTRIBUTES / HWY_POP_ATTRIBUTES

namespace gemmarun::cpu {
namespace {

HWY_PUSH_ATTRIBUTES("avx,avx2,fma,f16c")

constexpr size_t kSubRows = 16;  // two 8-lane vectors

// 8 consecutive weights of one row as f32.
inline __m256 Load8AsF32(DType type, const uint8_t* p) {
  switch (type) {
    case DType::kBF16:
      return _mm256_castsi256_ps(
          _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
    case DType::kF16: return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    default: return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  }
}

inline float ScalarAsF32(DType type, const uint8_t* p) {
  uint16_t h;
  switch (type) {
    case DType::kBF16: std::memcpy(&h, p, 2); return BF16ToF32(h);
    case DType::kF16: std::memcpy(&h, p, 2); return F16ToF32(h);
    default: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
  }
}

// In-register transpose of 8 vectors of 8 floats: r[i] lane j -> r[j] lane i.
inline void Transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// packed[k * 16 + r] = weight k of row r (rows >= `rows` zero), for the chunk's kc weights.
void PackSubPanel(DType type, const uint8_t* chunk, size_t row_bytes, size_t rows, size_t kc, float* packed) {
  const size_t elem = Info(type).block_bytes;
  for (size_t r0 = 0; r0 < kSubRows; r0 += 8) {
    const size_t live = rows > r0 ? std::min<size_t>(8, rows - r0) : 0;
    const uint8_t* base = chunk + r0 * row_bytes;
    size_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 v[8];
      for (size_t r = 0; r < 8; ++r) v[r] = r < live ? Load8AsF32(type, base + r * row_bytes + k * elem) : _mm256_setzero_ps();
      Transpose8(v);
      for (size_t j = 0; j < 8; ++j) _mm256_storeu_ps(packed + (k + j) * kSubRows + r0, v[j]);
    }
    for (; k < kc; ++k) {
      for (size_t r = 0; r < 8; ++r) {
        packed[k * kSubRows + r0 + r] = r < live ? ScalarAsF32(type, base + r * row_bytes + k * elem) : 0.0f;
      }
    }
  }
}

// NT tokens x 16 rows over the chunk; x: this token group's packed activations at k_begin.
template <size_t NT>
void Micro(const float* packed, size_t kc, const float* x, const PanelBlock& b, size_t token, size_t row,
           size_t rows) {
  __m256 acc[NT][2];
  for (size_t t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (size_t kk = 0; kk < kc; ++kk) {
    const __m256 w0 = _mm256_loadu_ps(packed + kk * kSubRows), w1 = _mm256_loadu_ps(packed + kk * kSubRows + 8);
    for (size_t t = 0; t < NT; ++t) {
      const __m256 xv = _mm256_broadcast_ss(x + kk * kPanelTokens + t);
      acc[t][0] = _mm256_fmadd_ps(w0, xv, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(w1, xv, acc[t][1]);
    }
  }
  const float* bias = b.bias ? b.bias + row : nullptr;
  for (size_t t = 0; t < NT; ++t) {
    float* out = b.out + (token + t) * b.out_stride + row;
    if (rows == kSubRows) {
      for (size_t v = 0; v < 2; ++v) {
        __m256 sum = acc[t][v];
        if (b.accumulate) {
          sum = _mm256_add_ps(sum, _mm256_loadu_ps(out + 8 * v));
        } else if (bias != nullptr) {
          sum = _mm256_add_ps(sum, _mm256_loadu_ps(bias + 8 * v));
        }
        _mm256_storeu_ps(out + 8 * v, sum);
      }
    } else {
      alignas(32) float sums[kSubRows];
      _mm256_store_ps(sums, acc[t][0]);
      _mm256_store_ps(sums + 8, acc[t][1]);
      for (size_t r = 0; r < rows; ++r) {
        out[r] = b.accumulate ? out[r] + sums[r] : sums[r] + (bias ? bias[r] : 0.0f);
      }
    }
  }
}

template <class F, size_t... Ns>
inline void ForTokenCount(size_t n, std::index_sequence<Ns...>, F&& f) {
  ((n == Ns + 1 ? f(std::integral_constant<size_t, Ns + 1>()) : void()), ...);
}

void PanelMatMulAvx2Impl(const PanelBlock& b, float* scratch) {
  const size_t kc = b.k_end - b.k_begin;
  const size_t elem = Info(b.type).block_bytes;
  for (size_t row = b.row_begin; row < b.row_end; row += kSubRows) {
    const size_t rows = std::min(kSubRows, b.row_end - row);
    PackSubPanel(b.type, b.w + row * b.w_row_bytes + b.k_begin * elem, b.w_row_bytes, rows, kc, scratch);
    for (size_t t = b.token_begin; t < b.token_end; t += kPanelTokens) {
      const size_t n = std::min(kPanelTokens, b.token_end - t);
      const float* xg = b.x + (t / kPanelTokens * b.x_stride + b.k_begin) * kPanelTokens;
      ForTokenCount(n, std::make_index_sequence<kPanelTokens>(),
                    [&](auto nt) { Micro<decltype(nt)::value>(scratch, kc, xg, b, t, row, rows); });
    }
  }
}

HWY_POP_ATTRIBUTES

}  // namespace

void PanelMatMulAvx2(const PanelBlock& block, float* scratch) {
  GR_DCHECK(!block.bf16_products);
  PanelMatMulAvx2Impl(block, scratch);
}

}  // namespace gemmarun::cpu

#else

namespace gemmarun::cpu {
void PanelMatMulAvx2(const PanelBlock&, float*) { GR_CHECK(false) << "PanelMatMulAvx2 on a non-x86 build"; }
}  // namespace gemmarun::cpu

#endif
