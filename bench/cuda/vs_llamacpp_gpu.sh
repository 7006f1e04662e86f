#!/usr/bin/env bash
# gemmarun on the GPU against llama.cpp CUDA, same machine, same run, same files
# (bench/RESULTS.md run 11): the CUDA op and engine tests, CPU-vs-GPU logits of
# a Gemma 3 270M-shaped model over 1024 tokens, then for the Gemma-2B-shaped
# random GGUFs of bench/run_vs_llamacpp.py (F16, BF16, Q8_0, Q4_0) two rounds of
# `gemmarun bench --device cuda` and `llama-bench -ngl 99 -fa 1` in alternating
# order (-p 512 -n 128 -r 3), and aggregate decode at 1/8/32/64 sequences
# against llama-batched-bench. Output: $OUT/log.txt, JSON in $OUT/results.tgz.
#
# Runs from the repository root of a GPU machine that has nvcc and cmake but
# not this project's packages. Prepare it here:
#   tools/gpu_carry.sh build .gpu          # the CUDA build, packed
#   mkdir -p .llama && tar czf .llama/llama.cpp.tar.gz -C <sdist>/vendor \
#     --exclude=llama.cpp/{build,docs,models,media,tests,examples,gguf-py,pocs} llama.cpp
# then there: OUT=/some/dir bash bench/cuda/vs_llamacpp_gpu.sh .gpu .llama/llama.cpp.tar.gz
# (about 7 minutes on an H200 machine with 16 cores, 4-5 of them building llama.cpp).
set -u
CARRY=$1 LLAMA_TARBALL=$2
mkdir -p /tmp/g && tar xJf "$CARRY/gpu.tar.xz" -C /tmp/g
export LD_LIBRARY_PATH=/tmp/g/lib PYTHONUNBUFFERED=1 B=/tmp/g/bin
for t in gemma gemma3; do
  [ -s tests/data/tokenizer/$t/tokenizer.json ] || xz -dc "$CARRY/tokenizers/$t.json.xz" > tests/data/tokenizer/$t/tokenizer.json
done
L=$OUT/log.txt; mkdir -p /tmp/j
T0=$SECONDS
say() { echo "[$((SECONDS - T0))s] $*" | tee -a $L; }
# llama.cpp CUDA build in the background (about 5 minutes on 16 cores)
mkdir -p /tmp/lc && tar xzf "$LLAMA_TARBALL" -C /tmp/lc
setsid bash -c 'cd /tmp/lc/llama.cpp && cmake -B b -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release > /tmp/lc/cfg.log 2>&1 && cmake --build b -j 14 --target llama-bench llama-batched-bench > /tmp/lc/build.log 2>&1; echo done > /tmp/lc/finished' &
$B/cuda_ops_test --gtest_brief=1 > $OUT/ops_test.txt 2>&1; say "ops: $(tail -1 $OUT/ops_test.txt)"; grep -A6 "Failure" $OUT/ops_test.txt | head -30
GEMMARUN_TEST_DATA=tests/data $B/cuda_engine_test --gtest_brief=1 > $OUT/engine_test.txt 2>&1; say "engine: $(grep -c '^\[       OK' $OUT/engine_test.txt) ok; $(tail -1 $OUT/engine_test.txt)"; grep -A6 "Failure" $OUT/engine_test.txt | head -30
python3 - <<'PY' 2>&1 | tail -1
import sys, types, time
sys.path.insert(0, "bench")
import run_vs_llamacpp as r
a = types.SimpleNamespace(workdir="/tmp/m", rebuild_models=False, seed=1, gemmarun='/tmp/g/bin/gemmarun', keep_hf=False)
t = time.time(); r.make_models(a, ["f16", "bf16", "q8_0", "q4_0"]); print("models %.0f s" % (time.time() - t))
PY
# the real-shape 270M: CPU and GPU logits over 1024 tokens (256-token chunks: GEMM attention, sliding window)
python3 tools/make_random_model.py --shape gemma-3-270m --out /tmp/r270 > /dev/null 2>&1 && cp tests/data/tokenizer/gemma3/tokenizer.json /tmp/r270/
python3 -c "import random; random.seed(1); print(' '.join(str(random.randrange(3, 262144)) for _ in range(1100)))" > /tmp/ids.txt
for d in cpu cuda; do $B/gemmarun perplexity -m /tmp/r270 --ids /tmp/ids.txt -c 1024 --max-windows 1 --device $d --matmul-precision f32 --save-logits /tmp/l_$d.f32 > /dev/null 2>>$L; done
python3 -c "
import numpy as np; a=np.fromfile('/tmp/l_cpu.f32',dtype=np.float32); b=np.fromfile('/tmp/l_cuda.f32',dtype=np.float32)
print('270m logits cpu vs cuda (f32): max|diff| %.3g of max|logit| %.3g, argmax agreement %.4f' % (abs(a-b).max(), abs(a).max(), (a.reshape(-1,262144).argmax(1)==b.reshape(-1,262144).argmax(1)).mean()))" | tee -a $L
say "waiting for llama.cpp"; while [ ! -f /tmp/lc/finished ]; do sleep 5; done; say "llama.cpp built: $(ls /tmp/lc/llama.cpp/b/bin/ | tr '\n' ' ')"; tail -3 /tmp/lc/build.log
LB=/tmp/lc/llama.cpp/b/bin
ours() { GEMMARUN_CUDA_GRAPH_STATS=1 $B/gemmarun bench -m $1 --device cuda -p 512 -n 128 -r 3 --json > /tmp/j/ours_$2.json 2>>$L; python3 -c "import json; j=json.load(open('/tmp/j/ours_$2.json')); d=j['decode_tokens_per_second']; p=j['prefill_tokens_per_second']; print('ours $2: decode %.1f +- %.1f, prefill %.0f +- %.0f' % (d['mean'], d['sd'], p['mean'], p['sd']))" | tee -a $L; }
theirs() { $LB/llama-bench -m $1 -ngl 99 -fa 1 -p 512 -n 128 -r 3 -o json > /tmp/j/llama_$2.json 2>>$L; python3 -c "
import json; j=json.load(open('/tmp/j/llama_$2.json'))
for r in j: print('llama $2: %s %.1f +- %.1f' % ('pp512' if r['n_prompt'] else 'tg128', r['avg_ts'], r['stddev_ts']))" | tee -a $L; }
for round in 1 2; do
i=$round
for t in f16 bf16 q8_0 q4_0; do
  f=/tmp/m/gemma-2b-shape-random-$t.gguf
  if [ $((i % 2)) = 0 ]; then ours $f ${t}_r$round; theirs $f ${t}_r$round; else theirs $f ${t}_r$round; ours $f ${t}_r$round; fi
  i=$((i + 1))
done
done
grep "cuda graphs" $L | tail -2; tar czf $OUT/results.tgz -C /tmp/j .
f=/tmp/m/gemma-2b-shape-random-f16.gguf
$B/gemmarun bench -m $f --device cuda --batch 1,8,32,64 -p 128 -n 128 -r 1 --json > /tmp/j/ours_batched.json 2>>$L
python3 -c "import json; j=json.load(open('/tmp/j/ours_batched.json')); print('ours batched f16:', [(b['batch'], round(b['decode']['mean'])) for b in j['batches']])" | tee -a $L
$LB/llama-batched-bench -m $f -ngl 99 -fa on -c 16384 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 1,8,32,64 2>>$L | grep "^|" | tee -a $L
say done
tar czf $OUT/results.tgz -C /tmp/j .
