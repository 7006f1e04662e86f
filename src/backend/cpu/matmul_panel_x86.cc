// AVX-512 panel GEMM (see matmul_panel.h). Intrinsics rather than Highway:
// Debian's Highway 1.0.3 has no target with AVX512_BF16, and vdpbf16ps is the
// point of the bf16 path; the f32 path shares its packing and loop structure.
#include "backend/cpu/matmul_panel.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "backend/cpu/cpu_target.h"
#include "base/check.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "hwy/base.h"  // HWY_PUSH_ATTRIBUTES / HWY_POP_ATTRIBUTES

// GCC 12's AVX-512 intrinsics build masked results from _mm512_undefined_*,
// which -Wmaybe-uninitialized reports once inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gemmarun::cpu {
namespace {

HWY_PUSH_ATTRIBUTES("avx,avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")

// 12 tokens x 2 accumulators + 2 weight vectors + a broadcast: 27 of 32 registers.
constexpr size_t kTokensPerMicro = kPanelTokens;
constexpr size_t kVecs = kPanelRows / 16;

// In-register transpose of 16 vectors of 16 32-bit lanes: r[i] lane j -> r[j] lane i.
inline void Transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Now, within each 128-bit lane q of r[4a + b], lane q holds rows 4a..4a+3 of
  // column 4q + b. Gather the 128-bit lanes across groups of four vectors.
  for (int b = 0; b < 4; ++b) {
    const __m512i a0 = r[b], a1 = r[4 + b], a2 = r[8 + b], a3 = r[12 + b];
    const __m512i lo01 = _mm512_shuffle_i32x4(a0, a1, 0x44);  // a0.q0 a0.q1 a1.q0 a1.q1
    const __m512i hi01 = _mm512_shuffle_i32x4(a0, a1, 0xEE);  // a0.q2 a0.q3 a1.q2 a1.q3
    const __m512i lo23 = _mm512_shuffle_i32x4(a2, a3, 0x44);
    const __m512i hi23 = _mm512_shuffle_i32x4(a2, a3, 0xEE);
    t[b] = _mm512_shuffle_i32x4(lo01, lo23, 0x88);       // q0 of a0 a1 a2 a3: column b
    t[4 + b] = _mm512_shuffle_i32x4(lo01, lo23, 0xDD);   // q1: column 4 + b
    t[8 + b] = _mm512_shuffle_i32x4(hi01, hi23, 0x88);   // q2: column 8 + b
    t[12 + b] = _mm512_shuffle_i32x4(hi01, hi23, 0xDD);  // q3: column 12 + b
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// 16 consecutive weights of one row as f32 bits.
inline __m512i Load16AsF32(DType type, const uint8_t* p) {
  switch (type) {
    case DType::kBF16:
      return _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16);
    case DType::kF16:
      return _mm512_castps_si512(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
    default:
      return _mm512_loadu_si512(p);
  }
}

inline float ScalarToF32(DType type, const uint8_t* p) {
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

// Transposes a panel's rows [row_begin, row_begin + 64) into
// packed[lane * 64 + r] = lane `lane` of row r (rows past row_end zero), 16
// rows x 16 lanes at a time. A lane is 32 bits of the chunk:
//  - F32Lanes: one weight widened to f32 (lanes = k values);
//  - Bf16PairLanes: two bf16 weights (k = 2 * lane, 2 * lane + 1), the operand
//    layout of vdpbf16ps; an odd last k pairs with zero.
struct F32Lanes {
  DType type;
  size_t elem;  // bytes per weight
  size_t kc;
  size_t count() const { return kc; }
  size_t vector_count() const { return kc / 16 * 16; }  // lanes that full 16-lane loads cover
  __m512i Load16(const uint8_t* row, size_t lane) const { return Load16AsF32(type, row + lane * elem); }
  uint32_t Scalar(const uint8_t* row, size_t lane) const {
    const float f = ScalarToF32(type, row + lane * elem);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return bits;
  }
};
struct Bf16PairLanes {
  size_t kc;
  size_t count() const { return (kc + 1) / 2; }
  size_t vector_count() const { return kc / 32 * 16; }
  __m512i Load16(const uint8_t* row, size_t lane) const { return _mm512_loadu_si512(row + 4 * lane); }
  uint32_t Scalar(const uint8_t* row, size_t lane) const {
    uint16_t lo, hi = 0;
    std::memcpy(&lo, row + 4 * lane, 2);
    if (2 * lane + 1 < kc) std::memcpy(&hi, row + 4 * lane + 2, 2);
    return uint32_t{lo} | (uint32_t{hi} << 16);
  }
};

// `chunk` points at the chunk's first weight of row_begin.
template <class Lanes>
void PackPanel(const Lanes& lanes, const uint8_t* chunk, size_t row_bytes, size_t rows, uint32_t* packed) {
  for (size_t r0 = 0; r0 < kPanelRows; r0 += 16) {
    const size_t live = rows > r0 ? std::min<size_t>(16, rows - r0) : 0;
    const uint8_t* base = chunk + r0 * row_bytes;
    size_t lane = 0;
    for (; lane < lanes.vector_count(); lane += 16) {
      __m512i v[16];
      for (size_t r = 0; r < 16; ++r) {
        v[r] = r < live ? lanes.Load16(base + r * row_bytes, lane) : _mm512_setzero_si512();
      }
      Transpose16(v);
      for (size_t j = 0; j < 16; ++j) _mm512_storeu_si512(packed + (lane + j) * kPanelRows + r0, v[j]);
    }
    for (; lane < lanes.count(); ++lane) {
      uint32_t* dst = packed + lane * kPanelRows + r0;
      for (size_t r = 0; r < 16; ++r) dst[r] = r < live ? lanes.Scalar(base + r * row_bytes, lane) : 0;
    }
  }
}

// Adds (accumulate) or bias-initialises and stores the sums of NT tokens.
template <size_t NT>
inline void StoreSums(__m512 acc[][kVecs], const PanelBlock& b, size_t token, size_t row, const __mmask16* m) {
  const float* bias = b.bias ? b.bias + row : nullptr;
  for (size_t t = 0; t < NT; ++t) {
    float* out = b.out + (token + t) * b.out_stride + row;
    for (size_t v = 0; v < kVecs; ++v) {
      __m512 sum = acc[t][v];
      if (b.accumulate) {
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m[v], out + 16 * v));
      } else if (bias != nullptr) {
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m[v], bias + 16 * v));
      }
      _mm512_mask_storeu_ps(out + 16 * v, m[v], sum);
    }
  }
}

