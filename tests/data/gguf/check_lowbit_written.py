"""Check with gguf-py 0.19 (pip install "gguf==0.19.*") that it reads the files lowbit wrote.

    python tests/data/gguf/check_lowbit_written.py

- lowbit_written.gguf (tests/all/gguf.rs, `lowbit_written`): every value type, nested and
  empty arrays, alignment 64, tensors lowbit quantized (checked against gguf.quants on the same
  inputs) and a Q4_K tensor passed through from fixture.gguf.
- tiny_llama_{q8_0,q4_0}.gguf (`gguf_requantize_tiny_llama_as_llama_quantize`): lowbit's
  re-quantization of tiny_llama_f16.gguf; every key of the F16 file is there, each
  quantized tensor equals gguf.quants.quantize of the F16 tensor, the others are copies.

Exits non-zero on the first mismatch; prints one line per file and a count at the end.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

HERE = Path(__file__).resolve().parent
checks = 0


def check(cond: bool, what: str) -> None:
    global checks
    checks += 1
    if not cond:
        sys.exit(f"FAILED: {what}")


def value(field: gguf.ReaderField):
    return field.contents()


def lowbit_written() -> None:
    r = gguf.GGUFReader(str(HERE / "lowbit_written.gguf"))
    check(r.alignment == 64 and r.data_offset % 64 == 0, "alignment 64")
    f = r.fields
    expect = {
        "general.architecture": ([V.STRING], "lowbit-test"),
        "general.alignment": ([V.UINT32], 64),
        "lowbit.u8": ([V.UINT8], 7),
        "lowbit.i8": ([V.INT8], -7),
        "lowbit.u16": ([V.UINT16], 65535),
        "lowbit.i16": ([V.INT16], -32768),
        "lowbit.u32": ([V.UINT32], 123456),
        "lowbit.i32": ([V.INT32], -123456),
        "lowbit.f32": ([V.FLOAT32], float(np.float32(0.1))),
        "lowbit.bool": ([V.BOOL], True),
        "lowbit.string": ([V.STRING], "\U0001f980 lowbit"),
        "lowbit.u64": ([V.UINT64], 2**64 - 1),
        "lowbit.i64": ([V.INT64], -(2**63)),
        "lowbit.f64": ([V.FLOAT64], -0.1),
        "lowbit.arr.u8": ([V.ARRAY, V.UINT8], [1, 2, 3]),
        "lowbit.arr.i8": ([V.ARRAY, V.INT8], [-1]),
        "lowbit.arr.u16": ([V.ARRAY, V.UINT16], [1, 2]),
        "lowbit.arr.i16": ([V.ARRAY, V.INT16], [-1, 1]),
        "lowbit.arr.u32": ([V.ARRAY, V.UINT32], [1, 2, 3, 4]),
        "lowbit.arr.i32": ([V.ARRAY, V.INT32], [-1, 0, 1]),
        "lowbit.arr.f32": ([V.ARRAY, V.FLOAT32], [0.5, -0.25]),
        "lowbit.arr.bool": ([V.ARRAY, V.BOOL], [False, True]),
        "lowbit.arr.string": ([V.ARRAY, V.STRING], ["alpha", "\u03b2", ""]),
        "lowbit.arr.u64": ([V.ARRAY, V.UINT64], [2**64 - 1, 0]),
        "lowbit.arr.i64": ([V.ARRAY, V.INT64], [-(2**63), -1]),
        "lowbit.arr.f64": ([V.ARRAY, V.FLOAT64], [1e-300, 3.5]),
    }
    keys = [k for k in f if not k.startswith("GGUF.")]
    check(keys == list(expect) + ["lowbit.arr.nested", "lowbit.arr.empty"], f"key order {keys}")
    for k, (types, v) in expect.items():
        check(f[k].types == types, f"{k} types {f[k].types}")
        check(value(f[k]) == v, f"{k} = {value(f[k])!r}, expected {v!r}")
    # Nested: [[1, 2] as u16, ["n"]]. gguf-py flattens nested arrays in contents(); read the parts.
    nested = f["lowbit.arr.nested"]
    check(nested.types[:2] == [V.ARRAY, V.ARRAY], "nested types")
    parts = [p.tolist() for p in nested.parts[3:]]
    # element type, count, [u16 1], [u16 2], element type, count, [len], b"n"
    check(parts[0] == [V.ARRAY] and parts[1] == [2], f"nested header {parts[:2]}")
    check(parts[2:6] == [[V.UINT16], [2], [1], [2]], f"nested first {parts[2:6]}")
    check(parts[6:8] == [[V.STRING], [1]] and bytes(nested.parts[-1]) == b"n", f"nested second {parts[6:]}")
    empty = f["lowbit.arr.empty"]
    check([p.tolist() for p in empty.parts[3:]] == [[V.INT32], [0]], "empty array")

    x = np.array([((i * 37 % 101) - 50.0) / 16.0 for i in range(128)], dtype=np.float32)
    want = {
        "x.f32": (T.F32, [64, 2], x.reshape(2, 64)),
        "x.f16": (T.F16, [64, 2], x.astype(np.float16).reshape(2, 64)),
        "x.bf16": (T.BF16, [32, 2, 2], gguf.quants.quantize(x.reshape(2, 2, 32), T.BF16)),
        "x.q8_0": (T.Q8_0, [64, 2], gguf.quants.quantize(x.reshape(2, 64), T.Q8_0)),
        "x.q4_0": (T.Q4_0, [128], gguf.quants.quantize(x, T.Q4_0)),
        "x.q4_1": (T.Q4_1, [32, 4], gguf.quants.quantize(x.reshape(4, 32), T.Q4_1)),
        "ids": (T.I32, [5], np.arange(5, dtype=np.int32)),
    }
    src = {t.name: t for t in gguf.GGUFReader(str(HERE / "fixture.gguf")).tensors}
    names = [t.name for t in r.tensors]
    check(names == list(want)[:6] + ["passthrough.q4_k", "ids"], f"tensors {names}")
    for t in r.tensors:
        check(t.data_offset % 64 == 0, f"{t.name} aligned")
        if t.name == "passthrough.q4_k":
            check(t.tensor_type == T.Q4_K and t.shape.tolist() == [512, 1], "q4_k info")
            check(np.array_equal(t.data, src["q4_k.weight"].data), "q4_k bytes")
            continue
        ty, dims, data = want[t.name]
        check(t.tensor_type == ty and t.shape.tolist() == dims, f"{t.name} info")
        check(t.data.tobytes() == np.ascontiguousarray(data).tobytes(), f"{t.name} bytes")
    print(f"lowbit_written.gguf: {len(r.fields) - 3} keys, {len(r.tensors)} tensors as expected")


def requantized(name: str, qtype: T, ftype: int) -> None:
    src = gguf.GGUFReader(str(HERE / "tiny_llama_f16.gguf"))
    r = gguf.GGUFReader(str(HERE / name))
    skeys = [k for k in src.fields if not k.startswith("GGUF.")]
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    moved = ["general.quantization_version", "general.file_type"]
    check(keys == [k for k in skeys if k not in moved] + moved, f"{name}: key order")
    for k in skeys:
        if k != "general.file_type":
            check(r.fields[k].types == src.fields[k].types, f"{name}: {k} types")
            check(value(r.fields[k]) == value(src.fields[k]), f"{name}: {k} value")
    check(value(r.fields["general.file_type"]) == ftype, f"{name}: file type")
    check(value(r.fields["general.quantization_version"]) == 2, f"{name}: quantization version")
    stensors = {t.name: t for t in src.tensors}
    check(sorted(stensors) == sorted(t.name for t in r.tensors), f"{name}: tensor names")
    n_quantized = 0
    for t in r.tensors:
        s = stensors[t.name]
        check(t.shape.tolist() == s.shape.tolist(), f"{name}: {t.name} dims")
        if len(s.shape) == 1:
            check(t.tensor_type == s.tensor_type and np.array_equal(t.data, s.data), f"{name}: {t.name} kept")
            continue
        # 2-D: quantized from the F16 values, as gguf.quants does it (output.weight gets Q8_0).
        want_type = T.Q8_0 if t.name == "output.weight" else qtype
        check(t.tensor_type == want_type, f"{name}: {t.name} type {t.tensor_type.name}")
        want = gguf.quants.quantize(np.asarray(s.data).astype(np.float32), want_type)
        check(t.data.tobytes() == want.tobytes(), f"{name}: {t.name} bytes")
        n_quantized += 1
    print(f"{name}: {len(keys)} keys kept, {n_quantized} tensors equal to gguf.quants.quantize")


def main() -> None:
    version = importlib.metadata.version("gguf")
    if not version.startswith("0.19."):
        sys.exit(f"gguf-py 0.19 expected, found {version}")
    lowbit_written()
    requantized("tiny_llama_q8_0.gguf", T.Q8_0, 7)
    requantized("tiny_llama_q4_0.gguf", T.Q4_0, 2)
    print(f"{checks} passed, 0 failed")


if __name__ == "__main__":
    main()
