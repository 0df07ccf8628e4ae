//! `llama-quantize`'s type mixes: the type lowbit gives every tensor of eight model layouts
//! (`tests/data/gguf/mixes/*.spec`: LLaMA-7B, a small GQA llama with tied embeddings, a 70B
//! llama, Mixtral-8x7B, Qwen2-7B, Falcon-7B, a Gemma-2B-like model and MiniLM as `bert`) for
//! every file type, against the types llama.cpp's own `llama_quant_compute_types` chose for
//! the same tensor lists (the `[FTYPE]` sections of each spec; see `tests/data/README.md`).

use std::collections::HashMap;

use lowbit::io::gguf::{requantize_plan, GgmlType, Imatrix, Metadata, RequantizeOptions, Target, TensorInfo};

use crate::common::{data, Rng};

const MODELS: [&str; 8] = [
    "llama-7b",
    "llama-1b-gqa",
    "llama-70b",
    "mixtral-8x7b",
    "qwen2-7b",
    "falcon-7b",
    "gemma-2b",
    "bert-minilm",
];

struct Spec {
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    /// Tensors llama.cpp does not quantize (`tensor_allows_quantization`).
    keep: Vec<String>,
    /// Per file type: the default type and the tensors whose type differs.
    sections: Vec<(String, GgmlType, HashMap<String, GgmlType>)>,
}

fn ggml_type(name: &str) -> GgmlType {
    (0..64u32)
        .filter_map(GgmlType::from_id)
        .find(|t| t.to_string() == name)
        .unwrap_or_else(|| panic!("type {name}"))
}

fn spec(name: &str) -> Spec {
    let text = std::fs::read_to_string(data(&format!("gguf/mixes/{name}.spec"))).unwrap();
    let mut metadata = Metadata::new();
    let mut arch = String::new();
    let mut tensors = Vec::new();
    let mut keep = Vec::new();
    let mut sections: Vec<(String, GgmlType, HashMap<String, GgmlType>)> = Vec::new();
    let mut in_keep = false;
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if line == "[keep]" {
            in_keep = true;
        } else if let Some(h) = line.strip_prefix('[') {
            in_keep = false;
            let (ftype, default) = h.split_once("] ").unwrap();
            sections.push((ftype.to_owned(), ggml_type(default), HashMap::new()));
        } else if in_keep {
            keep.push(line.to_owned());
        } else if let Some((_, _, overrides)) = sections.last_mut() {
            assert!(overrides.insert(f[0].to_owned(), ggml_type(f[1])).is_none());
        } else if f[0] == "arch" {
            arch = f[1].to_owned();
            metadata.insert("general.architecture", f[1]);
        } else if f[0] == "tensor" {
            let dims: Vec<u64> = f[2..].iter().map(|d| d.parse().unwrap()).collect();
            let n = dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
            tensors.push(TensorInfo::new(f[1], dims[..n].to_vec(), GgmlType::F16).unwrap());
        } else {
            let v: u32 = f[1].parse().unwrap();
            let key = match f[0] {
                "head_count" | "head_count_kv" => format!("{arch}.attention.{}", f[0]),
                k => format!("{arch}.{k}"),
            };
            if !(f[0] == "expert_count" && v == 0) {
                metadata.insert(key, v);
            }
        }
    }
    Spec {
        metadata,
        tensors,
        keep,
        sections,
    }
}

#[test]
fn gguf_mixes_choose_llama_cpps_types_for_every_tensor() {
    let mut checked = 0;
    for model in MODELS {
        let s = spec(model);
        assert_eq!(s.sections.len(), Target::ALL.len(), "{model}");
        for (ftype, default, overrides) in &s.sections {
            let target = Target::from_name(ftype).unwrap();
            assert_eq!(target.ggml_type(), *default, "{model} {ftype}");
            let report = requantize_plan(&s.metadata, &s.tensors, target, &RequantizeOptions::default()).unwrap();
            assert_eq!(report.file_type, target.file_type());
            assert_eq!(report.tensors.len(), s.tensors.len());
            let mut seen = 0;
            for t in &report.tensors {
                let want = if s.keep.contains(&t.name) {
                    t.type_in
                } else if let Some(&ty) = overrides.get(&t.name) {
                    seen += 1;
                    ty
                } else {
                    *default
                };
                assert_eq!(t.type_out, want, "{model} {ftype} {}", t.name);
                assert_eq!(t.llama_cpp_type, t.type_out);
                checked += 1;
            }
            assert_eq!(
                seen,
                overrides.len(),
                "{model} {ftype}: every listed tensor is in the model"
            );
        }
    }
    assert_eq!(checked, 37_104);
}

