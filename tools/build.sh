#!/usr/bin/env bash
# Installs the Debian packages gemmarun builds with (when missing and we are root)
# and builds a Release tree in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES="build-essential cmake pkg-config libhwy-dev nlohmann-json3-dev libcli11-dev libstb-dev libedit-dev tmux
          libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev python3 python3-pip
          clang libclang-rt-14-dev"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $PACKAGES 2>/dev/null | grep -v "install ok installed" | cut -d' ' -f1 || true)
for p in $PACKAGES; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$(echo $missing)" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "missing packages: $missing (run: sudo apt-get install $missing)" >&2
    exit 1
  fi
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
