#!/usr/bin/env bash
# Resident memory of `gemmarun generate` for a short and a long generation,
# for RecurrentGemma (whose per-sequence state has a fixed size) and, for contrast,
# a Gemma-2-2B-shaped model (whose global layers' KV cache grows with every token
# and whose sliding layers grow until their 4096-token window is full).
#
# The models are random-weight checkpoints with the real widths, written by
# tools/make_random_model.py under $MODELS_DIR (GBs: never inside the repository).
# Decoding 8192 tokens through all 26 layers and a 256000-row LM head takes hours
# on a small CPU, so by default the depth is cut to LAYERS=3 (RecurrentGemma: 2
# recurrent + 1 local-attention layer, window 2048; Gemma 2: sliding, global,
# sliding) and the vocabulary to VOCAB=32768: enough to show whether the state
# grows, which is the point. LAYERS=0 VOCAB=0 keep the real model.
#
# Usage: bench/memory/measure_flat_memory.sh
#   env: GEMMARUN (binary, default build-rg/gemmarun, else build/gemmarun), MODELS_DIR (/tmp),
#        LAYERS (3), VOCAB (32768), SHORT (512), LONG (8192), CTX (9000; Gemma 2 is capped at its 8192 positions),
#        SHAPES ("recurrentgemma-2b gemma-2-2b"), THREADS (0 = physical cores)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${GEMMARUN:-}"
if [[ -z "$bin" ]]; then
  bin="$repo/build-rg/gemmarun"
  [[ -x "$bin" ]] || bin="$repo/build/gemmarun"
fi
models_dir="${MODELS_DIR:-/tmp}"
layers="${LAYERS:-3}"
vocab="${VOCAB:-32768}"
short="${SHORT:-512}"
long="${LONG:-8192}"
context="${CTX:-9000}"
shapes="${SHAPES:-recurrentgemma-2b gemma-2-2b}"
threads="${THREADS:-0}"

# Runs "$@" with its output in $log; prints "<peak RSS KiB> <decode RSS KiB> <wall s> <exit status>".
# Peak RSS is the kernel's high-water mark (getrusage of the child: the figure
# /usr/bin/time -v prints as "Maximum resident set size"). It is reached while the
# weights load (the file's pages + the copy the loader makes: ~2x the weights),
# which hides any growth smaller than the weights. So the resident size is also
# sampled every 50 ms once the first token is out (the log is no longer empty):
# "decode RSS" is the largest such sample, i.e. weights + state at the end.
measure() {
  python3 - "$@" <<'EOF'
import os, resource, subprocess, sys, time
log, cmd = sys.argv[1], sys.argv[2:]
start = time.time()
decode_kib = 0
with open(log, "w") as out:
    child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    while child.poll() is None:
        try:
            decoding = os.path.getsize(log) > 0
            with open(f"/proc/{child.pid}/status") as status:
                for line in status:
                    if decoding and line.startswith("VmRSS:"):
                        decode_kib = max(decode_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.05)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(peak_kib, decode_kib, f"{time.time() - start:.1f}", child.returncode)
EOF
}

printf '%-18s %6s %6s %6s %5s %13s %14s %7s  %s\n' model layers vocab tokens ctx "peak RSS MiB" "decode RSS MiB" "wall s" \
       "gemmarun summary"
for shape in $shapes; do
  dir="$models_dir/${shape}-l${layers}-v${vocab}"
  if [[ ! -f "$dir/model.safetensors" ]]; then
    python3 "$repo/tools/make_random_model.py" --shape "$shape" --layers "$layers" --vocab "$vocab" --out "$dir" >&2
  fi
  read -r real_layers real_vocab < <(python3 -c "import json,sys; c = json.load(open(sys.argv[1])); \
print(c['num_hidden_layers'], c['vocab_size'])" "$dir/config.json")
  # Gemma 2 caps positions at max_position_embeddings (8192); RecurrentGemma has no cap.
  max_ctx=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('max_position_embeddings', 1 << 30))" \
            "$dir/config.json")
  for n in $short $long; do
    # The same context for both lengths: only what is touched may differ.
    ctx=$(( context < max_ctx ? context : max_ctx ))
    (( n < ctx )) || n=$(( ctx - 1 ))  # <bos> + n tokens must fit
    log="$dir-n${n}.log"
    read -r peak_kib decode_kib seconds status < <(measure "$log" "$bin" generate -m "$dir" --ids 2 -n "$n" -c "$ctx" \
                                                          -t "$threads")
    summary=$(grep -o '\[[0-9]* prompt tokens.*\]' "$log" | tail -1 || true)
    [[ "$status" == 0 ]] || summary="FAILED (exit $status): $(tail -c 300 "$log")"
    printf '%-18s %6s %6s %6s %5s %13.1f %14.1f %7s  %s\n' "$shape" "$real_layers" "$real_vocab" "$n" "$ctx" \
           "$(awk -v k="$peak_kib" 'BEGIN {print k / 1024}')" "$(awk -v k="$decode_kib" 'BEGIN {print k / 1024}')" \
           "$seconds" "$summary"
  done
done
