#include "backend/cpu/cpu_target.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>

#include "hwy/targets.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define GR_CPU_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define GR_CPU_ARM64 1
#endif

namespace gemmarun::cpu {
namespace {

constexpr uint32_t Bit(CpuFeature f) { return 1u << static_cast<uint32_t>(f); }

uint32_t DetectFeatures() {
  uint32_t features = 0;
#if defined(GR_CPU_X86)
  __builtin_cpu_init();
  unsigned eax, ebx, ecx, edx;
  // F16C and AVX-VNNI by CPUID: clang 14's __builtin_cpu_supports knows neither.
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  const bool avx_vnni = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (avx2) features |= Bit(CpuFeature::kAvx2);
  if (avx2 && avx_vnni) features |= Bit(CpuFeature::kAvxVnni);
  if (avx512) features |= Bit(CpuFeature::kAvx512);
  if (avx512 && __builtin_cpu_supports("avx512vnni")) features |= Bit(CpuFeature::kAvx512Vnni);
  if (avx512 && __builtin_cpu_supports("avx512vbmi")) features |= Bit(CpuFeature::kAvx512Vbmi);
  if (avx512 && __builtin_cpu_supports("avx512bf16")) features |= Bit(CpuFeature::kAvx512Bf16);
#elif defined(GR_CPU_ARM64)
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  if (hwcap & (1ul << 20)) features |= Bit(CpuFeature::kNeonDot);   // HWCAP_ASIMDDP
  if (hwcap2 & (1ul << 13)) features |= Bit(CpuFeature::kNeonI8mm);  // HWCAP2_I8MM
#endif
  return features;
}

// The features a pinned Highway target allows: those every CPU of that target
// has. Highway's bits are ordered best first (a smaller bit is a better target).
uint32_t FeaturesAllowedBy(int64_t target) {
  if (target == HWY_EMU128 || target == HWY_SCALAR) return 0;
  uint32_t allowed = Bit(CpuFeature::kNeonDot) | Bit(CpuFeature::kNeonI8mm);
#if HWY_ARCH_X86
  if (target <= HWY_AVX2) allowed |= Bit(CpuFeature::kAvx2) | Bit(CpuFeature::kAvxVnni);
  if (target <= HWY_AVX3) allowed |= Bit(CpuFeature::kAvx512);
  if (target <= HWY_AVX3_DL) allowed |= Bit(CpuFeature::kAvx512Vnni) | Bit(CpuFeature::kAvx512Vbmi);
#ifdef HWY_AVX3_ZEN4
  if (target <= HWY_AVX3_ZEN4) allowed |= Bit(CpuFeature::kAvx512Bf16);
#endif
#endif
  return allowed;
}

struct CpuState {
  const uint32_t features = DetectFeatures();
  // Read before any test mock: what the CPU really offers.
  const int64_t supported = hwy::SupportedTargets();
  std::atomic<uint32_t> allowed{features};
  std::atomic<int64_t> pinned{0};
};

CpuState& State() {
  static CpuState state;
  return state;
}
// Detect at start-up, before a test could mock Highway's targets.
[[maybe_unused]] const CpuState& g_initial_state = State();

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// Every Highway target bit with a name, for recognising names this CPU lacks.
int64_t TargetByName(const std::string& lower) {
  for (int bit = 0; bit < 63; ++bit) {
    const int64_t target = int64_t{1} << bit;
    const char* name = hwy::TargetName(target);
    if (name != nullptr && Lower(name) == lower && Lower(name) != "unknown") return target;
  }
  return 0;
}

}  // namespace

bool Allows(CpuFeature feature) { return (State().allowed.load(std::memory_order_relaxed) & Bit(feature)) != 0; }

std::vector<std::string> OfferedTargets() {
  std::vector<std::string> names;
  const int64_t supported = State().supported;
  for (int bit = 0; bit < 63; ++bit) {
    const int64_t target = int64_t{1} << bit;
    if (supported & target) names.push_back(Lower(hwy::TargetName(target)));
  }
  return names;
}

Status PinTarget(std::string_view name) {
  CpuState& state = State();
  if (name.empty()) {
    hwy::SetSupportedTargetsForTest(0);
    state.pinned.store(0);
    state.allowed.store(state.features);
    return Status::Ok();
  }
  const std::string lower = Lower(name);
  const int64_t target = TargetByName(lower);
  if (target == 0) {
    return InvalidArgument("CPU target '" + std::string(name) + "' is not a kernel target; this CPU offers " +
                           Join(OfferedTargets()));
  }
  if ((state.supported & target) == 0) {
    return InvalidArgument("CPU target '" + std::string(name) + "' is not supported by this CPU; it offers " +
                           Join(OfferedTargets()));
  }
  // The target and every worse one: Highway dispatches to the best of them compiled in.
  hwy::SetSupportedTargetsForTest(state.supported & ~(target - 1));
  state.pinned.store(target);
  state.allowed.store(state.features & FeaturesAllowedBy(target));
  return Status::Ok();
}

Status PinTargetFromEnvironment() {
  static const Status status = [] {
    const char* value = std::getenv("GEMMARUN_CPU_TARGET");
    if (value == nullptr || *value == '\0') return Status::Ok();
    const Status pinned = PinTarget(value);
    return pinned.ok() ? pinned : InvalidArgument("GEMMARUN_CPU_TARGET: " + pinned.message());
  }();
  return status;
}

const char* ActiveTargetName() {
  const CpuState& state = State();
  const int64_t pinned = state.pinned.load();
  const int64_t target = pinned != 0 ? pinned : state.supported & -state.supported;
  return hwy::TargetName(target);
}

}  // namespace gemmarun::cpu
