#!/usr/bin/env bash
# Every GPU check of the CUDA backend in one run, for a machine with a GPU and
# binaries built elsewhere: the CUDA op tests, the engine tests (each fixture
# through VerifyFixture on cuda), `gemmarun verify --device cuda` on each
# fixture, a random-weight Gemma 3 270M (real shapes, tools/make_random_model.py)
# decoded greedily on the CPU and on the GPU (the ids must agree), and bench on
# it, one sequence and batched (--big: a random Gemma 2 2B, bf16 and q4_0;
# --quant: the 270M in q8_0/q4_0/q5_0, CPU against GPU). Writes cuda_check.log and JSON
# files to OUT_DIR.
#
#   tools/cuda_check.sh BIN_DIR DATA_DIR OUT_DIR [--big | --quant]
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
# Prints how far two `generate --json` outputs agree.
compare_ids() {
  python3 - "$1" "$2" >>"$log" 2>&1 <<'PY'
import json, sys
cpu, cuda = (json.load(open(p)) for p in sys.argv[1:3])
a, b = cpu["tokens"], cuda["tokens"]
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"greedy ids: cpu {len(a)}, cuda {len(b)}, identical prefix {same}: {'EQUAL' if a == b else 'DIFFER'}")
PY
  tail -1 "$log"
}
compare_ids "$OUT/generate_cpu.json" "$OUT/generate_cuda.json"
# Random weights make greedy text repetitive (a weak check), so the logits of a
# 1024-token window (past the 512-token sliding window, in 256-token prefill
# chunks) are compared value by value: CPU against GPU.
compare_logits() {  # cpu.f32 cuda.f32 vocab
  python3 - "$@" >>"$log" 2>&1 <<'PY'
import sys
import numpy as np
a, b = (np.fromfile(p, dtype=np.float32) for p in sys.argv[1:3])
vocab = int(sys.argv[3])
diff, top = float(np.abs(a - b).max()), float(np.abs(a).max())
agree = float(np.mean(a.reshape(-1, vocab).argmax(1) == b.reshape(-1, vocab).argmax(1)))
print(f"logits cpu vs cuda: {a.size // vocab} rows, max|diff| {diff:.3g}, max|logit| {top:.3g}, "
      f"relative {diff / max(1.0, top):.3g}, argmax agreement {agree:.4f}")
PY
  tail -1 "$log"
}
python3 -c "import random; random.seed(1); print(' '.join(str(random.randrange(3, 262144)) for _ in range(1100)))" >/tmp/ids.txt
logits_of() {  # model device file [flags...]
  local m=$1 d=$2 f=$3
  shift 3
  run "$BIN/gemmarun" perplexity -m "$m" --ids /tmp/ids.txt -c 1024 --max-windows 1 --device "$d" --save-logits "$f" "$@"
}
for cache in f32 f16; do
  logits_of "$model" cpu /tmp/logits_cpu.f32 --matmul-precision f32 --cache-type $cache
  logits_of "$model" cuda /tmp/logits_cuda.f32 --matmul-precision f32 --cache-type $cache
  echo "cache $cache:" >>"$log"
  compare_logits /tmp/logits_cpu.f32 /tmp/logits_cuda.f32 262144
done
run "$BIN/gemmarun" bench -m "$model" --device cuda -p 512 -n 128 -r 3 --bandwidth-mib 0 --json
"$BIN/gemmarun" bench -m "$model" --device cuda -p 512 -n 128 -r 3 --bandwidth-mib 0 --json >"$OUT/bench_270m_cuda.json" 2>>"$log"
run "$BIN/gemmarun" bench -m "$model" --device cuda -p 128 -n 32 -r 1 --batch 1,4,16 --json
if [ "$BIG" = "--quant" ]; then
  # Quantized GEMV/GEMM and embeddings end to end. The CPU multiplies block-
  # quantized weights with int8-quantized activations, the GPU with f32 ones, so
  # random weights (small top-2 margins) may part after a while: the prefix is
  # reported, not required.
  bare=/tmp/gemma3-270m-random-bare
  mkdir -p "$bare" && cp "$model/config.json" "$model/model.safetensors" "$bare/"
  for type in q8_0 q4_0 q5_0; do
    step "random gemma-3-270m in $type: greedy ids on cpu and cuda, bench on cuda"
    run "$BIN/gemmarun" quantize -m "$bare" --type "$type" -o "/tmp/g3-$type.gguf"
    for device in cpu cuda; do
      "$BIN/gemmarun" generate -m "/tmp/g3-$type.gguf" --ids 2,818,5279,529,506,17622,3819,6343 -n 64 --ignore-eos \
        --json --device "$device" -c 1024 >"/tmp/gen_${type}_$device.json" 2>>"$log"
    done
    compare_ids "/tmp/gen_${type}_cpu.json" "/tmp/gen_${type}_cuda.json"
    logits_of "/tmp/g3-$type.gguf" cpu /tmp/logits_cpu.f32
    logits_of "/tmp/g3-$type.gguf" cuda /tmp/logits_cuda.f32
    compare_logits /tmp/logits_cpu.f32 /tmp/logits_cuda.f32 262144
    "$BIN/gemmarun" bench -m "/tmp/g3-$type.gguf" --device cuda -p 512 -n 128 -r 3 --json 2>>"$log" |
      python3 -c "import json,sys; j=json.load(sys.stdin); g=lambda k: j[k]['mean']; print('$type bench: decode %.1f tok/s %.1f GB/s, prefill %.0f tok/s' % (g('decode_tokens_per_second'), g('decode_gb_per_second'), g('prefill_tokens_per_second')))" >>"$log" 2>&1
    tail -1 "$log"
  done
fi
if [ "$BIG" = "--big" ]; then
  step "random-weight gemma-2-2b bench on cuda (bf16 weights)"
  big=/tmp/gemma2-2b-random
  run python3 "$REPO/tools/make_random_model.py" --shape gemma-2-2b --out "$big"
  "$BIN/gemmarun" bench -m "$big" --device cuda -p 512 -n 128 -r 3 --bandwidth-mib 0 --json >"$OUT/bench_2b_cuda.json" 2>>"$log"
  cat "$OUT/bench_2b_cuda.json" >>"$log"
  step "random gemma-2-2b in q4_0: bench on cuda"
  run "$BIN/gemmarun" quantize -m "$big" --type q4_0 -o /tmp/g2b-q4_0.gguf
  "$BIN/gemmarun" bench -m /tmp/g2b-q4_0.gguf --device cuda -p 512 -n 128 -r 3 --json >"$OUT/bench_2b_q4_0_cuda.json" 2>>"$log"
  cat "$OUT/bench_2b_q4_0_cuda.json" >>"$log"
fi
step "done"
