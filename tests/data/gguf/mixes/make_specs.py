"""Write the model specs (metadata facts and tensor lists) of tests/data/gguf/mixes/.

Each NAME.spec has the header lines `llama_tensor_get_type` reads (architecture, block_count,
head counts, expert_count) and one `tensor NAME NE0 NE1 NE2 NE3` line per tensor, in the
layout llama.cpp's converter gives these models. The expected types (`[FTYPE] default` sections
with the tensors whose type differs from the default) are appended by running llama.cpp's own
`llama_quant_compute_types` on each spec (see tests/data/README.md). Standard library only:
`python3 tests/data/gguf/mixes/make_specs.py` from the repository root.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def model(name, arch, n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, *, tied=False, n_expert=0,
          layer=None, extra=()):
    t = [("token_embd.weight", n_embd, n_vocab)]
    t += list(extra)
    t.append(("output_norm.weight", n_embd))
    if not tied:
        t.append(("output.weight", n_embd, n_vocab))
    n_kv = n_embd // n_head * n_head_kv
    for il in range(n_layer):
        for tn in layer(il, n_embd, n_ff, n_kv, n_expert):
            t.append((f"blk.{il}.{tn[0]}",) + tuple(tn[1:]))
    lines = [f"# {name}", f"arch {arch}", f"block_count {n_layer}", f"head_count {n_head}",
             f"head_count_kv {n_head_kv}", f"expert_count {n_expert}"]
    for name_, *ne in t:
        ne = list(ne) + [1] * (4 - len(ne))
        lines.append("tensor " + name_ + " " + " ".join(str(d) for d in ne))
    with open(os.path.join(HERE, name + ".spec"), "w") as f:
        f.write("\n".join(lines) + "\n")


def llama_layer(il, e, ff, kv, n_expert):
    yield ("attn_norm.weight", e)
    yield ("attn_q.weight", e, e)
    yield ("attn_k.weight", e, kv)
    yield ("attn_v.weight", e, kv)
    yield ("attn_output.weight", e, e)
    yield ("ffn_norm.weight", e)
    if n_expert:
        yield ("ffn_gate_inp.weight", e, n_expert)
        yield ("ffn_gate_exps.weight", e, ff, n_expert)
        yield ("ffn_up_exps.weight", e, ff, n_expert)
        yield ("ffn_down_exps.weight", ff, e, n_expert)
    else:
        yield ("ffn_gate.weight", e, ff)
        yield ("ffn_up.weight", e, ff)
        yield ("ffn_down.weight", ff, e)


def qwen2_layer(il, e, ff, kv, n_expert):
    for x in llama_layer(il, e, ff, kv, n_expert):
        yield x
        if x[0] in ("attn_q.weight", "attn_k.weight", "attn_v.weight"):
            yield (x[0].replace("weight", "bias"), x[2])


def falcon_layer(il, e, ff, kv, n_expert):
    yield ("attn_norm.weight", e)
    yield ("attn_norm.bias", e)
    yield ("attn_qkv.weight", e, e + 2 * kv)
    yield ("attn_output.weight", e, e)
    yield ("ffn_up.weight", e, ff)
    yield ("ffn_down.weight", ff, e)


def bert_layer(il, e, ff, kv, n_expert):
    for p in ("attn_q", "attn_k", "attn_v"):
        yield (p + ".weight", e, e)
        yield (p + ".bias", e)
    yield ("attn_output.weight", e, e)
    yield ("attn_output.bias", e)
    yield ("attn_output_norm.weight", e)
    yield ("attn_output_norm.bias", e)
    yield ("ffn_up.weight", e, ff)
    yield ("ffn_up.bias", ff)
    yield ("ffn_down.weight", ff, e)
    yield ("ffn_down.bias", e)
    yield ("layer_output_norm.weight", e)
    yield ("layer_output_norm.bias", e)


def gemma_layer(il, e, ff, kv, n_expert):
    for x in llama_layer(il, e, ff, kv, n_expert):
        yield x
        if x[0] == "attn_output.weight":
            yield ("post_attention_norm.weight", e)
    yield ("post_ffw_norm.weight", e)


# LLaMA-7B: 32 layers, multi-head attention.
model("llama-7b", "llama", 32, 4096, 11008, 32, 32, 32000, layer=llama_layer)
# A small GQA llama with tied embeddings (Llama-3.2-1B's shapes: 4 query heads per KV head).
model("llama-1b-gqa", "llama", 16, 2048, 8192, 32, 8, 128256, tied=True, layer=llama_layer)
# A 70B llama (80 layers, GQA 8): llama.cpp's LLM_TYPE_70B rule.
model("llama-70b", "llama", 80, 8192, 28672, 64, 8, 128256, layer=llama_layer)
# Mixtral-8x7B: 8 experts.
model("mixtral-8x7b", "llama", 32, 4096, 14336, 32, 8, 32000, n_expert=8, layer=llama_layer)
# Qwen2-7B: GQA 7, attention biases.
model("qwen2-7b", "qwen2", 28, 3584, 18944, 28, 4, 152064, layer=qwen2_layer)
# Falcon-7B: fused QKV, rows of 4544 (not whole 256-blocks: fallbacks).
model("falcon-7b", "falcon", 32, 4544, 18176, 71, 1, 65024, layer=falcon_layer)
# Gemma-2B-like: tied embeddings, one KV head.
model("gemma-2b", "gemma", 18, 2048, 16384, 8, 1, 256000, tied=True, layer=gemma_layer)
# all-MiniLM-L6-v2 as llama.cpp's bert: rows of 384 (fallbacks), token types, positions.
model("bert-minilm", "bert", 6, 384, 1536, 12, 12, 30522, tied=True, layer=bert_layer,
      extra=[("token_types.weight", 384, 2), ("position_embd.weight", 384, 512),
             ("token_embd_norm.weight", 384), ("token_embd_norm.bias", 384)])