/// The mixes read the model's hyperparameters: without them the same tensors get other types.
#[test]
fn gguf_mixes_follow_gqa_layers_and_experts() {
    use GgmlType::*;
    let s = spec("llama-1b-gqa");
    let pick = |m: &Metadata, target: Target, name: &str| {
        requantize_plan(m, &s.tensors, target, &RequantizeOptions::default())
            .unwrap()
            .tensors
            .into_iter()
            .find(|t| t.name == name)
            .unwrap()
            .type_out
    };
    // 32 query heads over 8 KV heads: Q2_K gives attention V Q4_K; without GQA, Q3_K.
    assert_eq!(pick(&s.metadata, Target::Q2_K, "blk.5.attn_v.weight"), Q4_K);
    let mut mha = s.metadata.clone();
    mha.insert("llama.attention.head_count_kv", Value::U32(32));
    assert_eq!(pick(&mha, Target::Q2_K, "blk.5.attn_v.weight"), Q3_K);
    // A per-layer array: layer 0's counts.
    let mut arr = s.metadata.clone();
    arr.insert("llama.attention.head_count_kv", Value::Array(Array::U32(vec![32; 16])));
    assert_eq!(pick(&arr, Target::Q2_K, "blk.5.attn_v.weight"), Q3_K);

    // Tied embeddings: token_embd.weight takes output.weight's Q6_K rule.
    assert_eq!(pick(&s.metadata, Target::Q4_K_M, "token_embd.weight"), Q6_K);
    // --pure: the target everywhere.
    let pure = RequantizeOptions::default().with_pure(true);
    let r = requantize_plan(&s.metadata, &s.tensors, Target::Q4_K_M, &pure).unwrap();
    assert!(r.tensors.iter().all(|t| t.type_out == Q4_K || t.type_out == t.type_in));
    // --output-tensor-type also sets the tied token_embd.weight.
    let out8 = RequantizeOptions::default().with_output_tensor_type(Some(Q8_0));
    let r = requantize_plan(&s.metadata, &s.tensors, Target::Q4_K_M, &out8).unwrap();
    assert_eq!(
        r.tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .unwrap()
            .type_out,
        Q8_0
    );

    // use_more_bits counts the layers of {arch}.block_count: with 24 declared layers
    // blk.4.ffn_down is no longer picked (16 layers: 0, 1, 4, 7, 10, 13, 14, 15; 24 layers:
    // 0-2, 5, 8, ..., 20-23).
    assert_eq!(pick(&s.metadata, Target::Q4_K_M, "blk.4.ffn_down.weight"), Q6_K);
    let mut deeper = s.metadata.clone();
    deeper.insert("llama.block_count", Value::U32(24));
    assert_eq!(pick(&deeper, Target::Q4_K_M, "blk.4.ffn_down.weight"), Q4_K);
}

