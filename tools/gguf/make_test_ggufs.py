#!/usr/bin/env python3
"""Writes the small GGUF files that tests/io/gguf_test.cc and tests/tensor/quant_test.cc read.

    pip install gguf numpy
    python3 tools/gguf/make_test_ggufs.py            # writes tests/data/gguf/

Valid files are written with the `gguf` package (llama.cpp's gguf-py), so the reader is checked
against the reference writer, and expected values come from its own quantizers/dequantizers:

  types_<type>.gguf  one per tensor type we read. Tensors:
                       weight    [rows, cols] in <type>
                       expected  [rows, cols] f32 = gguf.quants.dequantize(weight)
                       source    [rows, cols] f32 the floats `weight` was made from (types the
                                 package can quantize: f16, bf16, q8_0, q4_0, q5_0). The K-quants
                                 (q4_k, q6_k) are hand-made random blocks with chosen f16 scales.
  metadata.gguf      every metadata value type, arrays of each, nested arrays, alignment 64.
  v2_q8_0.gguf       types_q8_0.gguf with the version field set to 2 (v2 and v3 share a layout).

Corrupt files are written byte by byte (gguf-py refuses to write them): corrupt_*.gguf, each
broken in one way; `hand_valid.gguf` is their unbroken base and `empty_array.gguf` holds what
gguf-py cannot write (an empty array, an empty string, no tensors).
"""

import argparse
import pathlib
import struct
import warnings

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V


# ---------------------------------------------------------------------------- valid files

