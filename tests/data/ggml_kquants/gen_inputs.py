"""Inputs of the ggml K-quant fixtures (standard library only; deterministic).

Writes, next to this file:
- `input.f32`: 32 super-blocks of 256 little-endian f32: edge cases (zeros of both signs, one
  large value, constant blocks, tiny, sub-`GROUP_MAX_EPS` and subnormal values, exact ties,
  all-positive and all-negative blocks, sub-blocks of very different scales, sparse blocks)
  and 12 super-blocks (3072 values) of MiniLM layer 0's `intermediate.dense.weight`, read from
  `cli/data/minilm_L0.safetensors`.
- `imatrix_x.f32`: 8 rows of 256: the first 256 columns of rows 0, 100, ..., 700 of that weight.
- `imatrix_w.f32`: 256 importance weights, as llama-imatrix computes them: the mean over the
  1024 captured tokens of the squared FFN-up input, columns 0..256.

Run from the repository root: `python3 tests/data/ggml_kquants/gen_inputs.py`.
"""

import json
import math
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
QK_K = 256


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F16"
        lo, hi = t["data_offsets"]
        raw = b[8 + n + lo : 8 + n + hi]
        out[name] = (t["shape"], list(struct.unpack("<%de" % (len(raw) // 2), raw)))
    return out


def write(name, values):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<%df" % len(values), *values))


rng = random.Random(12)


def normal(n, s=1.0):
    return [rng.gauss(0.0, 1.0) * s for _ in range(n)]


blocks = []
blocks.append([0.0] * QK_K)
blocks.append([-0.0] * QK_K)
b = [0.0] * QK_K; b[37] = 1000.0; blocks.append(b)
b = normal(QK_K); b[200] = -60.0; blocks.append(b)
blocks.append([0.5] * QK_K)
blocks.append([-3.0] * QK_K)
blocks.append(normal(QK_K, 1e-30))
blocks.append([v * 1e-40 for v in normal(QK_K)])  # subnormal
blocks.append(normal(QK_K, 1e-16))  # below GROUP_MAX_EPS = 1e-15
blocks.append([rng.randint(-16, 16) / 2.0 for _ in range(QK_K)])  # exact halves
blocks.append([rng.randint(-32, 32) / 4.0 for _ in range(QK_K)])
blocks.append([abs(v) + 0.25 for v in normal(QK_K)])  # all positive
blocks.append([-abs(v) - 2.0 for v in normal(QK_K)])  # all negative
blocks.append(normal(QK_K, 1e4))
blocks.append([v * 2.0 ** (i // 16 - 8) for i, v in enumerate(normal(QK_K))])  # scales per 16
blocks.append([v * 2.0 ** (i // 32 - 4) for i, v in enumerate(normal(QK_K))])  # scales per 32
b = [0.0] * QK_K
for i in rng.sample(range(QK_K), 12):
    b[i] = rng.gauss(0.0, 1.0)
blocks.append(b)
b = [0.0] * QK_K
for i in range(48, 64):
    b[i] = rng.gauss(0.0, 1.0)
blocks.append(b)
b = normal(QK_K)
for i in range(0, QK_K, 16):
    b[i + 3] = 7.5 if (i // 16) % 2 else -7.5  # one outlier per 16, alternating sign
blocks.append(b)
blocks.append([1.0 + 1e-3 * v for v in normal(QK_K)])  # nearly constant

shape, w = tensors(os.path.join(HERE, "../../../cli/data/minilm_L0.safetensors"))[
    "encoder.layer.0.intermediate.dense.weight"
]
real = w[: 12 * QK_K]
x = [f32(v) for blk in blocks for v in blk] + real
assert len(x) == 32 * QK_K, len(x)
write("input.f32", x)

rows, cols = shape
assert cols == 384
write("imatrix_x.f32", [w[r * cols + c] for r in range(0, 800, 100) for c in range(QK_K)])

ashape, a = tensors(os.path.join(HERE, "../../../cli/data/minilm_L0.safetensors"))[
    "activations.encoder.layer.0.intermediate.dense.input"
]
tokens, feats = ashape
imat = []
for c in range(QK_K):
    s = 0.0
    for t in range(tokens):
        v = a[t * feats + c]
        s += v * v
    imat.append(f32(s / tokens))
assert all(math.isfinite(v) and v > 0 for v in imat)
write("imatrix_w.f32", imat)
print(len(x) // QK_K, "super-blocks;", "imatrix rows 8 x 256")
