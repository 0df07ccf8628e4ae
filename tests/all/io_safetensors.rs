//! `io::safetensors`: write and read back every layout, and read (and reproduce) files written
//! by bitsandbytes 0.50.2 and compressed-tensors 0.20.0 (`tests/data/safetensors/`).

use lowbit::compat::bnb::{dequantize_4bit, Absmax, QuantType};
use lowbit::io::safetensors::compressed::{self, Activations, Scheme, Strategy};
use lowbit::io::safetensors::{bnb, to_bytes, Dtype, SafetensorsFile, Tensor, TensorData};
use lowbit::quant::mx::{self, MxElement, MxQuantizer, ScaleRule};
use lowbit::quant::Quantizer;
use lowbit::{Bf16, FloatFormat};
use serde_json::Value;

use crate::common::{bits, data};

/// Same name, shape, dtype and bytes (an F32 tensor equals its raw bytes).
fn same(a: &Tensor, b: &Tensor) -> bool {
    a.name == b.name && a.shape == b.shape && a.dtype() == b.dtype() && a.bytes() == b.bytes()
}

fn bf16(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|&x| Bf16::decode_f32(Bf16::encode_f32(x)).to_bits())
        .collect()
}

fn weight(rows: usize, cols: usize) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut w: Vec<f32> = (0..rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect();
    w[cols + 32..cols + 64].fill(0.0); // an all-zero group in row 1
    w[2 * cols + 5] = 1.5; // an outlier
    w
}

#[test]
fn floats_and_integers_round_trip() {
    let w = weight(4, 64);
    let ids: Vec<u8> = (0..7i64).flat_map(|v| v.to_le_bytes()).collect();
    let tensors = vec![
        Tensor::f32("f32", vec![4, 64], w.clone()).unwrap(),
        Tensor::cast("f64", vec![256], &w, Dtype::F64).unwrap(),
        Tensor::cast("f16", vec![2, 2, 64], &w, Dtype::F16).unwrap(),
        Tensor::cast("bf16", vec![4, 64], &w, Dtype::BF16).unwrap(),
        Tensor::f32("scalar", vec![], vec![0.5]).unwrap(),
        Tensor::raw("position_ids", vec![1, 7], Dtype::I64, ids.clone()).unwrap(),
    ];
    let bytes = to_bytes(&tensors, None).unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    assert_eq!(file.names(), ["bf16", "f16", "f32", "f64", "position_ids", "scalar"]);
    // F32 is borrowed from the buffer, F64 rounds back exactly.
    assert!(matches!(file.f32s("f32").unwrap(), std::borrow::Cow::Borrowed(_)));
    assert_eq!(bits(&file.f32s("f32").unwrap()), bits(&w));
    assert_eq!(bits(&file.tensor("f64").unwrap().to_f32().unwrap()), bits(&w));
    // The casts are lowbit's encoders: decoding them gives the same values as decoding the
    // bytes that were written.
    for (name, shape) in [("f16", vec![2, 2, 64]), ("bf16", vec![4, 64])] {
        let t = file.tensor(name).unwrap();
        assert_eq!(t.shape, shape);
        let written = tensors.iter().find(|t| t.name == name).unwrap();
        assert_eq!(bits(&t.to_f32().unwrap()), bits(&written.to_f32().unwrap()));
        assert_eq!(file.raw(name).unwrap(), *written);
    }
    let bf = file.tensor("bf16").unwrap().to_f32().unwrap();
    assert!(w.iter().zip(&bf).all(|(a, b)| (a - b).abs() <= a.abs() / 256.0));
    let ids_back = file.tensor("position_ids").unwrap();
    assert_eq!(
        ids_back.data,
        TensorData::Raw {
            dtype: Dtype::I64,
            bytes: ids
        }
    );
    assert_eq!(file.tensor("scalar").unwrap().shape, Vec::<usize>::new());
    // What is read writes back to the same bytes.
    let again = to_bytes(
        &file.names().iter().map(|n| file.raw(n).unwrap()).collect::<Vec<_>>(),
        None,
    )
    .unwrap();
    assert_eq!(again, bytes);
    // Through std::io, with metadata.
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let mut buf = Vec::new();
    lowbit::io::safetensors::write(&tensors, Some(&meta), &mut buf).unwrap();
    let (back, m) = lowbit::io::safetensors::read(buf.as_slice()).unwrap();
    assert_eq!(back.len(), 6);
    assert_eq!(m.unwrap()["format"], "pt");
}

