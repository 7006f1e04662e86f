#include "gemmarun/version.h"

#include "backend/cpu/kernels.h"

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
#ifdef GEMMARUN_HAS_CUDA
  info.backends.push_back("cuda");
#endif
  info.cpu_target = cpu::SelectedTarget();
  return info;
}

}  // namespace gemmarun
