#include "gemmarun/version.h"

#include "backend/cpu/kernels.h"
#include "backend/registry/registry.h"

// Both come from src/runtime/CMakeLists.txt at configure time.
#ifndef GEMMARUN_VERSION
#define GEMMARUN_VERSION "unknown"
#endif
#ifndef GEMMARUN_GIT_REVISION
#define GEMMARUN_GIT_REVISION "unknown"
#endif

namespace gemmarun {

BuildInfo GetBuildInfo() {
  BuildInfo info;
  info.version = GEMMARUN_VERSION;
  info.git_revision = GEMMARUN_GIT_REVISION;
  info.backends = {"cpu"};
  // The registry knows: this file never sees the CUDA library's definitions.
  if (HasCudaBackend()) info.backends.push_back("cuda");
  info.cpu_target = cpu::SelectedTarget();
  return info;
}

}  // namespace gemmarun