#[test]
fn bnb_write_read_back() {
    let w = weight(32, 64);
    for (qt, dq, bs) in [
        (QuantType::Nf4, true, 64),
        (QuantType::Nf4, false, 32),
        (QuantType::Fp4, true, 128),
        (QuantType::Fp4, false, 64),
    ] {
        let tensors = bnb::quantize("layer", &[32, 64], &w, qt, bs, dq, Dtype::F16).unwrap();
        let bytes = to_bytes(&tensors, None).unwrap();
        let file = SafetensorsFile::parse(&bytes).unwrap();
        let q = bnb::read(&file, "layer").unwrap();
        assert_eq!(q.shape, [32, 64]);
        assert_eq!(q.dtype, "float16");
        let (packed, state) = lowbit::compat::bnb::quantize_4bit(&w, bs, qt, dq).unwrap();
        assert_eq!(q.packed, packed);
        assert_eq!(q.state, state);
        // The reader's dequantization (the file's maps) equals lowbit's bnb reproduction.
        let a = q.dequantize().unwrap();
        let b = dequantize_4bit(&packed, &state).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x == y), "{qt:?} {dq}");
        // Writing what was read gives the same bytes.
        let again = bnb::tensors("layer", &q.shape, q.packed.clone(), &q.state, Dtype::F16).unwrap();
        assert_eq!(to_bytes(&again, None).unwrap(), bytes);
    }
    let t = bnb::quantize(
        "l",
        &[3, 5],
        &weight(3, 64)[..15],
        QuantType::Nf4,
        64,
        false,
        Dtype::F32,
    )
    .unwrap();
    assert_eq!(t[0].shape, [8, 1]); // ceil(15 / 2) bytes, as bitsandbytes' [n/2, 1]
    assert!(bnb::quantize("l", &[3, 5], &[0.0; 14], QuantType::Nf4, 64, false, Dtype::F32).is_err());
    assert!(bnb::quantize("l", &[2, 32], &[0.0; 64], QuantType::Nf4, 48, false, Dtype::F32).is_err());
}

