#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang, ASan + UBSan) in build-fuzz/
# and runs each for a bounded time, starting from its seeds in tests/fuzz/corpus/.
# Fails on the first crash, leak, timeout or sanitizer report; the input that
# caused it is kept as build-fuzz/crashes/<fuzzer>/crash-* and named in the log.
#
#   tools/run_fuzzers.sh [SECONDS_EACH=30] [FUZZER ...]
#
# New inputs a run finds go to build-fuzz/corpus/<fuzzer>/ (never into the
# repository); copy the interesting ones to tests/fuzz/corpus/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
all=(gguf safetensors config tokenizer_json tokenizer_model gguf_vocab image chat_template request)
fuzzers=("${@:-${all[@]}}")
[[ $# -gt 0 ]] || fuzzers=("${all[@]}")

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMARUN_FUZZ=ON \
  -DGEMMARUN_SANITIZE=address,undefined -DGEMMARUN_TESTS=OFF -DGEMMARUN_CUDA=OFF "${launcher[@]}" >/dev/null
targets=()
for f in "${fuzzers[@]}"; do targets+=("fuzz_$f"); done
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TMPDIR=${TMPDIR:-/dev/shm}
[[ -w $TMPDIR ]] || export TMPDIR=/tmp
failed=()
for f in "${fuzzers[@]}"; do
  work=build-fuzz/corpus/$f crashes=build-fuzz/crashes/$f
  mkdir -p "$work" "$crashes"
  log=build-fuzz/fuzz_$f.log
  # Inputs that once crashed (tests/fuzz/regressions/<fuzzer>/) are replayed first, with the seeds.
  seeds=(tests/fuzz/corpus/$f)
  [[ -d tests/fuzz/regressions/$f ]] && seeds+=(tests/fuzz/regressions/$f)
  echo "== fuzz_$f for ${seconds}s"
  if build-fuzz/tests/fuzz/fuzz_"$f" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "${seeds[@]}" >"$log" 2>&1; then
    # "#123456 DONE cov: 1234 ft: 5678 corp: ..." is libFuzzer's closing status line.
    grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || tail -1 "$log"
  else
    echo "fuzz_$f FAILED (log: $log)" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -5 >&2 || tail -20 "$log" >&2
    failed+=("$f")
  fi
done
if ((${#failed[@]})); then
  echo "fuzzers that failed: ${failed[*]}" >&2
  exit 1
fi
echo "all ${#fuzzers[@]} fuzzers ran ${seconds}s each without a crash"