#[test]
fn gguf_mixes_refuse_expert_tensors_without_a_layer() {
    let mut s = spec("mixtral-8x7b");
    s.tensors
        .push(TensorInfo::new("extra.ffn_down_exps.weight", vec![256, 256, 8], GgmlType::F16).unwrap());
    let e = requantize_plan(&s.metadata, &s.tensors, Target::Q4_K_M, &RequantizeOptions::default()).unwrap_err();
    assert!(
        matches!(&e, lowbit::io::gguf::Error::LayerIndex { tensor, layer: None, n_layer: 32 } if tensor == "extra.ffn_down_exps.weight"),
        "{e}"
    );
    let mut s = spec("mixtral-8x7b");
    s.tensors
        .push(TensorInfo::new("blk.32.ffn_up_exps.weight", vec![256, 256, 8], GgmlType::F16).unwrap());
    let e = requantize_plan(&s.metadata, &s.tensors, Target::Q2_K, &RequantizeOptions::default()).unwrap_err();
    assert!(
        matches!(&e, lowbit::io::gguf::Error::LayerIndex { layer: Some(32), .. }),
        "{e}"
    );
    // --pure never reads the layer, as in llama.cpp.
    let pure = RequantizeOptions::default().with_pure(true);
    assert!(requantize_plan(&s.metadata, &s.tensors, Target::Q2_K, &pure).is_ok());
}

use lowbit::io::gguf::{Array, Gguf, Tensor, Value};

/// SHA-256 (FIPS 180-4), for the digests of llama-quantize's files.
fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn gguf_mixes_sha256_is_fips_180() {
    assert_eq!(
        sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c b410ff61f20015ad".replace(' ', "")
    );
    assert_eq!(
        sha256(&[b'a'; 1000]),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
}

/// Seeded values (splitmix64; a sum of four uniforms, so no libm), exact in f64.
impl Rng {
    /// Roughly normal, mean 0, variance 1/3, with one value in 61 eight times larger.
    fn value(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| (self.next() >> 40) as f64 / (1u64 << 24) as f64).sum();
        let v = s - 2.0;
        if self.next().is_multiple_of(61) {
            8.0 * v
        } else {
            v
        }
    }
}

fn f16_tensor(rng: &mut Rng, name: &str, dims: &[u64]) -> Tensor<'static> {
    let n: u64 = dims.iter().product();
    let scale = 1.0 / (dims[0] as f64).sqrt();
    let data: Vec<u8> = (0..n)
        .flat_map(|_| half::f16::from_f64(rng.value() * scale).to_le_bytes())
        .collect();
    Tensor::new(name, dims.to_vec(), GgmlType::F16, data).unwrap()
}

fn f32_norm(rng: &mut Rng, name: &str, n: u64) -> Tensor<'static> {
    let data: Vec<u8> = (0..n)
        .flat_map(|_| ((1.0 + 0.1 * rng.value()) as f32).to_le_bytes())
        .collect();
    Tensor::new(name, vec![n], GgmlType::F32, data).unwrap()
}

/// The llama of the whole-file comparison: the metadata of `tiny_llama_f16.gguf` (what
/// `convert_hf_to_gguf.py --outtype f16` writes, tokenizer included) with 8 layers of width
/// 256, 8 query heads over 2 KV heads (GQA 4), an FFN of 640 (not whole 256-blocks:
/// `ffn_down` falls back to 32-block types) and a 64-token vocabulary, in the converter's
/// tensor order; seeded F16 weights, F32 norms.
fn mix_llama() -> Gguf<'static> {
    let (n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv) = (64u64, 256u64, 640u64, 8u32, 8u32, 2u32);
    let kv = n_embd / u64::from(n_head) * u64::from(n_head_kv);
    let tiny = Gguf::read(&std::fs::read(data("gguf/tiny_llama_f16.gguf")).unwrap())
        .unwrap()
        .into_owned();
    let mut g = Gguf::new();
    g.metadata = tiny.metadata;
    g.metadata.insert("general.name", "lowbit mix test");
    g.metadata.insert("llama.block_count", n_layer);
    g.metadata.insert("llama.embedding_length", n_embd as u32);
    g.metadata.insert("llama.feed_forward_length", n_ff as u32);
    g.metadata.insert("llama.attention.head_count", n_head);
    g.metadata.insert("llama.attention.head_count_kv", n_head_kv);
    g.metadata
        .insert("llama.rope.dimension_count", (n_embd / u64::from(n_head)) as u32);
    let mut rng = Rng(12);
    g.tensors
        .push(f16_tensor(&mut rng, "token_embd.weight", &[n_embd, n_vocab]));
    for i in 0..n_layer {
        let b = |n: &str| format!("blk.{i}.{n}");
        g.tensors.push(f32_norm(&mut rng, &b("attn_norm.weight"), n_embd));
        g.tensors
            .push(f16_tensor(&mut rng, &b("ffn_down.weight"), &[n_ff, n_embd]));
        g.tensors
            .push(f16_tensor(&mut rng, &b("ffn_gate.weight"), &[n_embd, n_ff]));
        g.tensors
            .push(f16_tensor(&mut rng, &b("ffn_up.weight"), &[n_embd, n_ff]));
        g.tensors.push(f32_norm(&mut rng, &b("ffn_norm.weight"), n_embd));
        g.tensors.push(f16_tensor(&mut rng, &b("attn_k.weight"), &[n_embd, kv]));
        g.tensors
            .push(f16_tensor(&mut rng, &b("attn_output.weight"), &[n_embd, n_embd]));
        g.tensors
            .push(f16_tensor(&mut rng, &b("attn_q.weight"), &[n_embd, n_embd]));
        g.tensors.push(f16_tensor(&mut rng, &b("attn_v.weight"), &[n_embd, kv]));
    }
    g.tensors.push(f32_norm(&mut rng, "output_norm.weight", n_embd));
    g.tensors
        .push(f16_tensor(&mut rng, "output.weight", &[n_embd, n_vocab]));
    g
}