/// Files written by bitsandbytes 0.50.2 (CPU) through `QuantState.as_dict(packed=True)`.
#[test]
fn bnb_reads_and_writes_what_bitsandbytes_does() {
    let bytes = std::fs::read(data("safetensors/bnb_refs.safetensors")).unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    let input = file.f32s("input").unwrap();
    for prefix in ["nf4_dq", "fp4_sq", "nf4_sq"] {
        let q = bnb::read(&file, prefix).unwrap();
        assert_eq!((q.shape.as_slice(), q.dtype.as_str()), (&[32, 64][..], "float32"));
        // Dequantized as bitsandbytes does.
        let deq = file.f32s(&format!("{prefix}.deq")).unwrap();
        assert_eq!(bits(&q.dequantize().unwrap()), bits(&deq), "{prefix}");
        // lowbit writes back the same tensors, JSON bytes included.
        let ours = bnb::tensors(prefix, &q.shape, q.packed.clone(), &q.state, Dtype::F32).unwrap();
        for t in &ours {
            let theirs = file.raw(&t.name).unwrap();
            if t.name.ends_with("nested_quant_map") {
                // bitsandbytes on the CPU builds the dynamic map with torch's CPU linspace;
                // lowbit's is the CUDA-built map. Same length, values within an ulp.
                let a = t.to_f32().unwrap();
                let b = theirs.to_f32().unwrap();
                assert!(
                    a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= y.abs() * 2e-7),
                    "{}",
                    t.name
                );
                continue;
            }
            assert!(same(t, &theirs), "{}: {t:?} vs {theirs:?}", t.name);
        }
        assert_eq!(
            ours.len(),
            file.names()
                .iter()
                .filter(|n| n.starts_with(&format!("{prefix}.weight")))
                .count()
        );
        // lowbit's quantizer (bit-exact with bitsandbytes' CUDA kernel) gives the CPU build's
        // codes and block scales too on this input.
        let (qt, dq) = match prefix {
            "nf4_dq" => (QuantType::Nf4, true),
            "fp4_sq" => (QuantType::Fp4, false),
            _ => (QuantType::Nf4, false),
        };
        let (packed, state) = lowbit::compat::bnb::quantize_4bit(&input, 64, qt, dq).unwrap();
        if qt == QuantType::Fp4 {
            // Except the sign of FP4's zero: the CUDA kernel (which lowbit reproduces) codes a
            // small negative value as -0 (code 8), the CPU build's bucketize as +0 (code 0).
            let zero = |b: &u8| [b >> 4, b & 15].map(|c| if c == 8 { 0 } else { c });
            assert_eq!(
                packed.iter().map(zero).collect::<Vec<_>>(),
                q.packed.iter().map(zero).collect::<Vec<_>>()
            );
            assert_ne!(packed, q.packed);
        } else {
            assert_eq!(packed, q.packed, "{prefix}");
        }
        if !dq {
            assert_eq!(state, q.state, "{prefix}");
        } else {
            // Same codes and second-level scales; the offset (`absmax.mean()`) is summed in
            // torch's CUDA order by lowbit, in its CPU order by this file: one ulp apart here.
            let (Absmax::Double(a), Absmax::Double(b)) = (state.scales(), q.state.scales()) else {
                panic!("double quantization expected");
            };
            assert_eq!((a.codes(), a.absmax2()), (b.codes(), b.absmax2()));
            assert!((a.offset().to_bits() as i64 - b.offset().to_bits() as i64).abs() <= 1);
        }
    }
    let meta = file.metadata().unwrap();
    let theirs: Value = serde_json::from_str(&meta["quantization_config"]).unwrap();
    let mut config = bnb::Config::new(QuantType::Nf4, true, Dtype::BF16);
    assert_eq!(bnb::quantization_config(&config), theirs);
    config.skip_modules = Some(vec!["lm_head".into()]);
    assert_eq!(bnb::quantization_config(&config)["llm_int8_skip_modules"][0], "lm_head");
}

fn ct_schemes() -> Vec<(&'static str, Scheme)> {
    let int = |bits, symmetric, strategy, packed| Scheme::Int {
        bits,
        symmetric,
        strategy,
        packed,
    };
    vec![
        (
            "fp8_tensor",
            Scheme::Fp8 {
                strategy: Strategy::Tensor,
                activations: Activations::StaticPerTensor,
            },
        ),
        (
            "fp8_channel",
            Scheme::Fp8 {
                strategy: Strategy::Channel,
                activations: Activations::DynamicPerToken,
            },
        ),
        ("w4_group_sym", int(4, true, Strategy::Group(32), true)),
        ("w4_group_asym", int(4, false, Strategy::Group(32), true)),
        ("w4_channel_asym", int(4, false, Strategy::Channel, true)),
        ("w8_channel_sym", int(8, true, Strategy::Channel, true)),
        ("w3_group_asym", int(3, false, Strategy::Group(32), true)),
        ("int8_channel", int(8, true, Strategy::Channel, false)),
        ("nvfp4", Scheme::Nvfp4),
        ("mxfp4", Scheme::Mxfp4),
        ("mxfp8", Scheme::Mxfp8),
    ]
}

fn strip_observer(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("observer");
            m.values_mut().for_each(strip_observer);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_observer),
        _ => {}
    }
}

