#!/usr/bin/env bash
# Rebuilds tests/fuzz/corpus/<fuzzer>/: small seed inputs for tools/run_fuzzers.sh,
# taken from the test data (fixtures, tests/data/gguf, tests/data/corrupt) plus a
# few written here. Run after tools/make_corrupt_corpus.py.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fuzz/corpus
rm -rf "$out"
mkdir -p "$out"/{gguf,safetensors,config,tokenizer_json,tokenizer_model,gguf_vocab,image,chat_template,request}
corrupt=tests/data/corrupt

cp tests/data/gguf/{hand_valid,metadata,empty_array,types_q8_0,types_q4_k,types_q6_k}.gguf "$out/gguf/"
cp $corrupt/gguf_nan_norm.gguf $corrupt/gguf_bos_2_pow_40.gguf $corrupt/gguf_truncated_data.gguf "$out/gguf/"
for d in st_wrong_shape st_inf_bf16_matrix st_truncated st_unknown_dtype; do
  cp $corrupt/$d/model.safetensors "$out/safetensors/$d.safetensors"
done
for d in tests/data/*/config.json; do cp "$d" "$out/config/$(basename "$(dirname "$d")").json"; done
for d in cfg_bos_2_pow_40 cfg_paligemma_patches_overflow cfg_vocab_huge; do
  cp $corrupt/$d/config.json "$out/config/$d.json"
done
cp $corrupt/tokenizers/*.json "$out/tokenizer_json/"
cp tests/data/tokenizer/spm_bpe.model tests/data/tokenizer/spm_bpe_gemma.model "$out/tokenizer_model/"
cp tests/data/paligemma/image.png $corrupt/images/*.png $corrupt/images/*.jpg "$out/image/"
# Valid JPEGs (baseline, progressive, grayscale, 4:2:0) and an RGBA PNG, written with
# Pillow where it is installed (PYTHON=path/to/python with pillow).
"${PYTHON:-python3}" - "$out/image" <<'PY' || echo "pillow not found: no JPEG seeds written" >&2
import sys
from PIL import Image
out = sys.argv[1]
gradient = Image.new("RGB", (16, 12))
gradient.putdata([(x * 16, y * 20, 128) for y in range(12) for x in range(16)])
gradient.save(f"{out}/baseline.jpg", quality=80)
gradient.resize((9, 7)).save(f"{out}/progressive.jpg", progressive=True)
gradient.convert("L").save(f"{out}/gray.jpg")
gradient.save(f"{out}/subsampled.jpg", subsampling=2)
gradient.convert("RGBA").resize((5, 3)).save(f"{out}/alpha.png")
gradient.convert("P").save(f"{out}/palette.png")
PY

python3 - "$out" <<'PY'
import json, os, struct, sys
out = sys.argv[1]
decoder = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                            {"type": "ByteFallback"}, {"type": "Fuse"}]}
vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "h": 4, "e": 5, "l": 6, "o": 7, "\u2581": 8,
         "he": 9, "ll": 10, "hell": 11, "hello": 12, "<0x41>": 13}
tok = {"model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "l l", "he ll", "hell o"], "unk_token": "<unk>",
                 "byte_fallback": True},
       "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
       "added_tokens": [{"id": 2, "content": "<bos>", "special": True}], "decoder": decoder}
open(os.path.join(out, "tokenizer_json", "valid_small.json"), "w").write(json.dumps(tok))
# gguf_vocab records: [flags] then [type][score][piece]\0 ... \0\0 text
def vocab_seed(pieces, text, flags=0x05):
    body = b"".join(bytes([t, s]) + p.encode() + b"\0" for t, s, p in pieces)
    return bytes([flags]) + body + b"\0" + text.encode()
pieces = [(2, 0, "<pad>"), (3, 0, "<eos>"), (3, 0, "<bos>"), (2, 0, "<unk>"), (1, 10, "\u2581"), (1, 9, "h"),
          (1, 8, "e"), (1, 7, "l"), (1, 6, "o"), (1, 5, "he"), (1, 4, "ll"), (6, 0, "<0x41>"), (4, 0, "<start_of_turn>")]
open(os.path.join(out, "gguf_vocab", "small"), "wb").write(vocab_seed(pieces, "hello <start_of_turn>A"))
open(os.path.join(out, "gguf_vocab", "bos_eos"), "wb").write(vocab_seed(pieces, "ll he", flags=0x3f))
for i, msgs in enumerate([[(0, "Hi"), (1, "Hello!"), (0, "  How are you?\n")],
                          [(3, "Be brief."), (0, "Hi")],
                          [(0, "a"), (0, "b")],
                          [(2, "first"), (0, "x")]]):
    blob = bytes([i & 1]) + b"\0".join(bytes([r]) + c.encode() for r, c in msgs)
    open(os.path.join(out, "chat_template", f"seed{i}"), "wb").write(blob)
PY
# The image fuzzer reads two size bytes before the image.
for f in "$out"/image/*; do { printf '\x20\x18'; cat "$f"; } >"$f.tmp" && mv "$f.tmp" "$f"; done
# Request bodies of both endpoints: every sampling field, stop strings, logprobs, streaming, an image part, ids.
printf '%s' '{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0.7,"top_p":0.9,"stop":["\n"],"n":2,"seed":3,"logprobs":true,"top_logprobs":2,"stream":true,"stream_options":{"include_usage":true}}' >"$out/request/chat"
printf '%s' '{"prompt":"Once upon a time","max_tokens":4,"temperature":0,"suffix":"end","echo":false,"logprobs":1,"frequency_penalty":0.5,"presence_penalty":-0.5}' >"$out/request/completion"
printf '%s' '{"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"min_p":0.1,"top_k":40,"repeat_penalty":1.1}' >"$out/request/image"
printf '%s' '{"prompt":[2,651,6037],"max_completion_tokens":3,"n":8}' >"$out/request/ids"
du -sh "$out"
