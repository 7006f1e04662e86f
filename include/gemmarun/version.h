// What this gemmarun was built from and with: `gemmarun --version` prints it.
#pragma once

#include <string>
#include <vector>

namespace gemmarun {

struct BuildInfo {
  std::string version;                // the CMake project version, e.g. "0.1.0"
  std::string git_revision;           // short hash at configure time; "unknown" outside a git checkout
  std::vector<std::string> backends;  // compiled in: "cpu", and "cuda" when built with it
  std::string cpu_target;             // the SIMD target the CPU kernels use on this machine, e.g. "AVX3"
};

BuildInfo GetBuildInfo();

}  // namespace gemmarun
