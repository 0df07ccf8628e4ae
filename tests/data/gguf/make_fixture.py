"""Write the GGUF fixtures the Rust tests read, with gguf-py (pip install "gguf==0.19.*").

    python tests/data/gguf/make_fixture.py

Writes, next to this script:

- fixture.gguf: metadata of every GGUF value type (scalars, arrays of each, an array of
  strings, nested arrays), and tensors F32, F16, BF16, Q8_0, Q4_0, Q4_1 (the quantized ones
  made by gguf.quants.quantize from the F32 tensor `src.weight`), an opaque Q4_K tensor, an
  I32 tensor, 1-D, 3-D and 0-D tensors.
- fixture.{q8_0,q4_0,q4_1,bf16}.f32: gguf.quants.dequantize of those tensors, little-endian f32.
- fixture.json, tiny_llama_f16.json: what gguf-py's GGUFReader reads (key order and types,
  tensor types, dims, sizes and data offsets).
- tiny_llama_f16.gguf: a two-layer llama in the layout llama.cpp's convert_hf_to_gguf.py
  writes with `--outtype f16` (its metadata keys, tensor names and types: 2-D weights F16,
  norms F32), random weights, a 64-token vocabulary.

Everything is seeded, so running the script again gives the same bytes.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

HERE = Path(__file__).resolve().parent


def fixture(path: Path) -> None:
    rng = np.random.default_rng(14)
    w = gguf.GGUFWriter(str(path), arch="lowbit-test")
    w.add_name("lowbit fixture")

    # Scalars of every type.
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 3.14159)
    w.add_float32("test.f32_neg_zero", -0.0)
    w.add_float32("test.f32_inf", float("inf"))
    w.add_bool("test.bool", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "h\u00e9llo, w\u00f6rld \u2713")
    w.add_key_value("test.string_empty", "", V.STRING)  # add_string() skips empty strings
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 2.718281828459045)

    # Arrays of every type.
    arrays = [
        ("u8", V.UINT8, [0, 1, 255]),
        ("i8", V.INT8, [-128, 0, 127]),
        ("u16", V.UINT16, [0, 65535]),
        ("i16", V.INT16, [-32768, 32767]),
        ("u32", V.UINT32, [0, 4294967295]),
        ("i32", V.INT32, [-2147483648, 2147483647, 7]),
        ("f32", V.FLOAT32, [1.5, -2.25, 1e-30]),
        ("bool", V.BOOL, [True, False, True]),
        ("string", V.STRING, ["a", "", "\u00fcn\u00ef"]),
        ("u64", V.UINT64, [0, 2**64 - 1]),
        ("i64", V.INT64, [-(2**63), 2**63 - 1]),
        ("f64", V.FLOAT64, [0.1, -1e300]),
    ]
    for name, ty, values in arrays:
        w.add_key_value(f"test.arr.{name}", values, V.ARRAY, sub_type=ty)
    # Nested arrays: each element is an array with its own element type.
    w.add_array("test.arr.nested_i32", [[1, 2, 3], [4, 5]])
    w.add_array("test.arr.nested_str", [["x", "y"], ["z"]])
    w.add_array("test.arr.nested_mixed", [[1, 2], ["a"], [[3], [4, 5]]])

    # Tensors. numpy shapes are (ne[n-1], ..., ne[0]); gguf-py reverses them on disk.
    src = rng.standard_normal((4, 64)).astype(np.float32)
    src[1, :32] *= 1e-3  # a block of small values
    src[2, 32:] = np.abs(src[2, 32:])  # an all-positive block
    src[3, 5] = 9.0  # an outlier
    w.add_tensor("src.weight", src)
    w.add_tensor("f16.weight", rng.standard_normal((3, 32)).astype(np.float16))
    bf16 = gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), T.BF16)
    w.add_tensor("bf16.weight", bf16, raw_dtype=T.BF16)
    for qt in (T.Q8_0, T.Q4_0, T.Q4_1):
        w.add_tensor(f"{qt.name.lower()}.weight", gguf.quants.quantize(src, qt), raw_dtype=qt)
    # Q4_K (lowbit has no Q4_K): valid blocks, random scales and codes, passed through as bytes.
    blocks = rng.integers(0, 256, size=(2, 144), dtype=np.uint8)
    blocks[:, 0:2] = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)  # d
    blocks[:, 2:4] = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)  # dmin
    w.add_tensor("q4_k.weight", blocks.reshape(1, 288), raw_dtype=T.Q4_K)
    w.add_tensor("position_ids", np.arange(10, dtype=np.int32))
    w.add_tensor("norm.bias", rng.standard_normal(64).astype(np.float32))
    w.add_tensor("experts.weight", rng.standard_normal((2, 3, 32)).astype(np.float32))
    w.add_tensor("scalar", np.array(0.5, dtype=np.float32))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Dequantized values, as gguf-py computes them.
    r = gguf.GGUFReader(str(path))
    for t in r.tensors:
        if t.tensor_type in (T.Q8_0, T.Q4_0, T.Q4_1, T.BF16):
            deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype("<f4")
            deq.tofile(HERE / f"fixture.{t.tensor_type.name.lower()}.f32")


def tiny_llama(path: Path) -> None:
    """A llama as convert_hf_to_gguf.py --outtype f16 lays it out (keys, names, types)."""
    rng = np.random.default_rng(15)
    n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv = 64, 32, 64, 2, 2, 1
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_type("model")
    w.add_name("Tiny Llama")
    w.add_size_label("46K")
    w.add_block_count(n_layer)
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(n_vocab)
    w.add_rope_dimension_count(head_dim)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(32)]
    tokens += [f"\u2581t{i}" for i in range(n_vocab - len(tokens))]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 35 + [-float(i) for i in range(n_vocab - 35)])
    w.add_token_types([2, 3, 3] + [6] * 32 + [1] * (n_vocab - 35))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float16)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm(n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", norm(n_embd))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(n_head_kv * head_dim, n_embd))
    w.add_tensor("output_norm.weight", norm(n_embd))
    w.add_tensor("output.weight", mat(n_vocab, n_embd))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def manifest(path: Path) -> None:
    """What gguf-py's GGUFReader sees, for the Rust tests to compare with: key order and
    types, and each tensor's type, dims, byte count and absolute data offset."""
    r = gguf.GGUFReader(str(path))
    fields = [
        {"key": k, "types": [t.name for t in f.types]}
        for k, f in r.fields.items()
        if not k.startswith("GGUF.")
    ]
    tensors = [
        {
            "name": t.name,
            "type": t.tensor_type.name,
            "dims": [int(d) for d in t.shape],
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
        }
        for t in r.tensors
    ]
    doc = {"alignment": int(r.alignment), "data_offset": int(r.data_offset), "fields": fields, "tensors": tensors}
    path.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")


def main() -> None:
    version = importlib.metadata.version("gguf")
    if not version.startswith("0.19."):
        sys.exit(f"gguf-py 0.19 expected, found {version}")
    fixture(HERE / "fixture.gguf")
    tiny_llama(HERE / "tiny_llama_f16.gguf")
    manifest(HERE / "fixture.gguf")
    manifest(HERE / "tiny_llama_f16.gguf")


if __name__ == "__main__":
    main()
