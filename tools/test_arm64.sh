#!/usr/bin/env bash
# Cross-builds gemmarun's fast tests for 64-bit ARM Linux (Debian's aarch64
# cross compiler and multiarch -dev packages, cmake/aarch64-linux-gnu.cmake)
# and runs them under qemu-user with `-cpu max,sve=off` (NEON, dot product,
# i8mm; Highway's SVE targets are compiled but only run with GR_QEMU_CPU=max,
# which emulates slowly enough to take the per-target tests past the CI budget).
#
#   bash tools/test_arm64.sh             # labels unit|golden
#   ARM64_LABELS=unit bash tools/test_arm64.sh
#   GR_QEMU_CPU=max bash tools/test_arm64.sh   # SVE/SVE2 too (slow)
#
# Builds only the test executables labelled with ARM64_LABELS (read from
# tests/*/CMakeLists.txt, so new tests are picked up) in build-arm64/.
set -euo pipefail
cd "$(dirname "$0")/.."
labels="${ARM64_LABELS:-unit|golden}"
jobs=$(nproc)

PACKAGES="crossbuild-essential-arm64 qemu-user-static libhwy-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages:$missing (run as root: dpkg --add-architecture arm64; apt-get update; apt-get install$missing)" >&2
    exit 1
  fi
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build-arm64 -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DGR_QEMU_CPU="${GR_QEMU_CPU:-max,sve=off}" -DGEMMARUN_CUDA=OFF "${launcher[@]}" >/dev/null

# Test executables whose gr_add_test(...) carries one of the labels.
targets=$(python3 - "$labels" <<'PY'
import glob, re, sys
wanted = set(sys.argv[1].split("|"))
for path in sorted(glob.glob("tests/*/CMakeLists.txt")):
    if path.startswith("tests/cuda/"):  # built only with CUDA, which this build turns off
        continue
    text = re.sub(r"#[^\n]*", "", open(path).read())
    for name, body in re.findall(r"gr_add_test\(\s*(\w+)(.*?)\)", text, re.S):
        m = re.search(r"LABELS\s+([\w;\s]+)", body)
        if m and wanted & set(m.group(1).replace(";", " ").split()):
            print(name)
PY
)
if [ -z "$targets" ]; then
  echo "error: no test targets labelled $labels under tests/" >&2
  exit 1
fi
echo "arm64: building $(echo $targets | wc -w) test executables: $(echo $targets)"
# shellcheck disable=SC2086
cmake --build build-arm64 -j"$jobs" --target $targets
# The integer-kernel tests with 3 threads repeat the 1-thread ones (the
# threading is the same code on every architecture, tested natively) and take
# about a minute each under emulation.
exclude="${ARM64_EXCLUDE:-QuantMatMulTest.*threads3}"
(cd build-arm64 && ctest --output-on-failure -j"$jobs" -L "$labels" -E "$exclude" --timeout 900)