/// MiniLM's layer 0 (`cli/data/minilm_L0.safetensors`, F16) as llama.cpp's `bert`: the query
/// projection and FFN up-projection with their biases and the attention-output LayerNorm, under
/// llama.cpp's names, 2-D weights F16, 1-D tensors F32 (as the converter writes them). Rows of
/// 384 are not whole 256-blocks: every K type falls back.
fn mix_minilm() -> Gguf<'static> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/cli/data/minilm_L0.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let body = &bytes[8 + n..];
    let mut g = Gguf::new();
    for (k, v) in [
        ("general.architecture", Value::from("bert")),
        ("general.type", "model".into()),
        ("general.name", "all-MiniLM-L6-v2 layer 0".into()),
        ("bert.block_count", 1u32.into()),
        ("bert.context_length", 512u32.into()),
        ("bert.embedding_length", 384u32.into()),
        ("bert.feed_forward_length", 1536u32.into()),
        ("bert.attention.head_count", 12u32.into()),
        ("bert.attention.layer_norm_epsilon", 1e-12f32.into()),
        ("bert.attention.causal", false.into()),
        ("bert.pooling_type", 1u32.into()),
        ("general.file_type", 1u32.into()),
        ("general.quantization_version", 2u32.into()),
    ] {
        g.metadata.insert(k, v);
    }
    for (hf, name) in [
        ("encoder.layer.0.attention.self.query.weight", "blk.0.attn_q.weight"),
        ("encoder.layer.0.attention.self.query.bias", "blk.0.attn_q.bias"),
        (
            "encoder.layer.0.attention.output.LayerNorm.weight",
            "blk.0.attn_output_norm.weight",
        ),
        (
            "encoder.layer.0.attention.output.LayerNorm.bias",
            "blk.0.attn_output_norm.bias",
        ),
        ("encoder.layer.0.intermediate.dense.weight", "blk.0.ffn_up.weight"),
        ("encoder.layer.0.intermediate.dense.bias", "blk.0.ffn_up.bias"),
    ] {
        let t = &header[hf];
        assert_eq!(t["dtype"], "F16", "{hf}");
        let (a, b) = (
            t["data_offsets"][0].as_u64().unwrap() as usize,
            t["data_offsets"][1].as_u64().unwrap() as usize,
        );
        let dims: Vec<u64> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|d| d.as_u64().unwrap())
            .collect();
        let raw = &body[a..b];
        let tensor = if dims.len() == 1 {
            let f32s: Vec<u8> = raw
                .chunks_exact(2)
                .flat_map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes())
                .collect();
            Tensor::new(name, dims, GgmlType::F32, f32s)
        } else {
            Tensor::new(name, dims, GgmlType::F16, raw.to_vec())
        };
        g.tensors.push(tensor.unwrap());
    }
    g
}

