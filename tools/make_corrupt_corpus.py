#!/usr/bin/env python3
"""Writes tests/data/corrupt/: small broken inputs, each of which the gemmarun binary
must refuse with exactly one `error: ...` line on stderr and exit status 1 (never a
crash, a hang, or a wrong answer with exit 0). tests/cli/corrupt_corpus_test.cc
runs every line of cases.tsv.

    python3 tools/make_corrupt_corpus.py        # rewrites tests/data/corrupt/

Standard library only. Each model is a tiny Gemma (vocab 16, width 8, one layer),
written as safetensors or GGUF, then broken in one way. cases.tsv holds
`name <TAB> arguments <TAB> a fragment the error must contain`; in the arguments,
{corrupt} is this folder and {data} is tests/data.
"""

import json
import math
import os
import pathlib
import random
import shutil
import struct
import zlib

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "data" / "corrupt"

CONFIG = {
    "model_type": "gemma", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "num_hidden_layers": 1,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "bos_token_id": 2, "eos_token_id": 1,
    "pad_token_id": 0, "torch_dtype": "float32",
}

# (HF name, GGUF name, shape as [rows, cols] or [n], kind)
TENSORS = [
    ("model.embed_tokens.weight", "token_embd.weight", [16, 8], "matrix"),
    ("model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", [8], "norm"),
    ("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", [8, 8], "matrix"),
    ("model.layers.0.self_attn.k_proj.weight", "blk.0.attn_k.weight", [4, 8], "matrix"),
    ("model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight", [4, 8], "matrix"),
    ("model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight", [8, 8], "matrix"),
    ("model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight", [8], "norm"),
    ("model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight", [16, 8], "matrix"),
    ("model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight", [16, 8], "matrix"),
    ("model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight", [8, 16], "matrix"),
    ("model.norm.weight", "output_norm.weight", [8], "norm"),
]


def count(shape):
    return math.prod(shape)


def values(shape, kind, rng):
    if kind == "norm":
        return [0.0] * count(shape)
    return [rng.gauss(0.0, 0.3) for _ in range(count(shape))]


def bf16_bits(x):
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


# ------------------------------------------------------------------ safetensors

def safetensors_bytes(tensors, dtype="F32", header_edit=None, data_edit=None):
    """tensors: [(name, shape, list of floats)]."""
    header, blobs, offset = {}, [], 0
    for name, shape, vals in tensors:
        if dtype == "F32":
            blob = struct.pack(f"<{len(vals)}f", *vals)
        else:  # BF16
            blob = struct.pack(f"<{len(vals)}H", *[bf16_bits(v) if math.isfinite(v) else
                                                   (0x7F80 if v > 0 else 0x7FC0) for v in vals])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if header_edit:
        header_edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    data = b"".join(blobs)
    if data_edit:
        data = data_edit(data)
    return struct.pack("<Q", len(text)) + text + data


def model_tensors(seed=1, edit=None):
    rng = random.Random(seed)
    out = [(hf, shape, values(shape, kind, rng)) for hf, _, shape, kind in TENSORS]
    if edit:
        edit(out)
    return out


def write_model_dir(name, config=None, weights=None):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config or CONFIG, indent=1))
    (d / "model.safetensors").write_bytes(weights if weights is not None else safetensors_bytes(model_tensors()))
    return d


# ------------------------------------------------------------------------- GGUF

U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = 4, 5, 6, 7, 8, 9, 10, 11, 12