// x: the packed activations of this token group at k_begin.
template <size_t NT>
void MicroF32(const float* packed, size_t kc, const float* x, const PanelBlock& b, size_t token, size_t row,
              const __mmask16* m) {
  __m512 acc[NT][kVecs];
  for (size_t t = 0; t < NT; ++t) {
    for (size_t v = 0; v < kVecs; ++v) acc[t][v] = _mm512_setzero_ps();
  }
  for (size_t kk = 0; kk < kc; ++kk) {
    __m512 w[kVecs];
    for (size_t v = 0; v < kVecs; ++v) w[v] = _mm512_loadu_ps(packed + kk * kPanelRows + 16 * v);
    for (size_t t = 0; t < NT; ++t) {
      const __m512 xv = _mm512_set1_ps(x[kk * kPanelTokens + t]);
      for (size_t v = 0; v < kVecs; ++v) acc[t][v] = _mm512_fmadd_ps(w[v], xv, acc[t][v]);
    }
  }
  StoreSums<NT>(acc, b, token, row, m);
}

// x: the packed bf16 pairs of this token group at k_begin / 2.
template <size_t NT>
void MicroBf16(const uint32_t* packed, size_t pairs, const uint32_t* x, const PanelBlock& b, size_t token,
               size_t row, const __mmask16* m) {
  __m512 acc[NT][kVecs];
  for (size_t t = 0; t < NT; ++t) {
    for (size_t v = 0; v < kVecs; ++v) acc[t][v] = _mm512_setzero_ps();
  }
  for (size_t p = 0; p < pairs; ++p) {
    __m512bh w[kVecs];
    for (size_t v = 0; v < kVecs; ++v) w[v] = (__m512bh)_mm512_loadu_si512(packed + p * kPanelRows + 16 * v);
    for (size_t t = 0; t < NT; ++t) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[p * kPanelTokens + t]));
      for (size_t v = 0; v < kVecs; ++v) acc[t][v] = _mm512_dpbf16_ps(acc[t][v], w[v], xv);
    }
  }
  StoreSums<NT>(acc, b, token, row, m);
}

template <class F, size_t... Ns>
inline void ForTokenCount(size_t n, std::index_sequence<Ns...>, F&& f) {
  ((n == Ns + 1 ? f(std::integral_constant<size_t, Ns + 1>()) : void()), ...);
}