/// The sha256 of each input and of what `llama-quantize IN OUT FTYPE` wrote for it
/// (`tests/data/gguf/mixes/llama_quantize.sha256`; see `tests/data/README.md`).
fn llama_quantize_digests() -> HashMap<String, String> {
    digests("gguf/mixes/llama_quantize.sha256")
}

/// A `sha256sum` listing: file name to digest (`#` lines are comments).
fn digests(path: &str) -> HashMap<String, String> {
    std::fs::read_to_string(data(path))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (h, f) = l.split_once("  ").unwrap();
            (f.to_owned(), h.to_owned())
        })
        .collect()
}

/// The K-quant mixes (and the other file types) of two small models, written by lowbit, are
/// byte for byte the files llama.cpp's `llama-quantize` wrote (compared by SHA-256). Set
/// `LOWBIT_MIX_DIR` to a folder to also write the inputs and lowbit's outputs there.
#[test]
fn gguf_mixes_are_llama_quantizes_files_byte_for_byte() {
    let want = llama_quantize_digests();
    let dir = std::env::var_os("LOWBIT_MIX_DIR").map(std::path::PathBuf::from);
    let mut differ = Vec::new();
    let mut compared = 0;
    for (model, g) in [("mix_llama", mix_llama()), ("mix_minilm", mix_minilm())] {
        let input = g.to_bytes().unwrap();
        let file = format!("{model}.input.gguf");
        if let Some(d) = &dir {
            std::fs::write(d.join(&file), &input).unwrap();
        }
        if want.get(&file) != Some(&sha256(&input)) {
            differ.push(file);
        }
        for target in Target::ALL {
            let file = format!("{model}.{}.gguf", target.name().to_lowercase());
            let digest = want.get(&file);
            if digest.is_none() && dir.is_none() {
                continue;
            }
            let (out, _) = g.requantize(target, &RequantizeOptions::default()).unwrap();
            let out = out.to_bytes().unwrap();
            if let Some(d) = &dir {
                std::fs::write(d.join(&file), &out).unwrap();
            }
            if let Some(digest) = digest {
                if &sha256(&out) != digest {
                    differ.push(file);
                }
                compared += 1;
            }
        }
    }
    // llama-quantize's options with the mixes: --pure, --leave-output-tensor,
    // --output-tensor-type with --token-embedding-type.
    use GgmlType::{Q6_K, Q8_0};
    let options = RequantizeOptions::default;
    for (model, g, file, target, opts) in [
        (
            "mix_llama",
            mix_llama(),
            "q4_k_m.pure",
            Target::Q4_K_M,
            options().with_pure(true),
        ),
        (
            "mix_llama",
            mix_llama(),
            "q3_k_m.leave-output",
            Target::Q3_K_M,
            options().with_leave_output_tensor(true),
        ),
        (
            "mix_llama",
            mix_llama(),
            "q5_k_m.out-q8_0.embd-q6_k",
            Target::Q5_K_M,
            options()
                .with_output_tensor_type(Some(Q8_0))
                .with_token_embedding_type(Some(Q6_K)),
        ),
        (
            "mix_minilm",
            mix_minilm(),
            "q2_k.pure",
            Target::Q2_K,
            options().with_pure(true),
        ),
    ] {
        let file = format!("{model}.{file}.gguf");
        let (out, _) = g.requantize(target, &opts).unwrap();
        let out = out.to_bytes().unwrap();
        if let Some(d) = &dir {
            std::fs::write(d.join(&file), &out).unwrap();
        }
        if want.get(&file) != Some(&sha256(&out)) {
            differ.push(file);
        }
        compared += 1;
    }
    assert!(differ.is_empty(), "not llama-quantize's bytes: {differ:?}");
    assert_eq!(compared, 36);
}

