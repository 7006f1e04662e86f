// Prefill GEMM for f32 / bf16 / f16 weights on AVX-512 and AVX2 (outer-product form).
//
// The Highway kernel in matmul_float.cc is dot-product shaped: every weight
// vector it loads is widened again for each group of tokens and each product
// ends in a horizontal sum. Here a panel of 32 weight rows is transposed once
// per K chunk into [k][32 rows] (f32, or bf16 pairs [k/2][32 rows][2]), and a
// micro-kernel keeps 12 tokens x 32 rows of sums in 24 registers: per k it
// loads two weight vectors and broadcasts one activation per token, so the
// loop is nothing but FMAs (or vdpbf16ps) fed from L1.
//
// Two arithmetics:
//  - f32 products (any of the three weight types): weights widened exactly,
//    f32 FMA; the same sums as matmul_float.cc up to order.
//  - bf16 products (bf16 weights, MatMulPrecision::kBF16, CPUs with
//    AVX512_BF16): the caller passes activations already rounded to bf16 and
//    vdpbf16ps multiplies pairs at twice the FMA rate. bf16 x bf16 products are
//    exact in f32, so this equals f32 FMA over the rounded activations up to
//    summation order.
//
// x86-only, compiled with target attributes and chosen at run time (CPUID and
// the pinned target, cpu_target.h), so the binary still runs on older CPUs.
// AVX2 CPUs run the same layout at 8 lanes (matmul_panel_avx2.cc), f32
// products only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/matmul_float.h"
#include "tensor/dtype.h"

namespace gemmarun::cpu {

// Rows of a panel (two 16-lane vectors) and tokens of a micro-kernel call.
constexpr size_t kPanelRows = 64;
constexpr size_t kPanelTokens = 6;

// Activations in the micro-kernel's order: groups of 12 tokens, and within a
// group for each k the 12 tokens' values side by side, so that the 12
// broadcasts of one k read one 48-byte line instead of 12 rows (whose equal
// offsets in rows 8 KiB apart fall into one L1 set and evict each other).
// f32: [group][k][12] floats. bf16 products: [group][k / 2][12] pairs of bf16
// (rounded to nearest even) in 32-bit lanes, an odd K's last pair zero-padded.
// Tokens past the end of the last group are zero. Packs groups [group_begin, group_end).
inline size_t PackedActivationFloats(size_t num_tokens, size_t k, bool bf16_products) {
  return (num_tokens + kPanelTokens - 1) / kPanelTokens * kPanelTokens * (bf16_products ? (k + 1) / 2 : k);
}
void PackActivations(const float* x, size_t num_tokens, size_t k, bool bf16_products, size_t group_begin,
                     size_t group_end, float* packed);

// A FloatBlock (token_begin a multiple of kPanelTokens) whose x is
// PackActivations' layout of all tokens, with x_stride = K (the layout's row
// length). bf16_products needs kBF16 weights and an even k_begin.
struct PanelBlock : FloatBlock {
  bool bf16_products = false;
};

// Whether this CPU runs PanelMatMul (AVX-512 F/BW/DQ/VL, or AVX2 + FMA + F16C)
// and its bf16 products (AVX-512 with AVX512_BF16).
bool HasPanelKernels();
bool HasBf16Products();

// Floats of scratch PanelMatMul needs for a K chunk of `k` values.
inline size_t PanelScratchFloats(size_t k) { return kPanelRows * (k + 1); }

// Requires HasPanelKernels() (and HasBf16Products() for bf16 products);
// scratch holds PanelScratchFloats(k_end - k_begin) floats.
void PanelMatMul(const PanelBlock& block, float* scratch);
// The AVX2 kernel PanelMatMul picks without AVX-512 (no bf16 products).
void PanelMatMulAvx2(const PanelBlock& block, float* scratch);

}  // namespace gemmarun::cpu