void PanelMatMulImpl(const PanelBlock& b, float* scratch) {
  const size_t kc = b.k_end - b.k_begin;
  for (size_t row = b.row_begin; row < b.row_end; row += kPanelRows) {
    const size_t rows = std::min(kPanelRows, b.row_end - row);
    __mmask16 m[kVecs];
    for (size_t v = 0; v < kVecs; ++v) {
      const size_t live = rows > 16 * v ? std::min<size_t>(16, rows - 16 * v) : 0;
      m[v] = static_cast<__mmask16>((1u << live) - 1);
    }
    if (b.bf16_products) {
      auto* packed = reinterpret_cast<uint32_t*>(scratch);
      PackPanel(Bf16PairLanes{kc}, b.w + row * b.w_row_bytes + b.k_begin * 2, b.w_row_bytes, rows, packed);
      const size_t pairs = (kc + 1) / 2, all_pairs = (b.x_stride + 1) / 2;
      const auto* x = reinterpret_cast<const uint32_t*>(b.x);
      for (size_t t = b.token_begin; t < b.token_end; t += kTokensPerMicro) {
        const size_t n = std::min(kTokensPerMicro, b.token_end - t);
        const uint32_t* xg = x + (t / kPanelTokens * all_pairs + b.k_begin / 2) * kPanelTokens;
        ForTokenCount(n, std::make_index_sequence<kTokensPerMicro>(),
                      [&](auto nt) { MicroBf16<decltype(nt)::value>(packed, pairs, xg, b, t, row, m); });
      }
    } else {
      const size_t elem = Info(b.type).block_bytes;  // one weight per block
      PackPanel(F32Lanes{b.type, elem, kc}, b.w + row * b.w_row_bytes + b.k_begin * elem, b.w_row_bytes, rows,
                reinterpret_cast<uint32_t*>(scratch));
      for (size_t t = b.token_begin; t < b.token_end; t += kTokensPerMicro) {
        const size_t n = std::min(kTokensPerMicro, b.token_end - t);
        const float* xg = b.x + (t / kPanelTokens * b.x_stride + b.k_begin) * kPanelTokens;
        ForTokenCount(n, std::make_index_sequence<kTokensPerMicro>(),
                      [&](auto nt) { MicroF32<decltype(nt)::value>(scratch, kc, xg, b, t, row, m); });
      }
    }
  }
}

HWY_POP_ATTRIBUTES

}  // namespace

bool HasPanelKernels() { return Allows(CpuFeature::kAvx512) || Allows(CpuFeature::kAvx2); }

bool HasBf16Products() { return Allows(CpuFeature::kAvx512) && Allows(CpuFeature::kAvx512Bf16); }

void PanelMatMul(const PanelBlock& block, float* scratch) {
  GR_DCHECK(HasPanelKernels() && (!block.bf16_products || HasBf16Products()));
  GR_DCHECK(!block.bf16_products || (block.type == DType::kBF16 && block.k_begin % 2 == 0));
  if (!Allows(CpuFeature::kAvx512)) return PanelMatMulAvx2(block, scratch);
  PanelMatMulImpl(block, scratch);
}

void PackActivations(const float* x, size_t num_tokens, size_t k, bool bf16_products, size_t group_begin,
                     size_t group_end, float* packed) {
  const size_t row = bf16_products ? (k + 1) / 2 : k;  // lanes per token of a group
  for (size_t g = group_begin; g < group_end; ++g) {
    float* dst = packed + g * row * kPanelTokens;
    for (size_t t = 0; t < kPanelTokens; ++t) {
      const size_t token = g * kPanelTokens + t;
      const float* src = x + token * k;
      if (bf16_products) {
        auto* pairs = reinterpret_cast<uint32_t*>(dst);
        for (size_t p = 0; p < row; ++p) {
          const uint32_t lo = token < num_tokens ? F32ToBF16(src[2 * p]) : 0;
          const uint32_t hi = token < num_tokens && 2 * p + 1 < k ? F32ToBF16(src[2 * p + 1]) : 0;
          pairs[p * kPanelTokens + t] = lo | (hi << 16);
        }
      } else {
        for (size_t i = 0; i < k; ++i) dst[i * kPanelTokens + t] = token < num_tokens ? src[i] : 0.0f;
      }
    }
  }
}

}  // namespace gemmarun::cpu

#else  // not x86-64 GCC/Clang: no panel kernels; MatMul keeps the Highway path.

namespace gemmarun::cpu {
bool HasPanelKernels() { return false; }
bool HasBf16Products() { return false; }
void PanelMatMul(const PanelBlock&, float*) { GR_CHECK(false) << "PanelMatMul without AVX-512"; }
void PackActivations(const float*, size_t, size_t, bool, size_t, size_t, float*) {
  GR_CHECK(false) << "PackActivations without AVX-512";
}
}  // namespace gemmarun::cpu

#endif