def gstr(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def gkv(key, vtype, value):
    fmt = {U32: "<I", I32: "<i", F32: "<f", U64: "<Q", I64: "<q", F64: "<d"}
    if vtype == STRING:
        payload = gstr(value)
    elif vtype == BOOL:
        payload = struct.pack("<B", 1 if value else 0)
    else:
        payload = struct.pack(fmt[vtype], value)
    return gstr(key) + struct.pack("<I", vtype) + payload


def gguf_bytes(metadata_edit=None, tensor_edit=None, q8_embedding=False):
    """A tiny gemma GGUF; norms stored as 1 + w as llama.cpp's converter writes them."""
    kvs = [
        ("general.architecture", STRING, "gemma"),
        ("gemma.block_count", U32, 1),
        ("gemma.embedding_length", U32, 8),
        ("gemma.feed_forward_length", U32, 16),
        ("gemma.attention.head_count", U32, 2),
        ("gemma.attention.head_count_kv", U32, 1),
        ("gemma.attention.key_length", U32, 4),
        ("gemma.context_length", U32, 64),
        ("gemma.attention.layer_norm_rms_epsilon", F32, 1e-6),
        ("tokenizer.ggml.bos_token_id", U32, 2),
        ("tokenizer.ggml.eos_token_id", U32, 1),
    ]
    if metadata_edit:
        kvs = metadata_edit(kvs)
    rng = random.Random(2)
    tensors = []
    for _, gname, shape, kind in TENSORS:
        vals = [1.0] * count(shape) if kind == "norm" else values(shape, kind, rng)
        tensors.append([gname, shape, vals, 0])  # ggml type 0 = F32
    if tensor_edit:
        tensor_edit(tensors)
    infos, data = b"", b""
    for name, shape, vals, gtype in tensors:
        data += b"\0" * (-len(data) % 32)
        ne = list(reversed(shape))
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", gtype, len(data))
        data += vals if isinstance(vals, bytes) else struct.pack(f"<{len(vals)}f", *vals)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(gkv(*kv) for kv in kvs) + infos
    head += b"\0" * (-len(head) % 32)
    return head + data


def replace_kv(key, vtype, value):
    def edit(kvs):
        return [(k, t, v) if k != key else (key, vtype, value) for k, t, v in kvs]
    return edit


# ----------------------------------------------------------------------- images

def png_bytes(width, height, rows=None):
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    raw = rows if rows is not None else b"".join(b"\0" + b"\x80" * (3 * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------ cases

def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cases = []

    def case(name, args, fragment):
        cases.append((name, args, fragment))

    gen = "generate -m {corrupt}/%s --ids 2,3 -n 2"

    # --- safetensors checkpoints
    def nan_norm(ts):
        ts[1][2][3] = float("nan")
    write_model_dir("st_nan_norm", weights=safetensors_bytes(model_tensors(edit=nan_norm)))
    case("st_nan_norm", gen % "st_nan_norm", "input_layernorm.weight' holds a NaN")

    def inf_q(ts):
        ts[2][2][5] = float("inf")
    bf16_config = dict(CONFIG, torch_dtype="bfloat16")
    write_model_dir("st_inf_bf16_matrix", bf16_config, safetensors_bytes(model_tensors(edit=inf_q), dtype="BF16"))
    case("st_inf_bf16_matrix", gen % "st_inf_bf16_matrix", "q_proj.weight' holds a NaN or infinite")

    good = safetensors_bytes(model_tensors())
    write_model_dir("st_truncated", weights=good[: len(good) - 100])
    case("st_truncated", gen % "st_truncated", "model.safetensors")
    write_model_dir("st_header_length_huge", weights=struct.pack("<Q", 1 << 60) + good[8:])
    case("st_header_length_huge", gen % "st_header_length_huge", "model.safetensors")
    write_model_dir("st_header_not_json", weights=struct.pack("<Q", 16) + b"{not json at all")
    case("st_header_not_json", gen % "st_header_not_json", "model.safetensors")
    write_model_dir("st_empty_file", weights=b"")
    case("st_empty_file", gen % "st_empty_file", "model.safetensors")

    def offsets_past_end(h):
        h["model.norm.weight"]["data_offsets"] = [0, 1 << 40]
    write_model_dir("st_offsets_past_end", weights=safetensors_bytes(model_tensors(), header_edit=offsets_past_end))
    case("st_offsets_past_end", gen % "st_offsets_past_end", "model.safetensors")

    def shape_overflow(h):
        h["model.norm.weight"]["shape"] = [1 << 62, 1 << 62]
    write_model_dir("st_shape_overflow", weights=safetensors_bytes(model_tensors(), header_edit=shape_overflow))
    case("st_shape_overflow", gen % "st_shape_overflow", "model.safetensors")

    def wrong_shape(ts):
        ts[2] = (ts[2][0], [4, 16], ts[2][2])
    write_model_dir("st_wrong_shape", weights=safetensors_bytes(model_tensors(edit=wrong_shape)))
    case("st_wrong_shape", gen % "st_wrong_shape", "q_proj.weight' has shape [4, 16], expected [8, 8]")

    def missing(ts):
        del ts[3]
    write_model_dir("st_missing_tensor", weights=safetensors_bytes(model_tensors(edit=missing)))
    case("st_missing_tensor", gen % "st_missing_tensor", "k_proj.weight' is missing")

    def bad_dtype(h):
        h["model.norm.weight"]["dtype"] = "F8_E9M9"
    write_model_dir("st_unknown_dtype", weights=safetensors_bytes(model_tensors(), header_edit=bad_dtype))
    case("st_unknown_dtype", gen % "st_unknown_dtype", "model.safetensors")

    # Finite weights whose activations overflow: the embedding times sqrt(width) is inf.
    def huge_embedding(ts):
        ts[0] = (ts[0][0], ts[0][1], [3.0e38] * len(ts[0][2]))
    write_model_dir("st_overflowing_activations", weights=safetensors_bytes(model_tensors(edit=huge_embedding)))
    case("st_overflowing_activations", gen % "st_overflowing_activations", "logit")

    # A KV cache of tens of GB at the 2^24 tokens asked for (the largest -c):
    # refused before the weights are copied.
    wide_kv = dict(CONFIG, num_key_value_heads=2, head_dim=256, max_position_embeddings=2 ** 30)
    def wide_kv_tensors(ts):
        for i, (name, _, kind) in enumerate((t[0], t[2], t[3]) for t in TENSORS):
            shape = {"q_proj": [512, 8], "k_proj": [512, 8], "v_proj": [512, 8], "o_proj": [8, 512]}
            for key, new_shape in shape.items():
                if key in name:
                    ts[i] = (name, new_shape, [0.01] * count(new_shape))
    write_model_dir("st_kv_cache_1tb", wide_kv, safetensors_bytes(model_tensors(edit=wide_kv_tensors)))
    case("st_kv_cache_1tb", "generate -m {corrupt}/st_kv_cache_1tb --ids 2,3 -n 1 -c 16777216",
         "of memory is available (MemAvailable)")

    # --- config.json
    def config_case(name, config, fragment, command="inspect --config {corrupt}/%s/config.json"):
        write_model_dir(name, config)
        case(name, command % name, fragment)

    config_case("cfg_bos_2_pow_40", dict(CONFIG, bos_token_id=2 ** 40 + 2), "bos_token_id")
    config_case("cfg_bos_outside_vocab", dict(CONFIG, bos_token_id=16), "bos_token_id is 16, expected 0 .. 15")
    config_case("cfg_eos_negative", dict(CONFIG, eos_token_id=[1, -7]), "eos_token_id is -7")
    config_case("cfg_rms_eps_1e300", dict(CONFIG, rms_norm_eps=1e300), "rms_norm_eps")
    config_case("cfg_rms_eps_zero", dict(CONFIG, rms_norm_eps=0.0), "rms_norm_eps is 0")
    config_case("cfg_vocab_huge", dict(CONFIG, vocab_size=2 ** 31 - 1), "vocab_size is 2147483647, expected 1 .. 16777216")
    config_case("cfg_heads_zero", dict(CONFIG, num_attention_heads=0), "num_attention_heads")
    config_case("cfg_layers_negative", dict(CONFIG, num_hidden_layers=-3), "num_hidden_layers")
    config_case("cfg_head_dim_huge", dict(CONFIG, head_dim=1 << 20), "head_dim is 1048576, expected 1 .. 4096")
    config_case("cfg_rope_theta_negative", dict(CONFIG, rope_theta=-5.0), "rope_theta is -5")
    config_case("cfg_context_huge", dict(CONFIG, max_position_embeddings=2 ** 31 - 1), "max_position_embeddings")
    config_case("cfg_not_json", "{\"model_type\": \"gemma\",", "not well-formed JSON")
    config_case("cfg_empty", "", "not well-formed JSON")
    config_case("cfg_array", "[1, 2, 3]", "expected a JSON object")
    config_case("cfg_field_mistyped", dict(CONFIG, hidden_size="eight"), "field 'hidden_size'")
    config_case("cfg_unknown_model_type", dict(CONFIG, model_type="llama"), "model_type 'llama'")
    paligemma = json.loads((REPO / "tests/data/paligemma/config.json").read_text())
    paligemma["vision_config"]["image_size"] = 2 ** 30
    paligemma["vision_config"]["patch_size"] = 2
    config_case("cfg_paligemma_patches_overflow", paligemma, "patches, more than")
    case("cfg_inspect_context_2_pow_62", "inspect --config {data}/gemma1_mqa/config.json --context 4611686018427387904",
         "--context: expected an integer from 1 to")
    # The config loads; the model then fails on its weights, named once.
    config_case("cfg_generate_rms_eps_inf", dict(CONFIG, rms_norm_eps=1e39), "rms_norm_eps",
                command=gen)

    # --- GGUF
    def gguf_case(name, blob, fragment, command=gen):
        (OUT / (name + ".gguf")).write_bytes(blob)
        case(name, command.replace("{corrupt}/%s", "{corrupt}/%s.gguf") % name, fragment)

    gguf_case("gguf_bos_2_pow_40", gguf_bytes(replace_kv("tokenizer.ggml.bos_token_id", U64, 2 ** 40 + 2)),
              "'tokenizer.ggml.bos_token_id' = 1099511627778 is not a token id")
    gguf_case("gguf_eos_outside_vocab", gguf_bytes(replace_kv("tokenizer.ggml.eos_token_id", U32, 99)),
              "eos_token_id is 99")
    gguf_case("gguf_rms_eps_1e300", gguf_bytes(replace_kv("gemma.attention.layer_norm_rms_epsilon", F64, 1e300)),
              "layer_norm_rms_epsilon")
    gguf_case("gguf_rms_eps_negative", gguf_bytes(replace_kv("gemma.attention.layer_norm_rms_epsilon", F32, -1.0)),
              "rms_norm_eps is -1")
    gguf_case("gguf_head_count_zero", gguf_bytes(replace_kv("gemma.attention.head_count", U32, 0)), "head_count")
    gguf_case("gguf_block_count_huge", gguf_bytes(replace_kv("gemma.block_count", U64, 2 ** 40)), "block_count")

    def nan_norm_gguf(ts):
        ts[1][2] = [1.0] * 7 + [float("nan")]
    gguf_case("gguf_nan_norm", gguf_bytes(tensor_edit=nan_norm_gguf), "attn_norm.weight' holds a NaN")

    good_gguf = gguf_bytes()
    gguf_case("gguf_truncated_data", good_gguf[: len(good_gguf) - 64], "gguf")
    gguf_case("gguf_truncated_header", good_gguf[:40], "gguf")
    gguf_case("gguf_bad_magic", b"GGUX" + good_gguf[4:], "gguf")
    gguf_case("gguf_empty", b"", "gguf")
    gguf_case("gguf_random_bytes", bytes(random.Random(5).randrange(256) for _ in range(512)), "gguf")

    def drop_arch(kvs):
        return [kv for kv in kvs if kv[0] != "general.architecture"]
    gguf_case("gguf_no_architecture", gguf_bytes(drop_arch), "general.architecture")
    gguf_case("gguf_arch_llama", gguf_bytes(replace_kv("general.architecture", STRING, "llama")), "llama")
    gguf_case("gguf_inspect_context_huge", good_gguf, "--context: expected an integer from 1 to",
              command="inspect -m {corrupt}/%s --context 4611686018427387904")

    # --- tokenizers
    tok = OUT / "tokenizers"
    tok.mkdir()
    def tok_case(name, text, fragment, suffix=".json"):
        (tok / (name + suffix)).write_bytes(text if isinstance(text, bytes) else text.encode())
        case("tok_" + name, "tokenize --tokenizer {corrupt}/tokenizers/%s%s hello" % (name, suffix), fragment)

    bpe = {"type": "BPE", "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "h": 4, "e": 5},
           "merges": [], "unk_token": "<unk>"}
    decoder = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                {"type": "ByteFallback"}, {"type": "Fuse"}]}
    tok_case("empty_file", "", "the file is empty")
    tok_case("whitespace_only", "  \n", "the file is empty")
    tok_case("not_json", "{\"model\": {", "tokenizers/not_json.json")
    tok_case("vocab_empty", json.dumps({"model": dict(bpe, vocab={})}), "model.vocab is empty")
    tok_case("vocab_array", json.dumps({"model": dict(bpe, vocab=[["a", 0.0]])}), "model.vocab is a list")
    tok_case("vocab_missing", json.dumps({"model": {k: v for k, v in bpe.items() if k != "vocab"}}),
             "model.vocab is missing")
    tok_case("unk_not_in_vocab", json.dumps({"model": dict(bpe, unk_token="<missing>"), "decoder": decoder}),
             "model.unk_token \"<missing>\" is not in the vocabulary")
    tok_case("id_huge", json.dumps({"model": dict(bpe, vocab={"a": 2 ** 40})}), "tokenizers/id_huge.json")
    tok_case("unigram", json.dumps({"model": dict(bpe, type="Unigram")}), "only BPE")
    tok_case("merge_unknown_piece", json.dumps({"model": dict(bpe, merges=["h x"]), "decoder": decoder}), "missing from the vocabulary")
    tok_case("spm_garbage", bytes(random.Random(9).randrange(256) for _ in range(300)), "spm_garbage.model",
             suffix=".model")
    (tok / "spm_truncated.model").write_bytes((REPO / "tests/data/tokenizer/spm_bpe.model").read_bytes()[:200])
    case("tok_spm_truncated", "tokenize --tokenizer {corrupt}/tokenizers/spm_truncated.model hello",
         "spm_truncated.model")

    # --- images (PaliGemma fixture)
    img = OUT / "images"
    img.mkdir()
    def image_case(name, blob, fragment):
        (img / name).write_bytes(blob)
        case("img_" + name.replace(".", "_"), "generate -m {data}/paligemma --image {corrupt}/images/%s --ids 2 -n 1" % name, fragment)

    image_case("zero_by_zero.png", png_bytes(0, 0, rows=b""), "zero_by_zero.png")
    image_case("truncated.png", png_bytes(16, 16)[:60], "truncated.png")
    image_case("garbage.png", bytes(random.Random(3).randrange(256) for _ in range(200)), "garbage.png")
    image_case("empty.png", b"", "empty.png")
    image_case("huge_dimensions.png", png_bytes(1 << 30, 1 << 30, rows=b"\0"), "huge_dimensions.png")
    image_case("truncated.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb",
               "truncated.jpg")

    # Found by tests/fuzz/image_fuzzer (its first two bytes are the fuzzer's size bytes):
    # a Huffman table of more than 256 codes, which Debian's stb_image 2.27 writes past.
    huffman = (REPO / "tests/fuzz/regressions/image/jpeg_huffman_overflow").read_bytes()[2:]
    image_case("huffman_overflow.jpg", huffman, "a Huffman table defines")

    with open(OUT / "cases.tsv", "w") as f:
        f.write("# name\targuments ({corrupt}: this folder, {data}: tests/data)\terror fragment\n")
        for name, args, fragment in cases:
            f.write(f"{name}\t{args}\t{fragment}\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