/// compressed-tensors 0.20.0 (CPU): `calculate_qparams` on min-max observations, then each
/// format's compressor; and its `decompress`.
#[test]
fn ct_reads_and_writes_what_compressed_tensors_does() {
    let bytes = std::fs::read(data("safetensors/ct_refs.safetensors")).unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    let input = file.f32s("input").unwrap();
    let configs: Value = serde_json::from_str(&file.metadata().unwrap()["configs"]).unwrap();
    for (name, scheme) in ct_schemes() {
        // Byte for byte: every tensor compressed-tensors wrote for this module.
        let ours = compressed::quantize(name, &[16, 64], &input, &scheme).unwrap();
        let theirs: Vec<&str> = file
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&format!("{name}.")) && !n.ends_with(".deq"))
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{name}: {theirs:?}");
        for t in &ours {
            let theirs = file.raw(&t.name).unwrap();
            assert!(same(t, &theirs), "{}: {t:?} vs {theirs:?}", t.name);
        }
        // Read compressed-tensors' file and dequantize as its decompress does.
        let parts = compressed::read(&file, name, &scheme).unwrap();
        let deq = file.f32s(&format!("{name}.deq")).unwrap();
        let y = parts.dequantize().unwrap();
        if scheme == Scheme::Nvfp4 {
            // compressed-tensors' NVFP4 decompress ends in bfloat16.
            assert_eq!(bf16(&y), bits(&deq), "{name}");
        } else {
            assert_eq!(bits(&y), bits(&deq), "{name}");
        }
        // The config.json entry.
        let ours = compressed::quantization_config(&[(scheme, vec!["Linear".into()])], &["lm_head".into()]);
        let mut theirs = configs[name].clone();
        strip_observer(&mut theirs); // a calibration setting of the presets, not a layout
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn ct_write_read_back_every_scheme() {
    let w = weight(8, 128);
    let mut schemes: Vec<Scheme> = ct_schemes().into_iter().map(|(_, s)| s).collect();
    schemes.extend([
        Scheme::Int {
            bits: 4,
            symmetric: false,
            strategy: Strategy::Tensor,
            packed: true,
        },
        Scheme::Int {
            bits: 8,
            symmetric: false,
            strategy: Strategy::Group(64),
            packed: false,
        },
        Scheme::Int {
            bits: 2,
            symmetric: true,
            strategy: Strategy::Group(128),
            packed: true,
        },
        Scheme::Fp8 {
            strategy: Strategy::Channel,
            activations: Activations::None,
        },
    ]);
    for scheme in schemes {
        let mut tensors = compressed::quantize("m", &[8, 128], &w, &scheme).unwrap();
        if matches!(
            scheme,
            Scheme::Fp8 {
                activations: Activations::StaticPerTensor,
                ..
            }
        ) {
            tensors.push(compressed::input_scale("m", 3.5).unwrap());
        }
        let bytes = to_bytes(&tensors, None).unwrap();
        let file = SafetensorsFile::parse(&bytes).unwrap();
        let parts = compressed::read(&file, "m", &scheme).unwrap();
        assert_eq!(parts.shape, [8, 128]);
        let y = parts.dequantize().unwrap();
        // Within half a step of each group's scale (plus the clamp of symmetric INT).
        let step = |i: usize| {
            parts.scales[if parts.scales.len() == 1 {
                0
            } else {
                i * parts.scales.len() / w.len()
            }]
        };
        let tol = |i: usize| match scheme {
            Scheme::Int { .. } => step(i) * 1.0001,
            Scheme::Fp8 { .. } | Scheme::Mxfp8 => w[i].abs() / 16.0 + step(i) * 0.002,
            _ => w[i].abs() / 4.0 + 0.26 * 1.5 / 6.0 * 2.0,
        };
        for (i, (a, b)) in w.iter().zip(&y).enumerate() {
            assert!((a - b).abs() <= tol(i), "{scheme:?} {i}: {a} vs {b}");
        }
        // Writing what was read back from the parts is the same file.
        let again = compressed::quantize("m", &[8, 128], &w, &scheme).unwrap();
        assert_eq!(again, tensors[..again.len()]);
        if let Scheme::Fp8 {
            activations: Activations::StaticPerTensor,
            ..
        } = scheme
        {
            assert_eq!(parts.input_scale, Some(3.5 / 448.0));
        }
    }
    assert!(compressed::quantize("m", &[8, 100], &weight(8, 100), &Scheme::Nvfp4).is_err());
    assert!(compressed::quantize("m", &[1024], &weight(8, 128), &Scheme::Nvfp4).is_err());
    let bad = Scheme::Int {
        bits: 4,
        symmetric: true,
        strategy: Strategy::Group(48),
        packed: true,
    };
    assert!(compressed::quantize("m", &[8, 128], &w, &bad).is_err());
}

