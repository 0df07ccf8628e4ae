"""Check that transformers loads the checkpoints lowbit writes (run by hand; CPU is enough).

    python transformers_load_check.py make DIR        # a tiny random Llama, saved in f32
    LOWBIT_TINY_MODEL=DIR cargo test --features safetensors --test all \
        io_safetensors::write_tiny_model_for_transformers -- --ignored
    python transformers_load_check.py load DIR        # load DIR/{bnb-nf4,ct-w4a16,ct-fp8,ct-nvfp4}

Needs torch, transformers 5, bitsandbytes, compressed-tensors and accelerate. Run it from a
folder without a `kernels.py` (transformers imports a module of that name).
"""

import sys
import warnings

import torch
from transformers import AutoModelForCausalLM, CompressedTensorsConfig, LlamaConfig, LlamaForCausalLM

warnings.filterwarnings("ignore")
mode, base = sys.argv[1], sys.argv[2]

if mode == "make":
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                      tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(base)
    sys.exit(0)

ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
ids = torch.tensor([[1, 5, 9, 42, 77, 3]])
with torch.no_grad():
    want = ref(ids).logits
w0 = ref.model.layers[0].mlp.down_proj.weight
for sub in ("bnb-nf4", "ct-w4a16", "ct-fp8", "ct-nvfp4"):
    kw = {"quantization_config": CompressedTensorsConfig(run_compressed=False)} if sub.startswith("ct") else {}
    m = AutoModelForCausalLM.from_pretrained(f"{base}/{sub}", dtype=torch.float32, device_map="cpu", **kw)
    lin = m.model.layers[0].mlp.down_proj
    if sub.startswith("bnb"):
        import bitsandbytes.functional as F
        wq = F.dequantize_4bit(lin.weight.data, lin.weight.quant_state).float()
    else:
        wq = lin.weight.data.float()
    with torch.no_grad():  # after reading the weight: bitsandbytes' CPU forward repacks it
        got = m(ids).logits
    print(f"{sub}: {type(lin).__name__}, down_proj max error {(wq - w0).abs().max().item():.4g} "
          f"(max |w| {w0.abs().max().item():.3g}), logits max diff {(got - want).abs().max().item():.4g} "
          f"(max |logit| {want.abs().max().item():.3g})")