/// `model.type == LLM_TYPE_70B` comes from each architecture's `load_arch_hparams`: attention
/// V of `Q3_K`/`Q4_K` becomes `Q5_K`. The expected counts are what `llama-quantize --dry-run`
/// printed for gguf-py files with these keys and 256-wide `attn_v`/`ffn_down` tensors (and
/// lowbit's files for them were llama-quantize's byte for byte, Q3_K_S, Q2_K and Q4_K_M).
#[test]
fn gguf_mixes_know_70b_models_by_architecture() {
    use GgmlType::*;
    for (arch, n_layer, n_head_kv, target, want) in [
        ("qwen2", 80u32, 2u32, Target::Q3_K_S, [(Q5_K, 80usize)].as_slice()),
        ("olmo", 80, 8, Target::Q2_K, &[(Q5_K, 80)]),
        ("jais2", 68, 8, Target::Q4_K_S, &[(Q5_K, 68)]),
        ("llama", 80, 2, Target::Q3_K_S, &[(Q5_K, 80)]),
        // llama with as many KV heads as query heads is LLaMA-65B: no bump.
        ("llama", 80, 8, Target::Q3_K_S, &[(Q3_K, 80)]),
        ("llama", 80, 8, Target::Q4_K_S, &[(Q5_K, 4), (Q4_K, 76)]),
        // Another layer count is not 70B.
        ("qwen2", 79, 2, Target::Q3_K_S, &[(Q3_K, 79)]),
    ] {
        let mut m = Metadata::new();
        m.insert("general.architecture", arch);
        m.insert(format!("{arch}.block_count"), n_layer);
        m.insert(format!("{arch}.attention.head_count"), 8u32);
        m.insert(format!("{arch}.attention.head_count_kv"), n_head_kv);
        let mut tensors = Vec::new();
        for i in 0..n_layer {
            let kv = 32 * u64::from(n_head_kv);
            tensors.push(TensorInfo::new(format!("blk.{i}.attn_v.weight"), vec![256, kv], F16).unwrap());
            tensors.push(TensorInfo::new(format!("blk.{i}.ffn_down.weight"), vec![256, 256], F16).unwrap());
        }
        let r = requantize_plan(&m, &tensors, target, &RequantizeOptions::default()).unwrap();
        let mut counts: Vec<(GgmlType, usize)> = Vec::new();
        for t in r.tensors.iter().filter(|t| t.name.contains("attn_v")) {
            match counts.iter_mut().find(|(ty, _)| *ty == t.type_out) {
                Some((_, n)) => *n += 1,
                None => counts.push((t.type_out, 1)),
            }
        }
        assert_eq!(counts, want, "{arch} {n_layer} {target}");
    }
}

/// A type set by option is not checked against the row length for `output.weight` and
/// `token_embd.weight` (llama.cpp returns it before its fallback); lowbit then refuses rows
/// that are not whole blocks of it. A tied `token_embd.weight` that takes
/// `--output-tensor-type` does go through the fallback, as in llama.cpp.
#[test]
fn gguf_mixes_option_types_and_the_fallback() {
    use GgmlType::*;
    let s = spec("bert-minilm"); // tied, rows of 384
    let embd = |opts: &RequantizeOptions| {
        requantize_plan(&s.metadata, &s.tensors, Target::Q4_K_M, opts).map(|r| {
            r.tensors
                .into_iter()
                .find(|t| t.name == "token_embd.weight")
                .unwrap()
                .type_out
        })
    };
    assert_eq!(embd(&RequantizeOptions::default()).unwrap(), Q8_0);
    assert_eq!(
        embd(&RequantizeOptions::default().with_output_tensor_type(Some(Q4_K))).unwrap(),
        Q5_0
    );
    assert_eq!(
        embd(&RequantizeOptions::default().with_token_embedding_type(Some(Q5_1))).unwrap(),
        Q5_1
    );
    let e = embd(&RequantizeOptions::default().with_token_embedding_type(Some(Q4_K))).unwrap_err();
    assert!(e.to_string().contains("token_embd.weight"), "{e}");
}