/// MX and NVFP4 values from lowbit's quantizers go to compressed-tensors' layout and back
/// unchanged.
#[test]
fn ct_mx_and_nvfp4_parts_are_lowbit_values() {
    let w = weight(4, 64);
    for element in [MxElement::E2M1, MxElement::E4M3] {
        let q = MxQuantizer::new(element, ScaleRule::Floor)
            .unwrap()
            .quantize(&w)
            .unwrap();
        let tensors = compressed::quantize_mx("m", &[4, 64], &q).unwrap();
        let bytes = to_bytes(&tensors, None).unwrap();
        let scheme = if element == MxElement::E2M1 {
            Scheme::Mxfp4
        } else {
            Scheme::Mxfp8
        };
        let parts = compressed::read(&SafetensorsFile::parse(&bytes).unwrap(), "m", &scheme).unwrap();
        assert_eq!(parts.to_quantized().unwrap(), q);
        let mut y = vec![0f32; w.len()];
        mx::dequantize_into(&q, &mut y).unwrap();
        assert_eq!(bits(&parts.dequantize().unwrap()), bits(&y));
    }
    // compressed-tensors' NVFP4 read as a lowbit value: same codes and block scales, tensor
    // scale the reciprocal of the stored global scale.
    let bytes = std::fs::read(data("safetensors/ct_refs.safetensors")).unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    let parts = compressed::read(&file, "nvfp4", &Scheme::Nvfp4).unwrap();
    let q = parts.to_quantized().unwrap();
    assert_eq!(q.codes(), file.view("nvfp4.weight_packed").unwrap().bytes);
    let g = parts.global_scale.unwrap();
    assert_eq!(q.tensor_scale(), Some(1.0 / g));
    let mut y = vec![0f32; 16 * 64];
    mx::dequantize_into(&q, &mut y).unwrap();
    let deq = file.f32s("nvfp4.deq").unwrap();
    // compressed-tensors' decompress ends in bfloat16.
    assert!(y.iter().zip(deq.iter()).all(|(a, b)| (a - b).abs() <= b.abs() / 256.0));
    assert_eq!(bf16(&parts.dequantize().unwrap()), bits(&deq));
}

