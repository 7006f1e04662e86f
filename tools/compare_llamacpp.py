#!/usr/bin/env python3
"""Compare gemmarun's logits with llama.cpp's on the same GGUF and the same token ids.

Both engines are fed exactly the same ids: the text is tokenized once, with
gemmarun's tokenizer, and ids = [BOS] + the first N-1 text tokens go to both.
(llama.cpp's own tokenization of the text is compared as well and reported.)

Reported, as a markdown table:
  * tokenizer agreement (gemmarun vs llama.cpp `Llama.tokenize(add_bos=False, special=True)`)
  * top-1 agreement (%) of the N positions' logits
  * mean KL(llama.cpp || gemmarun) over the positions (softmax in float64)
  * max and mean |diff| of the logits, perplexity of the N-1 scored tokens in each engine
  * greedy continuations (32 tokens) of a few prompts in both engines, and whether they match
  * a noise floor: llama.cpp against itself with an f32 instead of its default f16 KV cache
    (same figures and greedy check), to tell our differences from llama.cpp's own rounding

Issue 7's bar: over >= 500 positions of real text, top-1 >= 95% and mean KL <= 0.02.

Setup (llama.cpp's Python binding builds llama.cpp from source; 10-30 minutes on 2 cores):
    python3 -m venv /tmp/venv-lcpp
    CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DGGML_NATIVE=ON" \\
        /tmp/venv-lcpp/bin/pip install numpy llama-cpp-python

Usage:
    /tmp/venv-lcpp/bin/python tools/compare_llamacpp.py MODEL.gguf TEXT_FILE [-n 512]
        [--gemmarun build/gemmarun] [--threads 2] [--prompt TEXT ...] [--greedy-tokens 32]
        [--ids-from gemmarun|llamacpp] [--no-noise-floor] [--keep DIR] [--json]

--ids-from llamacpp feeds llama.cpp's tokenization instead (it matches HF's on text with runs of
spaces, where gemmarun's GGUF tokenizer currently differs). gemmarun's ids come from
`gemmarun tokenize --json -m MODEL` when that accepts the model, else from
`gemmarun perplexity -f TEXT --save-ids` (the same GGUF tokenizer the engine uses).

Example (Gemma 3 270M, the GPL text that Debian ships):
    /tmp/venv-lcpp/bin/python tools/compare_llamacpp.py \\
        "$(bash tools/fetch_default_model.sh)" /usr/share/common-licenses/GPL-3 -n 512

Exit status: 0 when the bar is met (top-1 >= 95%, mean KL <= 0.02), 1 otherwise, 2 on errors.
Nothing is written outside a temporary folder (--keep DIR keeps the ids and logits there).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "The GNU General Public License is",
    "def fibonacci(n):",
]
TOP1_BAR = 95.0
KL_BAR = 0.02


def run(cmd, stdin_text=None):
    proc = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def our_tokenize(gemmarun, model, text, workdir):
    """gemmarun's ids for the text, no BOS. `tokenize --json` when the binary has it, else perplexity --save-ids."""
    try:
        out = run([gemmarun, "tokenize", "--json", "-m", model], stdin_text=text)
        return [int(i) for i in json.loads(out)["ids"]], "gemmarun tokenize"
    except (RuntimeError, ValueError, KeyError):
        pass
    text_path = os.path.join(workdir, "text.txt")
    ids_path = os.path.join(workdir, "text_ids_all.txt")
    with open(text_path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    run([gemmarun, "perplexity", "-m", model, "-f", text_path, "-c", "2", "--max-windows", "1", "-t", "1",
         "--save-ids", ids_path])
    with open(ids_path) as f:
        return [int(i) for i in f.read().split()], "gemmarun perplexity --save-ids"


def log_softmax64(rows):
    rows = rows.astype(np.float64)
    rows -= rows.max(axis=1, keepdims=True)
    return rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))