/// An importance matrix for `mix_llama`: seeded importances in (0, 4) for every weight matrix
/// but `blk.3.attn_k.weight` (quantized without one, as llama-quantize does for a missing
/// entry) and `output.weight`, an entry no tensor has, and a token-embedding entry of the
/// wrong size (ignored, as llama.cpp ignores it); llama-imatrix's provenance keys.
fn mix_imatrix() -> Imatrix {
    let g = mix_llama();
    let mut rng = Rng(2026);
    let mut m = Imatrix::new();
    for t in &g.tensors {
        let name = t.info.name.as_str();
        if t.info.dims.len() < 2 || name == "blk.3.attn_k.weight" || name == "output.weight" {
            continue;
        }
        let n = if name == "token_embd.weight" {
            7
        } else {
            t.info.dims[0] as usize
        };
        let w = (0..n)
            .map(|_| ((rng.next() >> 40) as f32 + 1.0) / (1u64 << 22) as f32)
            .collect();
        m.insert(name, w).unwrap();
    }
    m.insert("blk.99.ffn_up.weight", vec![1.0; 256]).unwrap();
    m.set_provenance(vec!["calibration.txt".into()], 12, 512);
    m
}

/// With an importance matrix (written by lowbit in llama-imatrix's GGUF and legacy formats,
/// read back by `Imatrix::read`), lowbit's files are byte for byte what `llama-quantize
/// --imatrix` wrote from the same matrix file (`tests/data/gguf/mixes/llama_quantize_imatrix.sha256`).
#[test]
fn gguf_mixes_with_an_imatrix_are_llama_quantizes_files() {
    let want = digests("gguf/mixes/llama_quantize_imatrix.sha256");
    let dir = std::env::var_os("LOWBIT_MIX_DIR").map(std::path::PathBuf::from);
    let m = mix_imatrix();
    let gguf = m.to_bytes().unwrap();
    let dat = m.to_legacy_bytes().unwrap();
    let mut differ = Vec::new();
    for (file, bytes) in [("mix_llama.imatrix.gguf", &gguf), ("mix_llama.imatrix.dat", &dat)] {
        if let Some(d) = &dir {
            std::fs::write(d.join(file), bytes).unwrap();
        }
        if want.get(file) != Some(&sha256(bytes)) {
            differ.push(file.to_owned());
        }
    }
    let g = mix_llama();
    let mut compared = 0;
    // The digests cover the 14 quantized file types (all compared once); CI checks these
    // eight, which take every path: Q4_0's ffn_down rule (Q4_1 with an imatrix), the K-quant
    // searches, Q8_0's ignored weights, and the legacy file.
    let runs = [
        Target::Q4_0,
        Target::Q2_K,
        Target::Q3_K_S,
        Target::Q4_K_M,
        Target::Q5_K_M,
        Target::Q6_K,
        Target::Q8_0,
    ]
    .map(|t| (t, "mix_llama.imatrix.gguf", &gguf))
    .into_iter()
    .chain([(Target::Q4_K_M, "mix_llama.imatrix.dat", &dat)]);
    for (target, matrix, bytes) in runs {
        let read = Imatrix::read(bytes).unwrap();
        let opts = RequantizeOptions::default().with_imatrix(matrix, read);
        let (out, _) = g.requantize(target, &opts).unwrap();
        let out = out.to_bytes().unwrap();
        let ext = matrix.rsplit('.').next().unwrap();
        let file = format!("mix_llama.{}.imatrix-{ext}.gguf", target.name().to_lowercase());
        if let Some(d) = &dir {
            std::fs::write(d.join(&file), &out).unwrap();
        }
        match want.get(&file) {
            Some(h) if *h == sha256(&out) => compared += 1,
            Some(_) => differ.push(file),
            None if dir.is_some() => {}
            None => differ.push(format!("{file} (no digest)")),
        }
    }
    assert!(differ.is_empty(), "not llama-quantize's bytes: {differ:?}");
    assert_eq!(compared, 8);
}
