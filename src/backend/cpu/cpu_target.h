// Which kernels the CPU backend may use: Highway's run-time dispatch plus our
// own CPU-feature checks (AVX-512 panel GEMM, VNNI/VBMI/BF16 and NEON dot
// product paths), all capped by one pinned target.
//
// Pinning (GEMMARUN_CPU_TARGET=avx2, `gemmarun bench --cpu-target avx2`, or
// the kernel tests) lets any machine run what an older CPU would: the pinned
// name is one of Highway's target names, and it caps both Highway's dispatch
// and our intrinsics paths at what that target's CPUs have:
//   avx3_dl  AVX-512 F/BW/DQ/VL + VNNI + VBMI (Ice Lake; no AVX512_BF16)
//   avx3     AVX-512 F/BW/DQ/VL only (Skylake-X)
//   avx2     AVX2 + FMA + F16C (and AVX-VNNI, which AVX2-only CPUs may have)
//   sse4, ssse3, emu128, scalar: Highway's portable kernels, no intrinsics paths
//   neon, sve, sve2, ...: Highway's ARM targets (the int8 dot-product paths stay on)
// Unpinned, every feature the CPU has is used.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gemmarun/status.h"

namespace gemmarun::cpu {

enum class CpuFeature : uint8_t {
  kAvx2,        // AVX2 + FMA + F16C
  kAvxVnni,     // VEX-coded vpdpbusd (Alder Lake, Zen 5)
  kAvx512,      // AVX-512 F + BW + DQ + VL
  kAvx512Vnni,  // + VNNI
  kAvx512Vbmi,  // + VBMI
  kAvx512Bf16,  // + BF16
  kNeonDot,     // ARMv8.2 sdot / udot
  kNeonI8mm,    // ARMv8.6 smmla
};

// Whether the CPU has `feature` and the pinned target (if any) allows it. Cheap
// (one atomic load): called per MatMul.
bool Allows(CpuFeature feature);

// Pins the kernel target by Highway name (case-insensitive); "" unpins. An
// unknown name or one this CPU cannot run is an InvalidArgument naming the
// targets this CPU offers. Not thread-safe against running kernels: call before
// a backend starts work.
Status PinTarget(std::string_view name);
// PinTarget(getenv("GEMMARUN_CPU_TARGET")) once per process (later calls
// return the first result); unset or empty leaves the target unpinned.
Status PinTargetFromEnvironment();

// Highway target names this CPU offers, best first, lower case.
std::vector<std::string> OfferedTargets();
// Name of the target kernels run with: the pinned one if any, else the best
// this CPU offers (e.g. "AVX3_DL", "AVX2", "NEON"). Static storage.
const char* ActiveTargetName();

}  // namespace gemmarun::cpu