def compare_logits(ref, ours, ids, chunk=64):
    """ref, ours: [N, vocab] float32 logits at positions 0..N-1 of ids."""
    n = ref.shape[0]
    top1_ref = ref.argmax(axis=1)
    top1_ours = ours.argmax(axis=1)
    kl = np.empty(n)
    nll_ref = nll_ours = 0.0
    max_diff = 0.0
    sum_abs_diff = 0.0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lr = log_softmax64(ref[start:stop])
        lo = log_softmax64(ours[start:stop])
        kl[start:stop] = (np.exp(lr) * (lr - lo)).sum(axis=1)
        diff = np.abs(ref[start:stop].astype(np.float64) - ours[start:stop])
        max_diff = max(max_diff, float(diff.max()))
        sum_abs_diff += float(diff.sum())
        for t in range(start, stop):
            if t + 1 < len(ids):
                nll_ref -= lr[t - start, ids[t + 1]]
                nll_ours -= lo[t - start, ids[t + 1]]
    scored = min(n, len(ids) - 1)
    worst = int(kl.argmax())
    return {
        "positions": n,
        "top1_agreement_pct": 100.0 * float((top1_ref == top1_ours).mean()),
        "top1_disagreements": int((top1_ref != top1_ours).sum()),
        "mean_kl": float(kl.mean()),
        "median_kl": float(np.median(kl)),
        "max_kl": float(kl.max()),
        "max_kl_position": worst,
        "max_abs_diff": max_diff,
        "mean_abs_diff": sum_abs_diff / ref.size,
        "ppl_llamacpp": float(np.exp(nll_ref / scored)),
        "ppl_gemmarun": float(np.exp(nll_ours / scored)),
    }


def llama_greedy(llm, ids, n, stop_ids):
    """Argmax decoding; llm.scores keeps every step's logits (logits_all) for gap_at()."""
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if tok in stop_ids:
            break
        out.append(tok)
        llm.eval([tok])
    return out


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b)))


