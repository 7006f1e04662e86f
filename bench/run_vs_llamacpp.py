#!/usr/bin/env python3
"""gemmarun vs llama.cpp on a Gemma-2B-shaped random-weight model, same files, same run.

Builds a random-weight HF checkpoint with Gemma 1 2B's shapes (vocab 256000,
hidden 2048, 18 layers, 8 query heads sharing one KV head, head_dim 256,
intermediate 16384) and the real Gemma vocabulary (tests/data/tokenizer/gemma),
converts it with `gemmarun quantize` to one GGUF per type (F16, BF16, Q8_0,
Q4_0), then on each file runs

  * `gemmarun bench -m FILE -p P -n N -t T --reps R --json`; on the BF16 file
    a second time with `--matmul-precision f32` (exact f32 products; the
    default rounds the activations to bf16 for bf16 weights, which is
    llama.cpp's arithmetic), and
  * llama.cpp (through llama-cpp-python's C API, in a fresh process per file)
    measuring what llama-bench measures: ppP = one llama_decode of P random
    tokens, tgN = N single-token llama_decode calls from an empty cache, a
    warm-up of each first, R timed repetitions,

and prints one markdown table (mean ± sd of tokens/s, the ratio gemmarun /
llama.cpp, decode GB/s = weight bytes x tokens/s), which it also writes to
bench/RESULTS.md (--results to change, --no-results to skip). Both BF16 rows
are divided by the same llama.cpp measurement.

--rounds K repeats those runs K times per file and pools the repetitions
(K x R values per engine and test). The order alternates from one round to the
next (gemmarun first, then llama.cpp first, ...), so a memory bandwidth that
drifts over minutes, as on these VMs, weighs on both engines alike instead of
skewing the ratio.

llama.cpp loads without mmap by default (--llamacpp-mmap to change): on these
VMs mapped weights touched once per token get evicted by the kernel and decode
slows down over time (docs/design.md), and gemmarun copies weights into
anonymous memory too. Everything else is llama.cpp's default context setup
(flash attention "auto", n_batch = n_ubatch = P, weight repacking on).

Setup (llama-cpp-python builds llama.cpp from source: 10-30 minutes on 2 cores):
    python3 -m venv /tmp/venv-lcpp
    CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DGGML_NATIVE=ON" \\
        /tmp/venv-lcpp/bin/pip install numpy llama-cpp-python

Usage (run it with the venv's python: it needs numpy and llama_cpp):
    /tmp/venv-lcpp/bin/python bench/run_vs_llamacpp.py [--gemmarun build/gemmarun]
        [--types f16,bf16,q8_0,q4_0] [-p 512] [-n 128] [-t 2] [--reps 3] [--rounds 1]
        [--workdir /tmp/gemmarun-bench] [--rebuild-models] [--json]

The model files (~5 GB HF folder, then 5 + 5 + 2.7 + 1.4 GB of GGUF) live in
--workdir and are reused by later runs; the HF folder is deleted once every
GGUF exists. Never point --workdir into the repository.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIR = os.path.join(REPO, "tests", "data", "tokenizer", "gemma")

# Gemma 1 2B (ref: google/gemma-2b config.json).
CONFIG = {
    "architectures": ["GemmaForCausalLM"],
    "model_type": "gemma",
    "vocab_size": 256000,
    "hidden_size": 2048,
    "intermediate_size": 16384,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "hidden_activation": "gelu_pytorch_tanh",
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}
TYPE_LABELS = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0", "q5_0": "Q5_0"}


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- model files

def gemma_tensors(c):
    """(name, shape, is_norm) of a Gemma 1 checkpoint, in the order gemmarun's loader lists them."""
    hidden, inter, head_dim = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q_dim, kv_dim = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
    out = [("model.embed_tokens.weight", (c["vocab_size"], hidden), False)]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out += [(p + "input_layernorm.weight", (hidden,), True),
                (p + "self_attn.q_proj.weight", (q_dim, hidden), False),
                (p + "self_attn.k_proj.weight", (kv_dim, hidden), False),
                (p + "self_attn.v_proj.weight", (kv_dim, hidden), False),
                (p + "self_attn.o_proj.weight", (hidden, q_dim), False),
                (p + "post_attention_layernorm.weight", (hidden,), True),
                (p + "mlp.gate_proj.weight", (inter, hidden), False),
                (p + "mlp.up_proj.weight", (inter, hidden), False),
                (p + "mlp.down_proj.weight", (hidden, inter), False)]
    out.append(("model.norm.weight", (hidden,), True))
    return out


