#!/usr/bin/env bash
# The main job on a fresh machine: build gemmarun, fetch the default model if
# needed, and generate text from it. Extra arguments go to `gemmarun generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/gemmarun ] || bash tools/build.sh >&2
model=$(bash tools/fetch_default_model.sh)
if [ $# -eq 0 ]; then
  set -- -p "The history of the printing press began" -n 64
fi
exec ./build/gemmarun generate -m "$model" "$@"
