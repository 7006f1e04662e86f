// Instantiates matmul_quant_x86-inl.h for AVX2 and for AVX-512 VNNI (with and
// without VBMI). Each copy
// is compiled with its own target attributes (as Highway does per target), so
// the rest of the binary stays baseline x86-64 and one binary runs anywhere;
// matmul_quant.cc picks a copy at run time from CPUID.
//
// Why intrinsics rather than Highway here: Debian's Highway 1.0.3 has no target
// with VNNI (no AVX3_ZEN4/SPR, and AVX3_DL is not built), and vpdpbusd is the
// point of this path: one instruction for 32 byte products into int32, against
// three (maddubs, madd, add) on AVX2.
#include "backend/cpu/matmul_quant.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "base/check.h"
#include "tensor/quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "hwy/base.h"  // HWY_PUSH_ATTRIBUTES / HWY_POP_ATTRIBUTES

// GCC 12's AVX-512 intrinsics build masked results from _mm512_undefined_*,
// which -Wmaybe-uninitialized reports once inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gemmarun::cpu {

HWY_PUSH_ATTRIBUTES("avx,avx2,fma,f16c")
namespace avx2 {
#define GR_QUANT_VNNI 0
#define GR_QUANT_VBMI 0
#include "backend/cpu/matmul_quant_x86-inl.h"
#undef GR_QUANT_VBMI
#undef GR_QUANT_VNNI
}  // namespace avx2
HWY_POP_ATTRIBUTES

HWY_PUSH_ATTRIBUTES("avx,avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi")
namespace avx512_vnni {
#define GR_QUANT_VNNI 1
#define GR_QUANT_VBMI 1
#include "backend/cpu/matmul_quant_x86-inl.h"
#undef GR_QUANT_VBMI
#undef GR_QUANT_VNNI
}  // namespace avx512_vnni
HWY_POP_ATTRIBUTES

// Cascade Lake / Cooper Lake: VNNI without VBMI. Only the Q4_0 decode kernel
// permutes bytes; without it Q4_0 decode takes the 256-bit group kernel.
HWY_PUSH_ATTRIBUTES("avx,avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
namespace avx512_vnni_no_vbmi {
#define GR_QUANT_VNNI 1
#define GR_QUANT_VBMI 0
#include "backend/cpu/matmul_quant_x86-inl.h"
#undef GR_QUANT_VBMI
#undef GR_QUANT_VNNI
}  // namespace avx512_vnni_no_vbmi
HWY_POP_ATTRIBUTES

void QuantTileAvx2(const QuantTile& tile, float* scratch) { avx2::Tile(tile, scratch); }
void QuantTileAvx512Vnni(const QuantTile& tile, float* scratch) { avx512_vnni::Tile(tile, scratch); }
void QuantTileAvx512VnniNoVbmi(const QuantTile& tile, float* scratch) { avx512_vnni_no_vbmi::Tile(tile, scratch); }
void QuantizeActivationsAvx2(const float* x, size_t k, int8_t* qs, float* scales, float* scaled_sums,
                             int16_t* sums16, int32_t* neg_sums) {
  avx2::QuantizeActivations(x, k, qs, scales, scaled_sums, sums16, neg_sums);
}

}  // namespace gemmarun::cpu

#else  // not x86-64: SupportedQuantPaths() never offers these.

namespace gemmarun::cpu {
void QuantTileAvx2(const QuantTile&, float*) { GR_CHECK(false) << "AVX2 kernels on a non-x86 build"; }
void QuantTileAvx512Vnni(const QuantTile&, float*) { GR_CHECK(false) << "VNNI kernels on a non-x86 build"; }
void QuantTileAvx512VnniNoVbmi(const QuantTile&, float*) { GR_CHECK(false) << "VNNI kernels on a non-x86 build"; }
void QuantizeActivationsAvx2(const float*, size_t, int8_t*, float*, float*, int16_t*, int32_t*) {
  GR_CHECK(false) << "AVX2 kernels on a non-x86 build";
}
}  // namespace gemmarun::cpu

#endif
