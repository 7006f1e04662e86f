#!/usr/bin/env python3
"""Writes a random-weight HF checkpoint folder (config.json + model.safetensors)
with the shape of a real model, for memory and speed measurements without
downloading weights. The logits mean nothing; the tensors, shapes and config are
what the engine loads for the real checkpoint.

  tools/make_random_model.py --shape recurrentgemma-2b --out /tmp/rg2b
  tools/make_random_model.py --shape gemma-2-2b --layers 3 --vocab 32768 --out /tmp/g2b-3l

The config comes from tests/data/architectures.json (transformers' own config of
each variant); --layers keeps the real widths and trims the depth, --vocab shrinks
the vocabulary (and so the tied embedding / LM head). Weights are
bfloat16 (half the bytes of f32), written tensor by tensor so that memory stays
small whatever the model size. Outputs are large: write them under /tmp, never
into the repository.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHITECTURES = os.path.join(REPO, "tests", "data", "architectures.json")

# Fields transformers adds to every config that say nothing about the model.
BOILERPLATE = {
    "transformers_version", "architectures", "output_hidden_states", "return_dict", "dtype",
    "chunk_size_feed_forward", "is_encoder_decoder", "id2label", "label2id", "problem_type",
    "_name_or_path", "output_attentions",
}
ARCHITECTURE_CLASS = {
    "recurrent_gemma": "RecurrentGemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
}


def load_config(shape, layers, vocab):
    with open(ARCHITECTURES) as f:
        variants = json.load(f)
    if shape not in variants:
        sys.exit(f"unknown --shape {shape}; known: {', '.join(variants)}")
    config = {k: v for k, v in variants[shape]["config"].items() if k not in BOILERPLATE and v is not None}
    if config["model_type"] not in ARCHITECTURE_CLASS:
        sys.exit(f"{shape}: model_type {config['model_type']} is not supported by this tool")
    config["architectures"] = [ARCHITECTURE_CLASS[config["model_type"]]]
    config["torch_dtype"] = "bfloat16"
    if vocab:
        config["vocab_size"] = vocab
    if layers:
        config["num_hidden_layers"] = layers
        if "layer_types" in config:
            config["layer_types"] = config["layer_types"][:layers]
    return config


def gemma_tensors(c):
    """(name, shape, kind) of a Gemma 1/2/3 text checkpoint (architectures.md §2.3, §3.3)."""
    hidden, inter = c["hidden_size"], c["intermediate_size"]
    head_dim = c.get("head_dim", hidden // c["num_attention_heads"])
    q_dim = c["num_attention_heads"] * head_dim
    kv_dim = c.get("num_key_value_heads", c["num_attention_heads"]) * head_dim
    post_norms = c["model_type"] in ("gemma2", "gemma3_text")
    out = [("model.embed_tokens.weight", (c["vocab_size"], hidden), "matrix")]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (hidden,), "norm"),
            (p + "self_attn.q_proj.weight", (q_dim, hidden), "matrix"),
            (p + "self_attn.k_proj.weight", (kv_dim, hidden), "matrix"),
            (p + "self_attn.v_proj.weight", (kv_dim, hidden), "matrix"),
            (p + "self_attn.o_proj.weight", (hidden, q_dim), "matrix"),
            (p + "post_attention_layernorm.weight", (hidden,), "norm"),
        ]
        if c["model_type"] == "gemma3_text":
            out += [(p + "self_attn.q_norm.weight", (head_dim,), "norm"),
                    (p + "self_attn.k_norm.weight", (head_dim,), "norm")]
        if post_norms:
            out += [(p + "pre_feedforward_layernorm.weight", (hidden,), "norm"),
                    (p + "post_feedforward_layernorm.weight", (hidden,), "norm")]
        out += [
            (p + "mlp.gate_proj.weight", (inter, hidden), "matrix"),
            (p + "mlp.up_proj.weight", (inter, hidden), "matrix"),
            (p + "mlp.down_proj.weight", (hidden, inter), "matrix"),
        ]
    out.append(("model.norm.weight", (hidden,), "norm"))
    return out


def griffin_tensors(c):
    """(name, shape, kind) of a RecurrentGemma checkpoint (architectures.md §5.6)."""
    hidden, heads = c["hidden_size"], c["num_attention_heads"]
    mlp = c["intermediate_size"] // 2  # config.json stores twice the MLP width
    lru = c.get("lru_width") or hidden
    head_dim = c.get("head_dim", hidden // heads)
    kv_dim = c.get("num_key_value_heads", heads) * head_dim
    block = lru // heads
    types = c.get("block_types", ["recurrent", "recurrent", "attention"])
    out = [("model.embed_tokens.weight", (c["vocab_size"], hidden), "matrix")]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t = p + "temporal_block."
        out.append((p + "temporal_pre_norm.weight", (hidden,), "norm"))
        if types[i % len(types)] == "attention":
            out += [
                (t + "q_proj.weight", (heads * head_dim, hidden), "matrix"),
                (t + "k_proj.weight", (kv_dim, hidden), "matrix"),
                (t + "v_proj.weight", (kv_dim, hidden), "matrix"),
                (t + "o_proj.weight", (hidden, heads * head_dim), "matrix"),
                (t + "o_proj.bias", (hidden,), "bias"),
            ]
        else:
            out += [
                (t + "linear_y.weight", (lru, hidden), "matrix"), (t + "linear_y.bias", (lru,), "bias"),
                (t + "linear_x.weight", (lru, hidden), "matrix"), (t + "linear_x.bias", (lru,), "bias"),
                (t + "linear_out.weight", (hidden, lru), "matrix"), (t + "linear_out.bias", (hidden,), "bias"),
                (t + "conv_1d.weight", (lru, 1, c.get("conv1d_width", 4)), "conv"),
                (t + "conv_1d.bias", (lru,), "bias"),
                (t + "rg_lru.recurrent_param", (lru,), "param"),
                (t + "rg_lru.input_gate_weight", (heads, block, block), "gate"),
                (t + "rg_lru.input_gate_bias", (heads, block), "bias"),
                (t + "rg_lru.recurrent_gate_weight", (heads, block, block), "gate"),
                (t + "rg_lru.recurrent_gate_bias", (heads, block), "bias"),
            ]
        out += [
            (p + "channel_pre_norm.weight", (hidden,), "norm"),
            (p + "mlp_block.gate_proj.weight", (mlp, hidden), "matrix"),
            (p + "mlp_block.gate_proj.bias", (mlp,), "bias"),
            (p + "mlp_block.up_proj.weight", (mlp, hidden), "matrix"),
            (p + "mlp_block.up_proj.bias", (mlp,), "bias"),
            (p + "mlp_block.down_proj.weight", (hidden, mlp), "matrix"),
            (p + "mlp_block.down_proj.bias", (hidden,), "bias"),
        ]
    out.append(("model.final_norm.weight", (hidden,), "norm"))
    return out


def random_bf16(rng, shape, kind):
    """bfloat16 bits (uint16) of a tensor with a scale that keeps activations finite."""
    count = int(np.prod(shape))
    if kind in ("norm", "bias"):
        values = np.zeros(count, dtype=np.float32)  # Gemma norms scale by (1 + w)
    elif kind == "param":
        values = rng.standard_normal(count, dtype=np.float32)
    else:
        fan_in = shape[-1] if kind != "gate" else shape[1]
        std = 0.02 if kind == "matrix" and fan_in > 4 else 1.0 / math.sqrt(fan_in)
        values = rng.standard_normal(count, dtype=np.float32) * np.float32(std)
    bits = values.view(np.uint32)
    # Round to nearest even, as torch's .to(bfloat16) does.
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, seed):
    header, offset = {}, 0
    for name, shape, _ in tensors:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, kind in tensors:
            # Large matrices in row slabs, so memory stays at a few hundred MB.
            rows = shape[0]
            slab = max(1, (1 << 26) // max(1, int(np.prod(shape[1:]))))
            for begin in range(0, rows, slab):
                part = (min(slab, rows - begin),) + tuple(shape[1:])
                f.write(random_bf16(rng, part, kind).tobytes())
    return offset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", required=True, help="a variant of tests/data/architectures.json, e.g. recurrentgemma-2b")
    parser.add_argument("--out", required=True, help="output folder (under /tmp: it is GBs)")
    parser.add_argument("--layers", type=int, default=0, help="keep only this many layers (real widths)")
    parser.add_argument("--vocab", type=int, default=0,
                        help="shrink the vocabulary (the tied LM head dominates decode time of a trimmed model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = load_config(args.shape, args.layers, args.vocab)
    tensors = griffin_tensors(config) if config["model_type"] == "recurrent_gemma" else gemma_tensors(config)
    total = sum(int(np.prod(s)) * 2 for _, s, _ in tensors)
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(args.out)) or ".").free
    if total > free * 0.9:
        sys.exit(f"{args.out}: needs {total / 2**30:.1f} GiB, only {free / 2**30:.1f} GiB free (try --layers)")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    written = write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, args.seed)
    print(f"{args.out}: {args.shape}, {config['num_hidden_layers']} layers, vocab {config['vocab_size']}, "
          f"{written // 2:,} parameters, {written / 2**30:.2f} GiB bf16")


if __name__ == "__main__":
    main()
