# Cross build for 64-bit ARM Linux with Debian's cross compiler and multiarch
# -dev packages (tools/test_arm64.sh installs them):
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# Libraries and CMake package files come from /usr/lib/aarch64-linux-gnu;
# header-only packages (nlohmann-json, CLI11, stb) are shared with the host.
# Tests run under qemu-user: gtest_discover_tests and ctest go through
# CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

find_program(GR_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
# qemu's CPU: "max" has NEON dot product and i8mm; SVE is off by default because
# emulating it is slow enough (Highway's four SVE targets in every per-target
# test) to take kernels_test past 10 minutes. -DGR_QEMU_CPU=max runs SVE too.
set(GR_QEMU_CPU "max,sve=off" CACHE STRING "qemu-user -cpu for running aarch64 tests")
if(GR_QEMU_AARCH64)
  # No -L prefix: the multiarch libc6:arm64 (a dependency of libhwy1:arm64)
  # provides /lib/ld-linux-aarch64.so.1; with -L /usr/aarch64-linux-gnu a golden
  # test ran 5x slower here.
  set(CMAKE_CROSSCOMPILING_EMULATOR "${GR_QEMU_AARCH64};-cpu;${GR_QEMU_CPU}")
endif()

# Search the host's root for packages, but only the aarch64 multiarch library folder.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