def make_llama(Llama, args, n, f32_cache=False):
    extra = {"type_k": 0, "type_v": 0} if f32_cache else {}  # 0 = GGML_TYPE_F32 (default: F16)
    return Llama(model_path=args.model, n_ctx=max(n, 256) + args.greedy_tokens, n_batch=n, n_ubatch=n,
                 n_threads=args.threads, n_threads_batch=args.threads, logits_all=True, verbose=False, **extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring for setup and the acceptance bar.")
    parser.add_argument("model", help="GGUF file")
    parser.add_argument("text", help="text file (real prose, e.g. /usr/share/common-licenses/GPL-3)")
    parser.add_argument("-n", "--positions", type=int, default=512, help="positions compared, BOS included")
    parser.add_argument("--gemmarun", default=os.path.join(REPO, "build", "gemmarun"), help="gemmarun binary")
    parser.add_argument("--threads", type=int, default=2, help="threads for both engines")
    parser.add_argument("--prompt", action="append", help="greedy prompt (repeatable; default: a few built in)")
    parser.add_argument("--greedy-tokens", type=int, default=32, help="tokens to generate per prompt")
    parser.add_argument("--ids-from", choices=["gemmarun", "llamacpp"], default="gemmarun",
                        help="whose tokenization of the text (and prompts) both engines are fed")
    parser.add_argument("--no-noise-floor", action="store_true",
                        help="skip llama.cpp vs itself with an f32 instead of f16 KV cache (its own numerical noise)")
    parser.add_argument("--keep", help="keep the ids and logits files in this folder")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON")
    args = parser.parse_args()
    if args.positions < 2:
        parser.error("-n must be at least 2")

    try:
        from llama_cpp import Llama
    except ImportError:
        sys.exit("error: llama_cpp is not installed here (see the setup in this script's docstring)")

    workdir = args.keep or tempfile.mkdtemp(prefix="compare_llamacpp_")
    os.makedirs(workdir, exist_ok=True)
    try:
        return compare(args, Llama, workdir)
    except RuntimeError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def compare(args, Llama, workdir):
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    n = args.positions
    ours_all, tokenizer_tool = our_tokenize(args.gemmarun, args.model, text, workdir)
    if len(ours_all) < n - 1:
        raise RuntimeError("%s has %d tokens, fewer than the %d that -n %d needs" % (args.text, len(ours_all), n - 1, n))

    t0 = time.time()
    llm = make_llama(Llama, args, n)
    load_seconds = time.time() - t0

    # Tokenizers: whole text, then the compared prefix.
    llama_all = [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)]
    first_mismatch = first_difference(ours_all, llama_all)
    tok = {
        "gemmarun_tokens": len(ours_all),
        "llamacpp_tokens": len(llama_all),
        "identical": first_mismatch is None,
        "first_mismatch": first_mismatch,
        "prefix_identical": ours_all[:n - 1] == llama_all[:n - 1],
        "via": tokenizer_tool,
    }
    if first_mismatch is not None:
        lo, hi = max(0, first_mismatch - 3), first_mismatch + 5
        tok["context_gemmarun"] = ours_all[lo:hi]
        tok["context_llamacpp"] = llama_all[lo:hi]

    if len(llama_all) < n - 1:
        raise RuntimeError("llama.cpp makes %d tokens of %s, fewer than %d" % (len(llama_all), args.text, n - 1))
    bos = int(llm.token_bos())
    ids = [bos] + (ours_all if args.ids_from == "gemmarun" else llama_all)[:n - 1]

    # llama.cpp: one batch of all N ids, logits at every position.
    t0 = time.time()
    llm.reset()
    llm.eval(ids)
    ref = np.array(llm.scores[:n], dtype=np.float32)
    llama_seconds = time.time() - t0

    # gemmarun: the same ids (perplexity adds the BOS itself), one window of N.
    ids_path = os.path.join(workdir, "ids.txt")
    logits_path = os.path.join(workdir, "gemmarun_logits.f32")
    with open(ids_path, "w") as f:
        f.write(" ".join(map(str, ids[1:])) + "\n")
    t0 = time.time()
    out = run([args.gemmarun, "perplexity", "-m", args.model, "--ids", ids_path, "-c", str(n), "--max-windows", "1",
               "-t", str(args.threads), "--save-logits", logits_path, "--json"])
    ours_seconds = time.time() - t0
    ours_ppl = json.loads(out)["perplexity"]
    ours = np.fromfile(logits_path, dtype=np.float32)
    if ours.size != ref.size:
        raise RuntimeError("gemmarun wrote %d logits, llama.cpp has %d (%d x %d)" % (ours.size, ref.size, *ref.shape))
    ours = ours.reshape(ref.shape)
    if args.keep:
        ref.tofile(os.path.join(workdir, "llamacpp_logits.f32"))
    figures = compare_logits(ref, ours, ids)
    figures["gemmarun_reported_ppl"] = ours_ppl
    del ours

    # llama.cpp's own noise: the same ids with an f32 KV cache instead of its default f16.
    floor = None
    llm32 = None
    if not args.no_noise_floor:
        llm32 = make_llama(Llama, args, n, f32_cache=True)
        llm32.eval(ids)
        floor = compare_logits(ref, np.array(llm32.scores[:n], dtype=np.float32), ids)
    del ref

    # Greedy continuations from the same prompt ids.
    stop_ids = {int(llm.token_eos())}
    eot = llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
    if len(eot) == 1:
        stop_ids.add(int(eot[0]))
    greedy = []
    for prompt in args.prompt or DEFAULT_PROMPTS:
        if args.ids_from == "gemmarun":
            p_ids = [bos] + our_tokenize(args.gemmarun, args.model, prompt, workdir)[0]
        else:
            p_ids = [bos] + [int(t) for t in llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)]
        theirs = llama_greedy(llm, p_ids, args.greedy_tokens, stop_ids)
        out = json.loads(run([args.gemmarun, "generate", "-m", args.model, "--ids", ",".join(map(str, p_ids)),
                              "-n", str(args.greedy_tokens), "--temp", "0", "-t", str(args.threads), "--json"]))
        mine = [int(t) for t in out["tokens"]]
        diverge = first_difference(mine, theirs)
        gap = None
        if diverge is not None and diverge < min(len(mine), len(theirs)):
            # How close llama.cpp itself was at that step: its logit of its choice minus of ours.
            row = llm.scores[len(p_ids) - 1 + diverge]
            gap = float(row[theirs[diverge]] - row[mine[diverge]])
        self_match = None
        if llm32 is not None:
            self_match = first_difference(llama_greedy(llm32, p_ids, args.greedy_tokens, stop_ids), theirs)
        greedy.append({
            "prompt": prompt,
            "match": diverge is None,
            "common_prefix_tokens": len(mine) if diverge is None else diverge,
            "llamacpp_logit_gap_at_divergence": gap,
            "llamacpp_f32_kv_diverges_at": self_match,
            "gemmarun_tokens": len(mine),
            "llamacpp_tokens": len(theirs),
            "gemmarun": out["text"],
            "llamacpp": llm.detokenize(theirs).decode("utf-8", errors="replace"),
        })

    passed = figures["top1_agreement_pct"] >= TOP1_BAR and figures["mean_kl"] <= KL_BAR and n >= 500
    print("## gemmarun vs llama.cpp: %s, %s\n" % (os.path.basename(args.model), args.text))
    print("| figure | value |")
    print("| --- | --- |")
    print("| positions (BOS + text tokens) | %d, tokenized by %s |" % (n, args.ids_from))
    print("| tokenizer (%d text tokens) | %s |" % (
        len(ours_all), "identical" if tok["identical"] else "differ at token %s (%d vs %d tokens; first %d: %s)" % (
            first_mismatch, len(ours_all), len(llama_all), n - 1,
            "identical" if tok["prefix_identical"] else "differ")))
    print("| top-1 agreement | %.2f%% (%d of %d differ) |" % (
        figures["top1_agreement_pct"], figures["top1_disagreements"], n))
    print("| mean KL(llama.cpp ‖ gemmarun) | %.5f (median %.5f, max %.4f at position %d) |" % (
        figures["mean_kl"], figures["median_kl"], figures["max_kl"], figures["max_kl_position"]))
    print("| max / mean abs logit diff | %.4f / %.4f |" % (figures["max_abs_diff"], figures["mean_abs_diff"]))
    print("| perplexity llama.cpp / gemmarun | %.4f / %.4f |" % (figures["ppl_llamacpp"], figures["ppl_gemmarun"]))
    if floor is not None:
        print("| noise floor: llama.cpp f16 vs f32 KV cache | top-1 %.2f%%, mean KL %.5f, max diff %.4f |" % (
            floor["top1_agreement_pct"], floor["mean_kl"], floor["max_abs_diff"]))
    print("| time: llama.cpp / gemmarun (one batch of %d, %d threads) | %.1f s / %.1f s (incl. load) |" % (
        n, args.threads, llama_seconds, ours_seconds))
    for g in greedy:
        verdict = "match" if g["match"] else "differ after %d tokens" % g["common_prefix_tokens"]
        if g["llamacpp_logit_gap_at_divergence"] is not None:
            verdict += " (llama.cpp's logit gap between the two: %.3f)" % g["llamacpp_logit_gap_at_divergence"]
        if floor is not None:
            s = g["llamacpp_f32_kv_diverges_at"]
            verdict += "; llama.cpp f32 KV vs f16 KV: %s" % ("match" if s is None else "differ after %d" % s)
        print("| greedy %d: %s | %s |" % (args.greedy_tokens, g["prompt"].replace("|", "\\|"), verdict))
    print("| issue 7 bar (>= 500 positions, top-1 >= %.0f%%, mean KL <= %.2f) | %s |" % (
        TOP1_BAR, KL_BAR, "met" if passed else "NOT met"))
    for g in greedy:
        if not g["match"]:
            print("\n%r\n  gemmarun:  %r\n  llama.cpp: %r" % (g["prompt"], g["gemmarun"], g["llamacpp"]))
    if args.json:
        print(json.dumps({"figures": figures, "noise_floor": floor, "tokenizer": tok, "greedy": greedy,
                          "passed": passed, "ids_from": args.ids_from,
                          "llama_load_seconds": load_seconds}, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
