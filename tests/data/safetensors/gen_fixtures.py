"""Reference checkpoints for lowbit's io::safetensors tests, written by the real tools.

Needs torch (CPU), bitsandbytes 0.50.2, compressed-tensors 0.20.0 and safetensors:
    pip install torch bitsandbytes==0.50.2 compressed-tensors==0.20.0
    python gen_fixtures.py OUT_DIR

Writes OUT_DIR/bnb_refs.safetensors and OUT_DIR/ct_refs.safetensors (see README.md there).
"""

import json
import sys

import torch
from safetensors.torch import save_file

torch.manual_seed(14)
out = sys.argv[1] if len(sys.argv) > 1 else "."


def weight(rows, cols):
    w = torch.randn(rows, cols) * 0.05
    w[0, :4] = torch.tensor([0.31, -0.42, 0.0, 0.07])  # a clear row maximum
    w[1, 32:64] = 0.0  # an all-zero group
    w[2, 5] = 1.5  # an outlier
    return w.contiguous()


# ---------------------------------------------------------------- bitsandbytes
import bitsandbytes as bnb
import bitsandbytes.functional as F

bnb_tensors = {}
w = weight(32, 64)
bnb_tensors["input"] = w
for qt, dq in (("nf4", True), ("fp4", False), ("nf4", False)):
    prefix = f"{qt}_{'dq' if dq else 'sq'}"
    # What Linear4bit._save_to_state_dict writes: the packed weight, then as_dict(packed=True).
    packed, state = F.quantize_4bit(w, blocksize=64, quant_type=qt, compress_statistics=dq)
    bnb_tensors[f"{prefix}.weight"] = packed
    for k, v in state.as_dict(packed=True).items():
        bnb_tensors[f"{prefix}.weight.{k}"] = v.contiguous()
    bnb_tensors[f"{prefix}.deq"] = F.dequantize_4bit(packed, state).float().contiguous()
from transformers import BitsAndBytesConfig
import transformers

bnb_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16).to_dict()
meta = {"bitsandbytes": bnb.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "quantization_config": json.dumps(bnb_config, sort_keys=True)}
save_file(bnb_tensors, f"{out}/bnb_refs.safetensors", metadata=meta)

# ------------------------------------------------------------ compressed-tensors
import compressed_tensors
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.quantization import (
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    QuantizationStatus,
)
from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
from compressed_tensors.quantization.utils import calculate_qparams, generate_gparam

ct_tensors = {}
w = weight(16, 64)
ct_tensors["input"] = w
configs = {}


def observe(w, args):
    """What llm-compressor's memoryless min-max observer hands calculate_qparams."""
    s = args.strategy
    if s == "tensor":
        return w.amin().reshape(()), w.amax().reshape(())
    if s == "channel":
        return w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    g = args.group_size
    r = w.reshape(w.shape[0], -1, g)
    return r.amin(dim=-1), r.amax(dim=-1)


def run(name, scheme, fmt):
    # llm-compressor records each scheme's format when it compresses.
    scheme = scheme.model_copy(update={"format": fmt})
    args = scheme.weights
    lo, hi = observe(w, args)
    sd = {"weight": w.clone()}
    gs = None
    if args.strategy == "tensor_group":
        gs = generate_gparam(w.amin(), w.amax())
        sd["weight_global_scale"] = gs
    scale, zp = calculate_qparams(lo, hi, args, global_scale=gs)
    if args.strategy == "tensor":
        scale, zp = scale.reshape(1), zp.reshape(1)
    sd["weight_scale"] = scale
    sd["weight_zero_point"] = zp
    comp = BaseCompressor.get_value_from_registry(fmt)
    c = comp.compress(sd, scheme)
    for k, v in c.items():
        ct_tensors[f"{name}.{k}"] = v.contiguous()
    d = comp.decompress(dict(c), scheme)
    ct_tensors[f"{name}.deq"] = d["weight"].float().contiguous()
    qc = QuantizationConfig(
        config_groups={"group_0": scheme},
        format=fmt,
        quantization_status=QuantizationStatus.COMPRESSED,
        ignore=["lm_head"],
    )
    # ModelCompressor.update_config: version, quant_method, sparsity and transform configs,
    # then the model dump without quant_method.
    configs[name] = {
        "version": compressed_tensors.__version__,
        "quant_method": "compressed-tensors",
        "sparsity_config": {},
        "transform_config": {},
        **qc.model_dump(exclude=["quant_method"]),
    }


def scheme(fmt, **weights):
    return QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**weights), format=fmt)


run("fp8_tensor", preset_name_to_scheme("FP8", ["Linear"]), "float-quantized")
run("fp8_channel", preset_name_to_scheme("FP8_DYNAMIC", ["Linear"]), "float-quantized")
run("w4_group_sym", preset_name_to_scheme("W4A16", ["Linear"]).model_copy(
    update={"weights": QuantizationArgs(num_bits=4, strategy="group", group_size=32)}), "pack-quantized")
run("w4_group_asym", scheme("pack-quantized", num_bits=4, strategy="group", group_size=32, symmetric=False),
    "pack-quantized")
run("w4_channel_asym", scheme("pack-quantized", num_bits=4, strategy="channel", symmetric=False), "pack-quantized")
run("w8_channel_sym", scheme("pack-quantized", num_bits=8, strategy="channel"), "pack-quantized")
run("w3_group_asym", scheme("pack-quantized", num_bits=3, strategy="group", group_size=32, symmetric=False),
    "pack-quantized")
run("int8_channel", preset_name_to_scheme("W8A8", ["Linear"]), "int-quantized")
run("nvfp4", preset_name_to_scheme("NVFP4A16", ["Linear"]), "nvfp4-pack-quantized")
run("mxfp4", preset_name_to_scheme("MXFP4A16", ["Linear"]), "mxfp4-pack-quantized")
run("mxfp8", preset_name_to_scheme("MXFP8A16", ["Linear"]), "mxfp8-quantized")

meta = {"compressed-tensors": compressed_tensors.__version__, "torch": torch.__version__,
        "configs": json.dumps(configs, sort_keys=True)}
save_file(ct_tensors, f"{out}/ct_refs.safetensors", metadata=meta)
print({k: (str(v.dtype), tuple(v.shape)) for k, v in ct_tensors.items()})
