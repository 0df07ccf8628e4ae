"""Reference vectors for lowbit's ONNX Runtime qparams (`lowbit::compat::ort::qparams`).

Calls ONNX Runtime's own functions, `onnxruntime.quantization.quant_utils`:
`get_qmin_qmax_for_qType`, `compute_scale_zp` and `quantize_nparray`, on float32 ranges the
way the QDQ quantizer passes them (`TensorData.range_value` is float32), for every integer
`QuantType` (QUInt8, QInt8, QUInt16, QInt16, QUInt4, QInt4), symmetric or not, with and
without `reduce_range`, and a few with `min_real_range`. For each, the codes
`quantize_nparray` gives on probes derived from the range (ends, midpoint, exact ties, values
far outside, infinities).

Usage: python make_qparams.py > qparams.json   (pip install onnxruntime numpy)

Every float is written as the decimal of its float32 bits, so the file is exact. A vector is\na row of the `columns` (`range` indexes `ranges`, `codes` are for that range's `probes`).
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto
from onnxruntime.quantization import quant_utils as qu

QTYPES = {
    "QUInt8": TensorProto.UINT8,
    "QInt8": TensorProto.INT8,
    "QUInt16": TensorProto.UINT16,
    "QInt16": TensorProto.INT16,
    "QUInt4": TensorProto.UINT4,
    "QInt4": TensorProto.INT4,
}

F32MAX = float(np.finfo(np.float32).max)
TINY = float(np.finfo(np.float32).tiny)


def f32(x):
    return np.float32(x)


def bits(x):
    return int(np.array(x, dtype=np.float32).view(np.uint32))


def ranges():
    r = [
        (-10.68, 10.68),  # the example: ORT 128, torch.ao 127 (uint8)
        (-1.0, 3.0),
        (-1.0, 1.0),
        (0.0, 10.0),
        (1.0, 2.0),  # rmin > 0
        (-2.0, -1.0),  # rmax < 0
        (0.0, 0.0),
        (-0.0, 0.0),
        (3.0, 3.0),  # rmin == rmax
        (-3.0, -3.0),
        (-1.0, 254.0),
        (-2.5, 252.5),  # zero point ties (uint8)
        (-3.5, 251.5),
        (-0.5, 1.5),
        (-3.0, 1.0),
        (-1e-38, 1e-38),  # scale below float32 tiny: 1.0 and 0
        (-1e-45, 1e-45),  # subnormal
        (0.0, 255.0 * TINY),  # scale exactly tiny (uint8)
        (0.0, float(np.nextafter(f32(255.0 * TINY), f32(0)))),
        (-1e-30, 1e-30),
        (-1e-6, 3e-6),
        (-F32MAX, F32MAX),  # huge: the width overflows float32, ORT subtracts in float64
        (-3e38, 1e38),
        (0.0, F32MAX),
        (-F32MAX, 0.0),
        (-1e30, 1e30),
        (-65504.0, 65504.0),
        (-448.0, 448.0),
    ]
    rng = np.random.default_rng(14)
    for _ in range(10):
        a, b = rng.standard_normal(2) * 10.0 ** rng.integers(-4, 5)
        r.append((min(a, b), max(a, b)))
    return [(f32(a), f32(b)) for a, b in r]


def probes(rmin, rmax):
    mid = f32((np.float64(rmin) + np.float64(rmax)) / 2)
    p = [rmin, rmax, f32(0.0), f32(-0.0), mid, f32(rmin * f32(2)), f32(rmax * f32(2))]
    # Values near code boundaries of the uint8 scale: k + 1/2 steps.
    width = np.float64(max(rmax, 0)) - np.float64(min(rmin, 0))
    if width > 0:
        s = f32(width / 255.0)
        for k in (0.5, 1.5, 2.5, -0.5, -1.5, 100.5, -100.5):
            p.append(f32(s * f32(k)))
    p += [f32(1e30), f32(-1e30), f32(np.inf), f32(-np.inf)]
    return [f32(x) for x in p]


def main():
    out = {
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "columns": [
            "range",
            "qtype",
            "symmetric",
            "reduce_range",
            "min_real_range",
            "qmin",
            "qmax",
            "scale",
            "zero_point",
            "codes",
        ],
        "ranges": [],
        "vectors": [],
    }
    rs = ranges()
    with np.errstate(all="ignore"):
        for ri, (rmin, rmax) in enumerate(rs):
            pr = probes(rmin, rmax)
            out["ranges"].append({"rmin": bits(rmin), "rmax": bits(rmax), "probes": [bits(x) for x in pr]})
            arr = np.array(pr, dtype=np.float32)
            for name, qt in QTYPES.items():
                for symmetric in (False, True):
                    for reduce_range in (False, True):
                        mrrs = [None]
                        if name in ("QUInt8", "QInt8") and not reduce_range:
                            mrrs.append(1e-4)
                        for mrr in mrrs:
                            qmin, qmax = qu.get_qmin_qmax_for_qType(qt, reduce_range=reduce_range, symmetric=symmetric)
                            zp, scale = qu.compute_scale_zp(
                                np.array(rmin, dtype=np.float32),
                                np.array(rmax, dtype=np.float32),
                                qmin,
                                qmax,
                                symmetric,
                                mrr,
                            )
                            assert scale.dtype == np.float32, scale.dtype
                            codes = qu.quantize_nparray(qt, arr, scale, zp)
                            out["vectors"].append(
                                [
                                    ri,
                                    name,
                                    int(symmetric),
                                    int(reduce_range),
                                    None if mrr is None else bits(f32(mrr)),
                                    int(qmin),
                                    int(qmax),
                                    bits(scale),
                                    int(zp),
                                    [int(c) for c in np.asarray(codes).astype(np.int64)],
                                ]
                            )
    # One vector a line: small diffs when the tool's version changes.
    head = {k: v for k, v in out.items() if k != "vectors"}
    text = json.dumps(head, separators=(",", ":"))[:-1]
    lines = [json.dumps(v, separators=(",", ":")) for v in out["vectors"]]
    sys.stdout.write(text + ',"vectors":[\n' + ",\n".join(lines) + "\n]}\n")


if __name__ == "__main__":
    main()