def quant_source(rows, cols, seed):
    """Floats with the edge cases of the 32-wide block quantizers in the first blocks."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 2.0, (rows, cols // 32)).repeat(32, 1))
    x = x.astype(np.float32).reshape(-1, 32)
    x[0] = 0.0                                             # all zero: d = 0, id = 0
    x[1] = np.linspace(-1.0, 0.5, 32); x[1][0] = -3.0      # largest magnitude is negative
    x[2] = (np.arange(32) - 16) + 0.5; x[2][31] = 127.0    # q8_0: d = 1, x * id = k + 0.5 ties
    x[3] = np.linspace(-1e-6, 1e-6, 32)                    # f16 subnormal scale
    x[4] = np.linspace(-6.0e4, 6.0e4, 32)                  # scale near the f16 max
    x[5] = np.linspace(-5.0, 5.0, 32); x[5][0] = 5.0; x[5][31] = -5.0  # |max| tie: first wins
    x[6] = (np.arange(32) - 8) * 0.5; x[6][0] = -8.0       # q4_0: d = 1, x * id + 8.5 ties
    return x.reshape(rows, cols)


def special_floats(count):
    """Values that stress f16/bf16 rounding: ties, subnormals, overflow, inf, NaN."""
    v = [0.0, -0.0, 1.0, -2.5, 65504.0, 65519.0, 65520.0, 1e6, 2.0 ** -24, 2.0 ** -25,
         3 * 2.0 ** -25, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25, 1e-30, 1.0 + 2.0 ** -11,
         1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 3.0e38, -3.4e38,
         np.inf, -np.inf, np.nan, 1.17549435e-38, 1e-40]
    rng = np.random.default_rng(7)
    rest = rng.standard_normal(count - len(v)) * 10.0
    return np.concatenate([np.array(v, dtype=np.float32), rest.astype(np.float32)])


def k_quant_blocks(qtype, blocks, seed):
    """Random bytes with every f16 scale set to a chosen finite value."""
    rng = np.random.default_rng(seed)
    _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    d = rng.uniform(0.001, 0.05, blocks).astype(np.float16)
    d[1] = np.float16(3e-6)   # subnormal super-block scale
    d[2] = -d[2]              # ggml never writes it, but the format allows it
    if qtype == Q.Q4_K:
        dmin = rng.uniform(0.0, 0.05, blocks).astype(np.float16)
        dmin[0] = 0
        raw[:, 0:2] = d.view(np.uint8).reshape(blocks, 2)
        raw[:, 2:4] = dmin.view(np.uint8).reshape(blocks, 2)
    elif qtype == Q.Q6_K:
        raw[:, 208:210] = d.view(np.uint8).reshape(blocks, 2)
    else:
        raise ValueError(qtype)
    return raw


def write_type_file(out, name, qtype, rows, cols, seed):
    w = gguf.GGUFWriter(str(out / f"types_{name}.gguf"), "test")
    w.add_string("test.type", name)
    source = None
    if qtype in (Q.Q4_K, Q.Q6_K):
        block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
        raw = k_quant_blocks(qtype, rows * cols // block_size, seed).reshape(rows, -1)
    elif qtype in (Q.F16, Q.BF16, Q.F32):
        source = special_floats(rows * cols).reshape(rows, cols)
        with warnings.catch_warnings():  # values past the f16 range overflow to inf, on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            raw = gguf.quants.quantize(source, qtype)
        raw = raw.view(np.uint8).reshape(rows, -1)
    else:
        source = quant_source(rows, cols, seed)
        raw = gguf.quants.quantize(source, qtype)
    expected = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(rows, cols)
    w.add_tensor("weight", raw, raw_dtype=qtype)
    w.add_tensor("expected", expected)
    if source is not None:
        w.add_tensor("source", source)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_metadata_file(out):
    w = gguf.GGUFWriter(str(out / "metadata.gguf"), "test")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "h\u00e9llo \u2713 GGUF")
    w.add_uint64("test.u64", 2 ** 63 + 5)
    w.add_uint64("test.u64_small", 7)
    w.add_int64("test.i64", -(2 ** 62))
    w.add_float64("test.f64", 3.141592653589793)
    arrays = {
        "u8": (V.UINT8, [1, 2, 255]), "i8": (V.INT8, [-128, 0, 127]),
        "u16": (V.UINT16, [0, 65535]), "i16": (V.INT16, [-32768, 32767]),
        "u32": (V.UINT32, [0, 4294967295]), "i32": (V.INT32, [-1, 0, 2147483647]),
        "f32": (V.FLOAT32, [0.5, -1.25, 1e-6]), "bool": (V.BOOL, [True, False, True]),
        "string": (V.STRING, ["a", "", "\u00fcn\u00ef"]), "u64": (V.UINT64, [1, 2 ** 64 - 1]),
        "i64": (V.INT64, [-(2 ** 63), 2 ** 63 - 1]), "f64": (V.FLOAT64, [2.5, -1e300]),
    }
    for name, (sub_type, values) in arrays.items():
        w.add_key_value(f"test.arr.{name}", values, V.ARRAY, sub_type=sub_type)
    w.add_array("test.nested.i32", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.nested.string", [["a", "b"], ["c"]])
    w.add_array("test.nested3", [[[1], [2, 3]], [[4]]])
    w.add_string("test.long_string", "x" * 100)
    w.add_tensor("t.f32", np.array([1.0, 2.0, 3.0], dtype=np.float32))
    w.add_tensor("t.f16", np.arange(10, dtype=np.float16).reshape(2, 5))
    w.add_tensor("t.i32", np.array([[-7, 8], [9, 10], [11, 12]], dtype=np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------- hand-made files

def gstr(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def i32_array(values, length=None):
    return u32(V.INT32) + u64(len(values) if length is None else length) + b"".join(
        struct.pack("<i", v) for v in values)


def tinfo(name, ne, ggml_type, offset, n_dims=None):
    return (gstr(name) + u32(len(ne) if n_dims is None else n_dims) + b"".join(u64(d) for d in ne)
            + u32(ggml_type) + u64(offset))


def build(kvs, infos, data, version=3, magic=b"GGUF", tensor_count=None, kv_count=None,
          alignment=32, version_bytes=None):
    head = magic + (version_bytes if version_bytes is not None else u32(version))
    head += u64(len(infos) if tensor_count is None else tensor_count)
    head += u64(len(kvs) if kv_count is None else kv_count)
    body = head + b"".join(kvs) + b"".join(infos)
    return body + b"\0" * ((-len(body)) % alignment) + data


def write_hand_files(out):
    # Base: two tensors, a (f32 [32]) at 0 and b (q8_0 ne {32, 2} = [2, 32]) at 128.
    a = np.arange(32, dtype=np.float32).tobytes()
    b = gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), Q.Q8_0).tobytes()
    data = a + b"\0" * (128 - len(a)) + b + b"\0" * ((-len(b)) % 32)
    base_kvs = [kv("general.architecture", V.STRING, gstr("test")),
                kv("test.value", V.UINT32, u32(7)),
                kv("test.array", V.ARRAY, i32_array([1, 2, 3, 4]))]
    info_a = tinfo("a", [32], Q.F32, 0)
    info_b = tinfo("b", [32, 2], Q.Q8_0, 128)

    def variant(kvs=None, infos=None, data_=None, **kwargs):
        return build(base_kvs if kvs is None else kvs, [info_a, info_b] if infos is None else infos,
                     data if data_ is None else data_, **kwargs)

    files = {"hand_valid": variant()}
    valid = files["hand_valid"]
    header_bytes = 24
    key0 = header_bytes + 8 + 5                     # inside "general.architecture"
    array_at = valid.index(b"test.array") + len("test.array") + 4 + 12 + 6  # inside the elements
    info_at = valid.index(b"\x01\x00\x00\x00\x00\x00\x00\x00a") + 15          # inside a's dims
    data_start = len(valid) - len(data)
    files.update({
        "corrupt_empty": b"",
        "corrupt_bad_magic": variant(magic=b"GGML"),
        "corrupt_version_1": variant(version=1),
        "corrupt_version_99": variant(version=99),
        "corrupt_big_endian": variant(version_bytes=struct.pack(">I", 3)),
        "corrupt_truncated_header": valid[:12],
        "corrupt_truncated_key": valid[:key0],
        "corrupt_truncated_array": valid[:array_at],
        "corrupt_truncated_tensor_info": valid[:info_at],
        "corrupt_truncated_data": valid[:data_start + 150],
        "corrupt_huge_tensor_count": variant(tensor_count=2 ** 62),
        "corrupt_huge_kv_count": variant(kv_count=2 ** 60),
        "corrupt_key_length_past_eof": valid[:header_bytes] + u64(2 ** 40) + valid[header_bytes + 8:],
        "corrupt_string_past_eof": variant(kvs=[kv("general.architecture", V.STRING, u64(10 ** 9) + b"test")]
                                           + base_kvs[1:]),
        "corrupt_array_length_huge": variant(kvs=base_kvs[:2] + [kv("test.array", V.ARRAY,
                                                                    i32_array([1, 2, 3, 4], 2 ** 61))]),
        "corrupt_misaligned_offset": variant(infos=[info_a, tinfo("b", [32, 2], Q.Q8_0, 100)]),
        "corrupt_tensor_past_eof": variant(infos=[info_a, tinfo("b", [32, 2], Q.Q8_0, 4096)]),
        "corrupt_offset_huge": variant(infos=[info_a, tinfo("b", [32, 2], Q.Q8_0, 2 ** 64 - 32)]),
        "corrupt_overlapping_tensors": variant(infos=[info_a, tinfo("b", [32, 2], Q.Q8_0, 64)]),
        "corrupt_unknown_type": variant(infos=[info_a, tinfo("b", [32, 2], 99, 128)]),
        "corrupt_unsupported_type": variant(infos=[info_a, tinfo("b", [256, 1], Q.Q2_K, 128)]),
        "corrupt_too_many_dims": variant(infos=[info_a, tinfo("b", [32, 2, 1, 1, 1], Q.Q8_0, 128)]),
        "corrupt_zero_dims": variant(infos=[info_a, tinfo("b", [], Q.Q8_0, 128)]),
        "corrupt_zero_dim": variant(infos=[info_a, tinfo("b", [32, 0], Q.Q8_0, 128)]),
        "corrupt_dims_overflow": variant(infos=[info_a, tinfo("b", [2 ** 32, 2 ** 32], Q.F32, 128)]),
        "corrupt_partial_block": variant(infos=[info_a, tinfo("b", [48, 1], Q.Q8_0, 128)]),
        "corrupt_duplicate_tensor": variant(infos=[info_a, tinfo("a", [32, 2], Q.Q8_0, 128)]),
        "corrupt_duplicate_key": variant(kvs=base_kvs + [kv("test.value", V.UINT32, u32(8))]),
        "corrupt_bad_alignment": variant(kvs=base_kvs + [kv("general.alignment", V.UINT32, u32(48))],
                                         alignment=48),
        "corrupt_alignment_type": variant(kvs=base_kvs + [kv("general.alignment", V.STRING, gstr("32"))]),
        "corrupt_bad_value_type": variant(kvs=base_kvs[:1] + [kv("test.value", 13, u32(7))] + base_kvs[2:]),
        "corrupt_bad_element_type": variant(kvs=base_kvs[:2] + [kv("test.array", V.ARRAY,
                                                                   u32(42) + u64(1) + u32(0))]),
        "corrupt_bad_bool": variant(kvs=base_kvs + [kv("test.flag", V.BOOL, b"\x02")]),
        "corrupt_nested_too_deep": variant(kvs=base_kvs + [kv("test.deep", V.ARRAY,
                                                              (u32(V.ARRAY) + u64(1)) * 20 + u32(V.INT32) + u64(0))]),
    })
    # What gguf-py will not write: an empty array and string, and no tensors at all.
    files["empty_array"] = build([kv("test.empty", V.ARRAY, i32_array([])),
                                  kv("test.empty_string", V.STRING, gstr(""))], [], b"")
    for name, content in files.items():
        (out / f"{name}.gguf").write_bytes(content)
    # The unbroken files must read back with the reference reader.
    for name in ("hand_valid", "empty_array"):
        reader = gguf.GGUFReader(str(out / f"{name}.gguf"))
        assert reader.fields, name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "gguf"
    parser.add_argument("--out", type=pathlib.Path, default=default_out)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, qtype, rows, cols in [("f32", Q.F32, 2, 64), ("f16", Q.F16, 2, 64),
                                    ("bf16", Q.BF16, 2, 64), ("q8_0", Q.Q8_0, 2, 256),
                                    ("q4_0", Q.Q4_0, 2, 256), ("q5_0", Q.Q5_0, 2, 256),
                                    ("q4_k", Q.Q4_K, 2, 512), ("q6_k", Q.Q6_K, 2, 512)]:
        write_type_file(args.out, name, qtype, rows, cols, seed=len(name) * 31 + int(qtype))
    write_metadata_file(args.out)
    q8 = bytearray((args.out / "types_q8_0.gguf").read_bytes())
    q8[4:8] = u32(2)
    (args.out / "v2_q8_0.gguf").write_bytes(bytes(q8))
    write_hand_files(args.out)
    total = sum(p.stat().st_size for p in args.out.glob("*.gguf"))
    print(f"wrote {len(list(args.out.glob('*.gguf')))} files, {total} bytes, to {args.out}")


if __name__ == "__main__":
    main()