def write_random_checkpoint(folder, seed):
    """config.json + model.safetensors (bf16, N(0, 0.02) matrices, zero norms) + the Gemma tokenizer.

    Drawing 2.5 billion normals would take minutes; tensors are instead cut at
    random offsets from a 64 Mi-value pool of them: the values are as random as
    speed measurements need (no structure a kernel could exploit).
    """
    import numpy as np
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(folder, name))
    tensors = gemma_tensors(CONFIG)
    header, offset = {}, 0
    for name, shape, _ in tensors:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(1 << 26, dtype=np.float32) * np.float32(0.02)
    bits = values.view(np.uint32)
    pool = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    pool = np.concatenate([pool, pool])  # any slice of up to 64 Mi values starting in the first half
    path = os.path.join(folder, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, is_norm in tensors:
            count = int(np.prod(shape))
            if is_norm:
                f.write(np.zeros(count, dtype=np.uint16).tobytes())  # Gemma scales by 1 + w
                continue
            for begin in range(0, count, 1 << 26):
                n = min(1 << 26, count - begin)
                start = int(rng.integers(0, 1 << 26))
                f.write(pool[start:start + n].tobytes())
    os.replace(path + ".tmp", path)
    return offset


def make_models(args, types):
    os.makedirs(args.workdir, exist_ok=True)
    files = {t: os.path.join(args.workdir, "gemma-2b-shape-random-%s.gguf" % t) for t in types}
    missing = [t for t in types if args.rebuild_models or not os.path.exists(files[t])]
    if not missing:
        return files
    folder = os.path.join(args.workdir, "gemma-2b-shape-random-hf")
    if args.rebuild_models or not os.path.exists(os.path.join(folder, "model.safetensors")):
        free = shutil.disk_usage(args.workdir).free
        if free < 20e9:
            sys.exit("error: %s has %.1f GB free; the models need about 20 GB" % (args.workdir, free / 1e9))
        t0 = time.time()
        size = write_random_checkpoint(folder, args.seed)
        log("wrote %s (%.1f GB, %.0f s)" % (folder, size / 1e9, time.time() - t0))
    for t in missing:
        t0 = time.time()
        run([args.gemmarun, "quantize", "-m", folder, "--type", t, "-o", files[t], "--name", "gemma-2b-shape-random"])
        log("wrote %s (%.1f GB, %.0f s)" % (files[t], os.path.getsize(files[t]) / 1e9, time.time() - t0))
    if not args.keep_hf:
        shutil.rmtree(folder, ignore_errors=True)
    return files


# ----------------------------------------------------------------------------- engines

def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def bench_gemmarun(args, path, matmul_precision=""):
    cmd = [args.gemmarun, "bench", "-m", path, "-p", str(args.prompt), "-n", str(args.gen), "-t",
           str(args.threads), "--reps", str(args.reps), "--seed", str(args.seed), "--json"]
    if matmul_precision:
        cmd += ["--matmul-precision", matmul_precision]
    j = json.loads(run(cmd))
    return {
        "pp": (j["prefill_tokens_per_second"] or {}).get("values", []),
        "tg": (j["decode_tokens_per_second"] or {}).get("values", []),
        "weight_bytes": j["weight_bytes"],
        "peak_rss_bytes": j["peak_rss_bytes"],
        "bandwidth_gbs": j["memory_bandwidth_gb_per_second"],
        "tg_bandwidth": (j.get("memory_bandwidth") or {}).get("values", []),
        "tg_bandwidth_after": (j.get("memory_bandwidth_after") or {}).get("values", []),
        "backend": j["backend"],
        "matmul_precision": j.get("matmul_precision", matmul_precision),
        "load_seconds": j["load_seconds"],
    }


def pool(runs):
    """One engine's runs of one file over --rounds, as a single result: the repetitions of every
    round together; peak RSS the largest; bandwidth and load time the means (each round's kept)."""
    first = runs[0]
    out = dict(first)
    out["pp"] = [v for r in runs for v in r["pp"]]
    out["tg"] = [v for r in runs for v in r["tg"]]
    out["tg_bandwidth"] = [v for r in runs for v in r.get("tg_bandwidth", [])]
    out["tg_bandwidth_after"] = [v for r in runs for v in r.get("tg_bandwidth_after", [])]
    out["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    out["load_seconds"] = mean_sd([r["load_seconds"] for r in runs])[0]
    out["rounds"] = len(runs)
    if "bandwidth_gbs" in first:
        values = [r["bandwidth_gbs"] for r in runs if r.get("bandwidth_gbs")]
        out["bandwidth_gbs"] = mean_sd(values)[0] if values else None
        out["bandwidth_gbs_values"] = values
    return out


def variants(t):
    """gemmarun's runs of a file of type t: (--matmul-precision, "" for the default; table label)."""
    label = TYPE_LABELS.get(t, t)
    if t == "bf16":
        return [("", label), ("f32", label + " (exact f32)")]
    return [("", label)]


def bench_file(args, t, path):
    """Table rows of one file: every gemmarun variant against one pooled llama.cpp measurement.

    Each round runs every variant and llama.cpp once, in an order reversed every other round
    (A B C, C B A, ...): under a drift that is linear in time each engine's mean then sits at the
    same point of it, so the ratio is not skewed by which engine happened to run later.
    """
    jobs = [("gemmarun", precision) for precision, _ in variants(t)] + [("llamacpp", None)]
    results = {job: [] for job in jobs}
    for round_index in range(args.rounds):
        order = jobs if round_index % 2 == 0 else jobs[::-1]
        for job in order:
            engine, precision = job
            what = "llama.cpp" if engine == "llamacpp" else "gemmarun bench" + (
                " --matmul-precision " + precision if precision else "")
            log("%s: %s (round %d of %d)" % (t, what, round_index + 1, args.rounds))
            if engine == "llamacpp":
                results[job].append(bench_llamacpp(args, path))
            else:
                results[job].append(bench_gemmarun(args, path, precision))
    theirs = pool(results[("llamacpp", None)])
    rows = []
    for precision, label in variants(t):
        ours = pool(results[("gemmarun", precision)])
        rows.append({"type": t, "label": label, "matmul_precision": precision, "file": path,
                     "file_bytes": os.path.getsize(path), "gemmarun": ours, "llamacpp": theirs})
        log("%s: pp %.1f vs %.1f, tg %.2f vs %.2f tokens/s" % (
            label, mean_sd(ours["pp"])[0], mean_sd(theirs["pp"])[0], mean_sd(ours["tg"])[0],
            mean_sd(theirs["tg"])[0]))
    return rows


def bench_llamacpp(args, path):
    """Runs this script's --llamacpp-worker mode in a fresh process (its own memory, its own peak RSS)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--llamacpp-worker", path, "-p", str(args.prompt), "-n",
           str(args.gen), "-t", str(args.threads), "--reps", str(args.reps), "--seed", str(args.seed),
           "--gemmarun", args.gemmarun]
    if args.llamacpp_mmap:
        cmd.append("--llamacpp-mmap")
    return json.loads(run(cmd))


def llamacpp_worker(args):
    """llama-bench's test_prompt / test_gen through the C API (ref: llama.cpp tools/llama-bench/llama-bench.cpp)."""
    import ctypes
    import random
    import llama_cpp as L

    def quiet(level, text, user_data):
        pass
    log_callback = L.llama_log_callback(quiet)
    L.llama_log_set(log_callback, ctypes.c_void_p())
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.load_mode = L.LLAMA_LOAD_MODE_MMAP if args.llamacpp_mmap else L.LLAMA_LOAD_MODE_NONE
    t0 = time.time()
    model = L.llama_model_load_from_file(args.llamacpp_worker.encode(), mparams)
    if not model:
        raise RuntimeError("llama.cpp could not load " + args.llamacpp_worker)
    load_seconds = time.time() - t0
    cparams = L.llama_context_default_params()
    cparams.n_ctx = args.prompt + args.gen
    cparams.n_batch = max(args.prompt, 1)
    cparams.n_ubatch = max(args.prompt, 1)
    cparams.n_threads = args.threads
    cparams.n_threads_batch = args.threads
    ctx = L.llama_init_from_model(model, cparams)
    if not ctx:
        raise RuntimeError("llama.cpp could not create a context")
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    rng = random.Random(args.seed)

    def decode(tokens):
        array = (L.llama_token * len(tokens))(*tokens)
        if L.llama_decode(ctx, L.llama_batch_get_one(array, len(tokens))) != 0:
            raise RuntimeError("llama_decode failed")

    def test_prompt(n):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        tokens = [rng.randrange(n_vocab) for _ in range(n)]
        start = time.perf_counter()
        decode(tokens)
        L.llama_synchronize(ctx)
        return n / (time.perf_counter() - start)

    def test_gen(n):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        token = rng.randrange(n_vocab)
        start = time.perf_counter()
        for _ in range(n):
            decode([token])
            L.llama_synchronize(ctx)
            token = rng.randrange(n_vocab)
        return n / (time.perf_counter() - start)

    def read_bandwidth():
        """gemmarun's streaming-read test with the same threads, right before and right after a decode
        run, as gemmarun bench does around its own: each engine is judged against the memory of its moment."""
        out = subprocess.run([args.gemmarun, "bench", "--bandwidth-only", "-t", str(args.threads), "--reps", "1",
                              "--json"], capture_output=True, text=True, check=True).stdout
        return json.loads(out)["memory_bandwidth_gb_per_second"]

    # llama-bench's warm-up: one whole prompt, one generated token.
    if args.prompt > 0:
        test_prompt(args.prompt)
    if args.gen > 0:
        test_gen(1)
    pp, tg, tg_bandwidth, tg_bandwidth_after = [], [], [], []
    for _ in range(args.reps):
        if args.prompt > 0:
            pp.append(test_prompt(args.prompt))
        if args.gen > 0:
            tg_bandwidth.append(read_bandwidth())
            tg.append(test_gen(args.gen))
            tg_bandwidth_after.append(read_bandwidth())
    result = {
        "pp": pp,
        "tg": tg,
        "tg_bandwidth": tg_bandwidth,
        "tg_bandwidth_after": tg_bandwidth_after,
        "weight_bytes": int(L.llama_model_size(model)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "load_seconds": load_seconds,
        "system_info": L.llama_print_system_info().decode(),
        "version": getattr(L, "__version__", "?"),
    }
    L.llama_free(ctx)
    L.llama_model_free(model)
    print(json.dumps(result))


# ----------------------------------------------------------------------------- report

def mean_sd(values):
    if not values:
        return 0.0, 0.0
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def ratio(a, b):
    """a/b of two (mean, sd) pairs with first-order error propagation."""
    (ma, sa), (mb, sb) = a, b
    if ma <= 0 or mb <= 0:
        return 0.0, 0.0
    r = ma / mb
    return r, r * ((sa / ma) ** 2 + (sb / mb) ** 2) ** 0.5


def per_bandwidth(result):
    """Decode tokens/s per GB/s of read bandwidth: the mean of the measurements right before and right
    after each run (before alone for results that have no after)."""
    before, after = result.get("tg_bandwidth", []), result.get("tg_bandwidth_after", [])
    if len(before) != len(result["tg"]):
        return []
    if len(after) == len(before):
        before = [0.5 * (b + a) for b, a in zip(before, after)]
    return [tps / bw for tps, bw in zip(result["tg"], before) if bw > 0]


def runs_by_mode(result, fast_gbs):
    """Decode tokens/s of each run, split by the VM's memory mode around it: "fast" when the bandwidth
    measured right before and right after the run are both at least fast_gbs, "slow" when both are below.
    Runs with one measurement on each side changed mode midway and are left out. None without both."""
    before, after = result.get("tg_bandwidth", []), result.get("tg_bandwidth_after", [])
    if not result["tg"] or len(before) != len(result["tg"]) or len(after) != len(before):
        return None
    modes = {"slow": [], "fast": [], "changed": []}
    for tps, b, a in zip(result["tg"], before, after):
        if (b >= fast_gbs) != (a >= fast_gbs):
            modes["changed"].append(tps)
        else:
            modes["fast" if b >= fast_gbs else "slow"].append(tps)
    return modes


def mode_table(args, rows):
    """Decode by memory mode: the ratio where both engines met the same memory."""
    lines = [
        "| type | memory mode | gemmarun tokens/s (runs) | llama.cpp tokens/s (runs) | gemmarun / llama.cpp |",
        "| ---- | ----------- | -----------------------: | ------------------------: | -------------------: |",
    ]
    changed = 0
    for row in rows:
        ours, theirs = runs_by_mode(row["gemmarun"], args.fast_gbs), runs_by_mode(row["llamacpp"], args.fast_gbs)
        if ours is None or theirs is None:
            continue
        changed += len(ours["changed"])
        for mode in ("slow", "fast"):
            a, b = ours[mode], theirs[mode]
            if not a and not b:
                continue
            cell = lambda v: "%.2f ± %.2f (%d)" % (mean_sd(v) + (len(v),)) if v else "none"
            r = "**%.2f** ± %.2f" % ratio(mean_sd(a), mean_sd(b)) if a and b else ""
            lines.append("| %s | %s | %s | %s | %s |" % (row_label(row), mode, cell(a), cell(b), r))
    if len(lines) == 2:
        return ""
    theirs_changed = sum(len(m["changed"]) for m in (runs_by_mode(r["llamacpp"], args.fast_gbs)
                                                     for r in {id(r["llamacpp"]): r for r in rows}.values()) if m)
    return ("\nDecode by memory mode: each run put in the mode measured right before and right after it (fast: "
            "both at least %.0f GB/s, slow: both below; %d of gemmarun's and %d of llama.cpp's runs changed mode "
            "midway and are left out here).\n\n" % (args.fast_gbs, changed, theirs_changed) + "\n".join(lines) + "\n")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+local changes" if dirty else "")
    except OSError:
        return "unknown"


def row_label(row):
    return row.get("label") or TYPE_LABELS.get(row["type"], row["type"])


def table(args, rows):
    lines = [
        "| type | GB | test | gemmarun tokens/s | llama.cpp tokens/s | gemmarun / llama.cpp "
        "| at equal bandwidth | gemmarun GB/s | llama.cpp GB/s |",
        "| ---- | --: | ---- | ----------------: | -----------------: | -------------------: "
        "| -----------------: | ------------: | -------------: |",
    ]
    for row in rows:
        ours, theirs = row["gemmarun"], row["llamacpp"]
        for test, n in (("pp", args.prompt), ("tg", args.gen)):
            if n == 0:
                continue
            a, b = mean_sd(ours[test]), mean_sd(theirs[test])
            r = ratio(a, b)
            gbs = ""
            if test == "tg":
                ga = mean_sd([v * ours["weight_bytes"] / 1e9 for v in ours[test]])
                gb = mean_sd([v * theirs["weight_bytes"] / 1e9 for v in theirs[test]])
                pa, pb = per_bandwidth(ours), per_bandwidth(theirs)
                normalized = "**%.2f** ± %.2f " % ratio(mean_sd(pa), mean_sd(pb)) if pa and pb else ""
                gbs = "| %s| %.1f ± %.1f | %.1f ± %.1f " % (normalized, ga[0], ga[1], gb[0], gb[1])
            else:
                gbs = "| | | "
            lines.append("| %s | %.2f | %s%d | %.2f ± %.2f | %.2f ± %.2f | **%.2f** ± %.2f %s|" % (
                row_label(row), row["file_bytes"] / 1e9, test, n, a[0], a[1], b[0], b[1], r[0], r[1], gbs))
    return "\n".join(lines)


def report(args, rows, seconds):
    ours_bw = mean_sd([v for r in rows for v in r["gemmarun"].get("tg_bandwidth", [])])
    theirs_bw = mean_sd([v for r in {id(r["llamacpp"]): r["llamacpp"] for r in rows}.values()
                         for v in r.get("tg_bandwidth", [])])
    lcpp = rows[0]["llamacpp"] if rows else {}
    head = [
        "Gemma-2B-shaped random-weight model (vocab 256000, hidden 2048, 18 layers, 8 heads / 1 KV head, "
        "head_dim 256, intermediate 16384), files written by `gemmarun quantize`.",
        "",
        "- date: %s; gemmarun %s; llama-cpp-python %s" % (
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), git_revision(), lcpp.get("version", "?")),
        "- machine: %s, %d threads for both engines; gemmarun backend: %s" % (
            cpu_name(), args.threads, rows[0]["gemmarun"]["backend"] if rows else "?"),
        "- llama.cpp: %s; load mode %s" % (lcpp.get("system_info", "?").strip(" |"),
                                           "mmap" if args.llamacpp_mmap else "none (no mmap)"),
        "- pp%d / tg%d, %s after a warm-up, mean ± sd (sample); ratio sd by error propagation" % (
            args.prompt, args.gen, "%d repetitions" % args.reps if args.rounds == 1 else
            "%d rounds x %d repetitions pooled (engine order alternating between rounds)" % (
                args.rounds, args.reps)),
        "- memory read bandwidth (%d threads, 1 GiB streaming read, before each decode run): %.1f ± %.1f GB/s "
        "before gemmarun's runs, %.1f ± %.1f before llama.cpp's" % (
            args.threads, ours_bw[0], ours_bw[1], theirs_bw[0], theirs_bw[1]),
        "- GB/s = weight bytes x decode tokens/s (every weight is read once per token)",
        "- \"at equal bandwidth\": the decode ratio of tokens/s per GB/s of read bandwidth, each decode run "
        "divided by the mean of two measurements (`gemmarun bench --bandwidth-only`, same threads) taken right "
        "before and right after it, for llama.cpp's runs as for gemmarun's: it removes the machine's bandwidth "
        "drift between runs",
    ]
    if any(r.get("matmul_precision") == "f32" for r in rows):
        head.append("- \"(exact f32)\": gemmarun with `--matmul-precision f32` (the stored bf16 weights times f32 "
                    "activations); the other rows use gemmarun's default, which rounds the activations to bf16 for "
                    "bf16 weights, as llama.cpp does; both BF16 rows are compared with the same llama.cpp runs")
    if args.note:
        head.append("- note: " + args.note)
    head.append("")
    text = "\n".join(head) + "\n" + table(args, rows) + "\n"
    if args.gen > 0:
        text += mode_table(args, rows)
    peaks = ", ".join("%s %.2f / %.2f GiB" % (row_label(r),
                                              r["gemmarun"]["peak_rss_bytes"] / 2**30,
                                              r["llamacpp"]["peak_rss_bytes"] / 2**30) for r in rows)
    text += ("\nPeak RSS gemmarun / llama.cpp: %s (gemmarun's peak includes the file's pages, mapped while "
             "the weights are copied out).\n" % peaks)
    if seconds is not None:
        text += "\nWhole run: %.0f s (`%s`).\n" % (seconds, shlex.join(["bench/run_vs_llamacpp.py"] + sys.argv[1:]))
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring for setup.")
    parser.add_argument("--gemmarun", default=os.path.join(REPO, "build", "gemmarun"), help="gemmarun binary")
    parser.add_argument("--types", default="f16,bf16,q8_0,q4_0", help="comma-separated: f16,bf16,q8_0,q4_0,q5_0,f32")
    parser.add_argument("-p", "--prompt", type=int, default=512, help="prompt tokens (ppP)")
    parser.add_argument("-n", "--gen", type=int, default=128, help="generated tokens (tgN)")
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per engine run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each engine per file, order alternating, repetitions pooled")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/gemmarun-bench", help="where the model files go (GBs)")
    parser.add_argument("--rebuild-models", action="store_true", help="rewrite the model files even if present")
    parser.add_argument("--keep-hf", action="store_true", help="keep the HF folder after converting")
    parser.add_argument("--llamacpp-mmap", action="store_true", help="let llama.cpp mmap the file")
    parser.add_argument("--results", default=os.path.join(REPO, "bench", "RESULTS.md"))
    parser.add_argument("--no-results", action="store_true", help="print only; do not write --results")
    parser.add_argument("--note", help="a line to add to the report (e.g. what was special about this run)")
    parser.add_argument("--json", action="store_true", help="also print every measurement as JSON")
    parser.add_argument("--fast-gbs", type=float, default=45.0,
                        help="read bandwidth (GB/s) from which a decode run counts as in the fast memory mode")
    parser.add_argument("--from-json", metavar="FILE",
                        help="no runs: print the report of the rows a --json run printed (saved to FILE)")
    parser.add_argument("--llamacpp-worker", metavar="GGUF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.llamacpp_worker:
        return llamacpp_worker(args)
    if args.from_json:
        with open(args.from_json) as f:
            rows = json.load(f)
        args.note = args.note or "rendered from %s; the date and revision above are this rendering's" % args.from_json
        print(report(args, rows, None))
        return 0

    if args.rounds < 1 or args.reps < 1:
        parser.error("--rounds and --reps must be at least 1")
    types = [t.strip().lower() for t in args.types.split(",") if t.strip()]
    for t in types:
        if t not in TYPE_LABELS:
            parser.error("unknown type %s (known: %s)" % (t, ", ".join(TYPE_LABELS)))
    if not os.access(args.gemmarun, os.X_OK):
        parser.error("%s is not an executable gemmarun (build it, or pass --gemmarun)" % args.gemmarun)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("error: run this with a python that has llama_cpp (see the setup in the docstring)")
    start = time.time()
    try:
        files = make_models(args, types)
        rows = []
        for t in types:
            rows += bench_file(args, t, files[t])
    except RuntimeError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    text = report(args, rows, time.time() - start)
    print(text)
    if args.json:
        print(json.dumps(rows, indent=2))
    if not args.no_results:
        with open(args.results, "w") as f:
            f.write("# gemmarun vs llama.cpp (CPU)\n\nWritten by `bench/run_vs_llamacpp.py`; see bench/README.md.\n\n")
            f.write(text)
        log("wrote %s" % args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