/// Run by hand (see `tests/data/safetensors/README.md`): quantize every 2-D `*_proj.weight` of
/// `$LOWBIT_TINY_MODEL/model.safetensors` (a model saved by transformers' `save_pretrained`) and
/// write `$LOWBIT_TINY_MODEL/{bnb-nf4,ct-w4a16,ct-fp8,ct-nvfp4}/` with `model.safetensors` and
/// a `config.json` carrying the `quantization_config`, for transformers to load.
#[test]
#[ignore = "writes checkpoints for a transformers load check; needs LOWBIT_TINY_MODEL"]
fn write_tiny_model_for_transformers() {
    let Ok(dir) = std::env::var("LOWBIT_TINY_MODEL") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let file = SafetensorsFile::parse(&bytes).unwrap();
    let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let w4 = Scheme::Int {
        bits: 4,
        symmetric: false,
        strategy: Strategy::Group(32),
        packed: true,
    };
    let fp8 = Scheme::Fp8 {
        strategy: Strategy::Channel,
        activations: Activations::None,
    };
    for out in ["bnb-nf4", "ct-w4a16", "ct-fp8", "ct-nvfp4"] {
        let mut tensors = Vec::new();
        for name in file.names() {
            let t = file.tensor(name).unwrap();
            let Some(prefix) = name.strip_suffix(".weight").filter(|p| p.ends_with("_proj")) else {
                tensors.push(file.raw(name).unwrap());
                continue;
            };
            let w = t.to_f32().unwrap();
            tensors.extend(match out {
                "bnb-nf4" => bnb::quantize(prefix, &t.shape, &w, QuantType::Nf4, 64, true, Dtype::F32).unwrap(),
                "ct-w4a16" => compressed::quantize(prefix, &t.shape, &w, &w4).unwrap(),
                "ct-fp8" => compressed::quantize(prefix, &t.shape, &w, &fp8).unwrap(),
                _ => compressed::quantize(prefix, &t.shape, &w, &Scheme::Nvfp4).unwrap(),
            });
        }
        let mut config = config.clone();
        config["quantization_config"] = match out {
            "bnb-nf4" => bnb::quantization_config(&bnb::Config::new(QuantType::Nf4, true, Dtype::F32)),
            "ct-w4a16" => compressed::quantization_config(&[(w4, vec!["Linear".into()])], &["lm_head".into()]),
            "ct-fp8" => compressed::quantization_config(&[(fp8, vec!["Linear".into()])], &["lm_head".into()]),
            _ => compressed::quantization_config(&[(Scheme::Nvfp4, vec!["Linear".into()])], &["lm_head".into()]),
        };
        let d = dir.join(out);
        std::fs::create_dir_all(&d).unwrap();
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        std::fs::write(d.join("model.safetensors"), to_bytes(&tensors, Some(&meta)).unwrap()).unwrap();
        std::fs::write(d.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }
}

/// Found by the `safetensors_file` fuzz target: a `pack-quantized` weight whose
/// `weight_shape` claims 2^58 rows of no columns made `compressed::read` walk 2^58 empty rows
/// (and its zero points as many), and sizes whose products overflow were not refused.
#[test]
fn fuzz_ct_packed_shape_is_bounded_by_the_words() {
    let rows = 1usize << 58;
    let i64s = |v: &[i64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let file = |dims: &[i64], extra: Vec<Tensor>| {
        let mut ts = vec![
            Tensor::raw("m.weight_shape", vec![2], Dtype::I64, i64s(dims)).unwrap(),
            Tensor::raw("m.weight_packed", vec![rows, 0], Dtype::I32, vec![]).unwrap(),
        ];
        ts.extend(extra);
        to_bytes(&ts, None).unwrap()
    };
    // Symmetric, per tensor: no words, no codes, however many rows.
    let bytes = file(
        &[rows as i64, 0],
        vec![Tensor::f32("m.weight_scale", vec![1], vec![1.0]).unwrap()],
    );
    let f = SafetensorsFile::parse(&bytes).unwrap();
    let scheme = Scheme::Int {
        bits: 4,
        symmetric: true,
        strategy: Strategy::Tensor,
        packed: true,
    };
    let parts = compressed::read(&f, "m", &scheme).unwrap();
    assert!(parts.codes.is_empty());
    assert_eq!(parts.dequantize().unwrap(), Vec::<f32>::new());
    // Asymmetric groups: no groups, so no zero points to walk either.
    let bytes = file(
        &[rows as i64, 0],
        vec![
            Tensor::raw("m.weight_scale", vec![rows, 0], Dtype::F32, vec![]).unwrap(),
            Tensor::raw("m.weight_zero_point", vec![rows / 8, 0], Dtype::I32, vec![]).unwrap(),
        ],
    );
    let f = SafetensorsFile::parse(&bytes).unwrap();
    let scheme = Scheme::Int {
        bits: 4,
        symmetric: false,
        strategy: Strategy::Group(16),
        packed: true,
    };
    let parts = compressed::read(&f, "m", &scheme).unwrap();
    assert!(parts.codes.is_empty() && parts.zero_points.is_empty());
    // Products that overflow (elements, or packed bits of a row or a column): refused.
    for dims in [[i64::MAX, 2], [2, i64::MAX], [1 << 40, 1 << 40], [-1, 4], [1 << 62, 0]] {
        let bytes = file(&dims, vec![Tensor::f32("m.weight_scale", vec![1], vec![1.0]).unwrap()]);
        let f = SafetensorsFile::parse(&bytes).unwrap();
        let scheme = Scheme::Int {
            bits: 8,
            symmetric: true,
            strategy: Strategy::Tensor,
            packed: true,
        };
        assert!(matches!(
            compressed::read(&f, "m", &scheme),
            Err(lowbit::io::safetensors::Error::Tensor { .. })
        ));
    }
}

/// Found by the `safetensors_file` fuzz target: an empty weight written by
/// `compressed::quantize` (`[rows, 0]` in groups: no scales) did not dequantize.
#[test]
fn fuzz_ct_empty_weights_dequantize() {
    for scheme in [
        Scheme::Int {
            bits: 4,
            symmetric: true,
            strategy: Strategy::Group(16),
            packed: true,
        },
        Scheme::Fp8 {
            strategy: Strategy::Channel,
            activations: Activations::None,
        },
        Scheme::Mxfp4,
    ] {
        for shape in [[0usize, 32], [3, 0]] {
            let ts = compressed::quantize("m", &shape, &[], &scheme).unwrap();
            let f_bytes = to_bytes(&ts, None).unwrap();
            let f = SafetensorsFile::parse(&f_bytes).unwrap();
            let parts = compressed::read(&f, "m", &scheme).unwrap();
            assert_eq!(parts.dequantize().unwrap(), Vec::<f32>::new(), "{scheme:?} {shape:?}");
        }
    }
}

/// Found by the `safetensors_file` fuzz target: `Bnb4bit`'s public fields out of step
/// (`quant_map` of fewer than 16 levels, `packed` short) made `dequantize` index out of
/// bounds; and (F20) a double-quantized weight near `f32::MAX` read back from a file
/// dequantized to infinities and NaN.
#[test]
fn fuzz_bnb_read_parts_are_checked_and_finite() {
    let mut w = vec![0f32; 65];
    w[43] = f32::MAX;
    w[64] = 6.1122547e37;
    let ts = bnb::quantize("m", &[5, 13], &w, QuantType::Fp4, 64, true, Dtype::BF16).unwrap();
    let bytes = to_bytes(&ts, None).unwrap();
    let f = SafetensorsFile::parse(&bytes).unwrap();
    let q = bnb::read(&f, "m").unwrap();
    let y = q.dequantize().unwrap();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    assert_eq!(y[43], f32::MAX);
    let mut bad = q.clone();
    bad.quant_map.truncate(15);
    assert!(matches!(
        bad.dequantize(),
        Err(lowbit::io::safetensors::Error::Tensor { .. })
    ));
    let mut bad = q.clone();
    bad.packed.pop();
    assert!(bad.dequantize().is_err());
    let mut bad = q;
    bad.nested_quant_map.as_mut().unwrap().truncate(255);
    assert!(bad.dequantize().is_err());
}

/// Found by the `safetensors_file` fuzz target (seed 2): an FP4 `weight_packed` of shape
/// `[0, 2^63]` (no bytes) overflowed doubling its columns (a debug panic).
#[test]
fn fuzz_ct_fp4_columns_do_not_overflow() {
    let ts = vec![
        Tensor::raw("m.weight_packed", vec![0, 1 << 63], Dtype::U8, vec![]).unwrap(),
        Tensor::raw("m.weight_scale", vec![0, 1 << 59], Dtype::U8, vec![]).unwrap(),
    ];
    let bytes = to_bytes(&ts, None).unwrap();
    let f = SafetensorsFile::parse(&bytes).unwrap();
    for scheme in [Scheme::Mxfp4, Scheme::Nvfp4] {
        assert!(matches!(
            compressed::read(&f, "m", &scheme),
            Err(lowbit::io::safetensors::Error::Tensor { .. })
        ));
    }
    // Half that many columns read as an empty weight.
    let ts = vec![
        Tensor::raw("m.weight_packed", vec![0, 1 << 62], Dtype::U8, vec![]).unwrap(),
        Tensor::raw("m.weight_scale", vec![0, 1 << 58], Dtype::U8, vec![]).unwrap(),
    ];
    let bytes = to_bytes(&ts, None).unwrap();
    let f = SafetensorsFile::parse(&bytes).unwrap();
    let parts = compressed::read(&f, "m", &Scheme::Mxfp4).unwrap();
    assert_eq!(parts.dequantize().unwrap(), Vec::<f32>::new());
}
