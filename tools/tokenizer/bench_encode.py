#!/usr/bin/env python3
"""Encode throughput of HF `tokenizers`, to compare with our tokenizer.

  bench_encode.py make-text OUT_FILE
      Builds a few MB of mixed text from documentation and sources found on
      this machine: English prose, code (Python, C headers) and Japanese
      (Rust by Example's Japanese translation), in that order.
  bench_encode.py TOKENIZER_JSON TEXT_FILE [REPEATS]
      Times Tokenizer.encode(chunk, add_special_tokens=False) over the file
      cut into ~64 KB chunks that end at a newline (one thread, best of
      REPEATS, CPU time: steadier than wall time on a shared machine),
      exactly as our tokenizer_throughput tool does:
        build/tests/tokenizer/tokenizer_throughput TOKENIZER_JSON TEXT_FILE
"""
import glob
import html
import os
import re
import sys
import time

RUST_DOC = os.path.expanduser(
    "~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html")


def read_files(patterns, limit):
    out, total = [], 0
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            if path.endswith(".html"):
                text = re.sub(r"<script.*?</script>|<style.*?</style>", "", text,
                              flags=re.S)
                text = html.unescape(re.sub(r"<[^>]+>", "", text))
                text = re.sub(r"\n\s*\n+", "\n\n", text)
            out.append(text)
            total += len(text.encode("utf-8"))
            if total >= limit:
                return "".join(out)
    return "".join(out)


def make_text(out_path):
    prose = read_files([RUST_DOC + "/book/ch*.html", "/usr/share/common-licenses/*",
                        os.path.expanduser("~/.pyenv/versions/*/lib/python3*/idlelib/NEWS*.txt")],
                       1_500_000)
    code = read_files([os.path.expanduser("~/.pyenv/versions/3.13.0/lib/python3.13/*.py"),
                       "/usr/include/c++/12/bits/*.h"], 1_500_000)
    japanese = read_files([RUST_DOC + "/rust-by-example/ja/**/*.html"], 1_000_000)
    with open(out_path, "w", encoding="utf-8") as f:
        for part in (prose, code, japanese):
            f.write(part)
            if not part.endswith("\n"):
                f.write("\n")
    sizes = [len(p.encode("utf-8")) for p in (prose, code, japanese)]
    print("wrote %s: prose %d, code %d, japanese %d bytes" % (out_path, *sizes))


def chunks_of(text):
    data = text.encode("utf-8")
    start, out = 0, []
    while start < len(data):
        end = min(len(data), start + (64 << 10))
        if end < len(data):
            newline = data.find(b"\n", end)
            end = len(data) if newline < 0 else newline + 1
        out.append(data[start:end].decode("utf-8"))
        start = end
    return out, len(data)


def bench(tokenizer_json, text_file, repeats):
    import tokenizers
    from tokenizers import Tokenizer
    start = time.process_time()
    tok = Tokenizer.from_file(tokenizer_json)
    load = time.process_time() - start
    with open(text_file, encoding="utf-8") as f:
        chunks, size = chunks_of(f.read())
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        start = time.process_time()
        tokens = sum(len(tok.encode(c, add_special_tokens=False).ids) for c in chunks)
        best = min(best, time.process_time() - start)
    print("HF tokenizers %s: load %.3f s, %d bytes -> %d tokens, encode %.3f s = "
          "%.2f MB/s (CPU time)" % (tokenizers.__version__, load, size, tokens, best,
                                    size / 1e6 / best))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-text":
        make_text(sys.argv[2])
    elif len(sys.argv) in (3, 4):
        bench(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 3)
    else:
        sys.exit(__doc__)
