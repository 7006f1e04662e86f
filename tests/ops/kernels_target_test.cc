// Pinning the kernel target (backend/cpu/cpu_target.h): names are checked
// against what this CPU offers, and a pin caps Highway's dispatch and our own
// intrinsics paths alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cpu/cpu_target.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul_panel.h"
#include "backend/cpu/matmul_quant.h"
#include "hwy/targets.h"

namespace gemmarun {
namespace {

bool Offers(const std::string& name) {
  const auto offered = cpu::OfferedTargets();
  return std::find(offered.begin(), offered.end(), name) != offered.end();
}

// The best target Highway would dispatch to now.
int64_t DispatchTarget() {
  const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return targets & -targets;
}

class PinTargetTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(cpu::PinTarget("").ok()); }
};

TEST_F(PinTargetTest, UnknownNameListsWhatThisCpuOffers) {
  const Status status = cpu::PinTarget("avx9000");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'avx9000' is not a kernel target"), std::string::npos) << status.message();
  for (const std::string& name : cpu::OfferedTargets()) {
    EXPECT_NE(status.message().find(name), std::string::npos) << name << " missing from: " << status.message();
  }
  EXPECT_FALSE(cpu::OfferedTargets().empty());
}

// (Highway names only its own architecture's targets, so this fails as unknown.)
TEST_F(PinTargetTest, TargetOfAnotherArchitectureIsRefused) {
  const char* foreign = HWY_ARCH_X86 ? "neon" : "avx2";
  const Status status = cpu::PinTarget(foreign);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("offers " + cpu::OfferedTargets().front()), std::string::npos) << status.message();
}

TEST_F(PinTargetTest, PinCapsHighwayAndOurPaths) {
  if (!HWY_ARCH_X86 || !Offers("avx2")) GTEST_SKIP() << "no AVX2 here";
  ASSERT_TRUE(cpu::PinTarget("AVX2").ok());  // case-insensitive
  EXPECT_STREQ(cpu::ActiveTargetName(), "AVX2");
  EXPECT_STREQ(cpu::SelectedTarget(), "AVX2");
  EXPECT_EQ(DispatchTarget(), HWY_AVX2);
  EXPECT_FALSE(cpu::Allows(cpu::CpuFeature::kAvx512));
  EXPECT_FALSE(cpu::HasBf16Products());
  EXPECT_TRUE(cpu::HasPanelKernels());  // the AVX2 panel (matmul_panel_avx2.cc)
  EXPECT_EQ(cpu::ActiveQuantPath(), cpu::QuantPath::kAvx2);
  const auto paths = cpu::SupportedQuantPaths();
  EXPECT_EQ(paths.back(), cpu::QuantPath::kAvx2);

  ASSERT_TRUE(cpu::PinTarget("sse4").ok());
  EXPECT_EQ(DispatchTarget(), HWY_SSE4);
  EXPECT_FALSE(cpu::Allows(cpu::CpuFeature::kAvx2));
  EXPECT_FALSE(cpu::HasPanelKernels());
  EXPECT_EQ(cpu::ActiveQuantPath(), cpu::QuantPath::kPortable);
}

TEST_F(PinTargetTest, Avx3IsSkylakeX) {
  if (!HWY_ARCH_X86 || !Offers("avx3")) GTEST_SKIP() << "no AVX-512 here";
  ASSERT_TRUE(cpu::PinTarget("avx3").ok());
  EXPECT_STREQ(cpu::ActiveTargetName(), "AVX3");
  EXPECT_TRUE(cpu::HasPanelKernels());
  EXPECT_FALSE(cpu::HasBf16Products());
  EXPECT_FALSE(cpu::Allows(cpu::CpuFeature::kAvx512Vnni));
  EXPECT_FALSE(cpu::Allows(cpu::CpuFeature::kAvx512Vbmi));
  EXPECT_EQ(cpu::ActiveQuantPath(), cpu::QuantPath::kAvx2);  // no VNNI: the AVX2 integer kernels
}

// Ice Lake: VNNI and VBMI but no AVX512_BF16, and the AVX2 panel never
// replaces the AVX-512 one.
TEST_F(PinTargetTest, Avx3DlHasVnniButNoBf16) {
  if (!HWY_ARCH_X86 || !Offers("avx3_dl")) GTEST_SKIP() << "no AVX3_DL here";
  ASSERT_TRUE(cpu::PinTarget("avx3_dl").ok());
  EXPECT_STREQ(cpu::ActiveTargetName(), "AVX3_DL");
  EXPECT_EQ(DispatchTarget() & (HWY_AVX3 | HWY_AVX3_DL), DispatchTarget());  // AVX3_DL is not compiled in Debian's Highway
  EXPECT_EQ(cpu::ActiveQuantPath(), cpu::QuantPath::kAvx512Vnni);
  EXPECT_FALSE(cpu::HasBf16Products());
  EXPECT_TRUE(cpu::HasPanelKernels());
}

TEST_F(PinTargetTest, UnpinRestoresTheBest) {
  const int64_t best = DispatchTarget();
  const std::string best_name = cpu::ActiveTargetName();
  const cpu::QuantPath best_path = cpu::ActiveQuantPath();
  const std::string worst = cpu::OfferedTargets().back();
  ASSERT_TRUE(cpu::PinTarget(worst).ok());
  ASSERT_TRUE(cpu::PinTarget("").ok());
  EXPECT_EQ(DispatchTarget(), best);
  EXPECT_EQ(cpu::ActiveTargetName(), best_name);
  EXPECT_EQ(cpu::ActiveQuantPath(), best_path);
}

TEST(PinTargetFromEnvironmentTest, BadValueNamesTheVariable) {
  setenv("GEMMARUN_CPU_TARGET", "pentium", 1);
  const Status status = cpu::PinTargetFromEnvironment();
  unsetenv("GEMMARUN_CPU_TARGET");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("GEMMARUN_CPU_TARGET: CPU target 'pentium'"), std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace gemmarun
