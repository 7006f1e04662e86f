#!/usr/bin/env bash
# Every GPU check of the CUDA backend in one run, for a machine with a GPU and
# binaries built elsewhere: the CUDA op tests, the engine tests (each fixture
# through VerifyFixture on cuda), `gemmarun verify --device cuda` on each
# fixture, a random-weight Gemma 3 270M (real shapes, tools/make_random_model.py)
# decoded greedily on the CPU and on the GPU (the ids must agree), and bench on
# it, one sequence and batched (and a random Gemma 2 2B with --big). Writes cuda_check.log and JSON
# files to OUT_DIR.
#
#   tools/cuda_check.sh BIN_DIR DATA_DIR OUT_DIR [--big]
#
# BIN_DIR holds gemmarun, cuda_ops_test and cuda_engine_test; DATA_DIR is tests/data.
set -u
BIN=$1 DATA=$2 OUT=$3 BIG=${4:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
log=$OUT/cuda_check.log
step() { echo "=== $*" | tee -a "$log"; }
run() {
  echo "\$ $*" >>"$log"
  local start=$SECONDS
  "$@" >>"$log" 2>&1
  local rc=$?
  echo "rc=$rc ($((SECONDS - start)) s)" | tee -a "$log"
  return $rc
}

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$log" 2>&1
step "cuda op tests"
run "$BIN/cuda_ops_test" --gtest_brief=1
step "engine tests (every fixture on cuda, tolerance 1e-4)"
GEMMARUN_TEST_DATA=$DATA run "$BIN/cuda_engine_test"
step "gemmarun verify --device cuda --tol 1e-4"
for fixture in gemma1_mqa gemma1_mha gemma1_mqa_bf16 gemma2 gemma2_v5config gemma3 recurrentgemma paligemma; do
  run "$BIN/gemmarun" verify --device cuda --tol 1e-4 "$DATA/$fixture"
done
"$BIN/gemmarun" verify --device cuda --tol 1e-4 --json "$DATA/gemma3" >"$OUT/verify_gemma3_cuda.json" 2>>"$log"

step "random-weight gemma-3-270m: greedy ids on cpu and cuda (f32 products), then bench"
model=/tmp/gemma3-270m-random
run python3 "$REPO/tools/make_random_model.py" --shape gemma-3-270m --out "$model"
cp "$DATA/tokenizer/gemma3/tokenizer.json" "$model/"
prompt="The history of the printing press began"
for device in cpu cuda; do
  run "$BIN/gemmarun" generate -m "$model" -p "$prompt" -n 64 --ignore-eos --matmul-precision f32 --json \
    --device "$device" -c 1024
  "$BIN/gemmarun" generate -m "$model" -p "$prompt" -n 64 --ignore-eos --matmul-precision f32 --json \
    --device "$device" -c 1024 >"$OUT/generate_$device.json" 2>>"$log"
done
python3 - "$OUT/generate_cpu.json" "$OUT/generate_cuda.json" >>"$log" 2>&1 <<'PY'
import json, sys
cpu, cuda = (json.load(open(p)) for p in sys.argv[1:3])
a, b = cpu["tokens"], cuda["tokens"]
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"greedy ids: cpu {len(a)}, cuda {len(b)}, identical prefix {same}: {'EQUAL' if a == b else 'DIFFER'}")
PY
tail -1 "$log"
run "$BIN/gemmarun" bench -m "$model" --device cuda -p 512 -n 128 -r 3 --bandwidth-mib 0 --json
"$BIN/gemmarun" bench -m "$model" --device cuda -p 512 -n 128 -r 3 --bandwidth-mib 0 --json >"$OUT/bench_270m_cuda.json" 2>>"$log"
run "$BIN/gemmarun" bench -m "$model" --device cuda -p 128 -n 32 -r 1 --batch 1,4,16 --json
if [ "$BIG" = "--big" ]; then
  step "random-weight gemma-2-2b bench on cuda (bf16 weights)"
  big=/tmp/gemma2-2b-random
  run python3 "$REPO/tools/make_random_model.py" --shape gemma-2-2b --out "$big"
  "$BIN/gemmarun" bench -m "$big" --device cuda -p 512 -n 128 -r 3 --bandwidth-mib 0 --json >"$OUT/bench_2b_cuda.json" 2>>"$log"
  cat "$OUT/bench_2b_cuda.json" >>"$log"
fi
step "done"
