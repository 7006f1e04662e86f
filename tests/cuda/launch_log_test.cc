// The pass recorder that CUDA graphs stand on: it replays launches in order
// with the launchers' parameter types, and two passes compare equal exactly
// when every launcher and argument byte is the same. Runs without a GPU.
#include "backend/cuda/launch_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gemmarun::cuda {
namespace {

std::vector<std::string> calls;

void Scale(float* x, int64_t count, float factor, cudaStream_t stream) {
  calls.push_back("scale " + std::to_string(count) + " " + std::to_string(factor) + " " +
                  std::to_string(reinterpret_cast<uintptr_t>(stream)) + (x ? " x" : " null"));
}
struct Plan {
  int32_t rows = 0;
  int64_t keys = 0;  // padding before keys is zero in a value-initialized Plan
};
void Attend(const Plan& plan, const int32_t* table, cudaStream_t) {
  calls.push_back("attend " + std::to_string(plan.rows) + " " + std::to_string(plan.keys) + (table ? " t" : ""));
}

TEST(LaunchLog, ReplaysInOrderWithTheLaunchersTypes) {
  calls.clear();
  float storage[4];
  float* buffer = storage;
  LaunchLog log;
  EXPECT_TRUE(log.empty());
  log.Add(&Scale, buffer, 3, 2.5);  // int -> int64_t, double -> float
  Plan plan{};
  plan.rows = 2;
  plan.keys = 256;
  log.Add(&Attend, plan, static_cast<const int32_t*>(nullptr));
  EXPECT_TRUE(calls.empty()) << "recording launches nothing";
  log.Replay(reinterpret_cast<cudaStream_t>(7));
  EXPECT_EQ(calls, (std::vector<std::string>{"scale 3 2.500000 7 x", "attend 2 256"}));
}

TEST(LaunchLog, PassesAreEqualOnlyWhenEveryArgumentIs) {
  float storage[2];
  float *a = storage, *b = storage + 1;
  auto pass = [](float* x, int64_t count, int64_t keys) {
    LaunchLog log;
    log.Add(&Scale, x, count, 1.0f);
    Plan plan{};
    plan.keys = keys;
    log.Add(&Attend, plan, static_cast<const int32_t*>(nullptr));
    return log;
  };
  EXPECT_TRUE(pass(a, 4, 256) == pass(a, 4, 256));
  EXPECT_FALSE(pass(a, 4, 256) == pass(b, 4, 256)) << "another device pointer";
  EXPECT_FALSE(pass(a, 4, 256) == pass(a, 5, 256)) << "another size";
  EXPECT_FALSE(pass(a, 4, 256) == pass(a, 4, 512)) << "another field of a struct argument";
  LaunchLog shorter;
  shorter.Add(&Scale, a, 4, 1.0f);
  EXPECT_FALSE(shorter == pass(a, 4, 256)) << "a launch fewer";
}

}  // namespace
}  // namespace gemmarun::cuda
