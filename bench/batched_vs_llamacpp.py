#!/usr/bin/env python3
"""Aggregate decode of B sequences together: gemmarun bench --batch against llama-batched-bench.

Both engines get the same GGUF, thread count, prompt length P and decode length N: B prompts of P
tokens are prefilled, then N decode passes of B tokens each (llama-batched-bench's S_TG t/s is the
same quantity as gemmarun's aggregate decode tokens/s). Rounds alternate which engine goes first, so
a shared machine's drift falls on both alike; the table gives mean ± sd over all rounds and reps and
the ratio gemmarun / llama.cpp, plus each engine's speed-up over its own single sequence.

  python3 bench/batched_vs_llamacpp.py -m FILE.gguf --llama-batched-bench PATH [--batches 1,8,16]
      [-p 128] [-n 32] [-t 2] [--rounds 3] [--reps 2] [--out bench/RESULTS-batched.md]

llama-batched-bench is built from the llama.cpp the llama-cpp-python sdist vendors (bench/README.md).
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import time


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("error: %s failed (exit %d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()[-2000:]))
    return proc.stdout


def gemmarun(args, batches):
    out = run([args.gemmarun, "bench", "-m", args.model, "--batch", ",".join(map(str, batches)), "-p",
               str(args.prompt), "-n", str(args.gen), "-t", str(args.threads), "--reps", str(args.reps), "--json"])
    result = json.loads(out)
    return {b["batch"]: b["decode"]["values"] for b in result["batches"]}


def llamacpp(args, batches):
    values = {}
    for _ in range(args.reps):
        out = run([args.llama_batched_bench, "-m", args.model, "-c", str((args.prompt + args.gen) * max(batches)),
                   "-b", "2048", "-ub", "512", "-npp", str(args.prompt), "-ntg", str(args.gen),
                   "-npl", ",".join(map(str, batches)), "-t", str(args.threads), "-tb", str(args.threads)])
        for line in out.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 10 and re.fullmatch(r"\d+", cells[0]):
                values.setdefault(int(cells[2]), []).append(float(cells[7]))  # B, S_TG t/s
    return values


def mean_sd(v):
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--gemmarun", default="build/gemmarun")
    parser.add_argument("--llama-batched-bench", required=True)
    parser.add_argument("--batches", default="1,8,16")
    parser.add_argument("-p", "--prompt", type=int, default=128)
    parser.add_argument("-n", "--gen", type=int, default=32)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    ours, theirs = {}, {}
    start = time.time()
    for r in range(args.rounds):
        engines = [(gemmarun, ours), (llamacpp, theirs)]
        for engine, sink in (engines if r % 2 == 0 else engines[::-1]):
            for b, v in engine(args, batches).items():
                sink.setdefault(b, []).extend(v)
        print("round %d/%d done (%.0f s)" % (r + 1, args.rounds, time.time() - start), file=sys.stderr)
    lines = ["Aggregate decode tokens/s, %s, P=%d N=%d, %d threads, %d rounds x %d reps (mean ± sd)" %
             (args.model.rsplit("/", 1)[-1], args.prompt, args.gen, args.threads, args.rounds, args.reps), "",
             "| B | gemmarun | x B=1 | llama.cpp | x B=1 | gemmarun / llama.cpp |", "| --- | --- | --- | --- | --- | --- |"]
    one_ours = statistics.mean(ours[batches[0]]) if batches[0] == 1 else None
    one_theirs = statistics.mean(theirs[batches[0]]) if batches[0] == 1 and batches[0] in theirs else None
    for b in batches:
        (om, osd), (tm, tsd) = mean_sd(ours[b]), mean_sd(theirs.get(b, [float("nan")]))
        lines.append("| %d | %.1f ± %.1f | %s | %.1f ± %.1f | %s | %.2f |" % (
            b, om, osd, "%.2f" % (om / one_ours) if one_ours else "", tm, tsd,
            "%.2f" % (tm / one_theirs) if one_theirs else "", om / tm))
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
