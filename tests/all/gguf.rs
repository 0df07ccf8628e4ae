//! `io::gguf` against files gguf-py 0.19 wrote (`tests/data/gguf/make_fixture.py`), files
//! lowbit wrote that gguf-py reads (`tests/data/gguf/check_lowbit_written.py`), and hostile
//! input. Run alone with `cargo test --features gguf --test all gguf`.

use std::borrow::Cow;
use std::io::Cursor;

use lowbit::compat::ggml;
use lowbit::io::gguf::{
    requantize, Array, Error, GgmlType, Gguf, GgufReader, GgufString, GgufWriter, Metadata, RequantizeOptions, Target,
    Tensor, TensorInfo, Value, ValueType,
};
use lowbit::{Bf16, FloatFormat, Fp16};

use crate::common::{bits, data};

fn fixture() -> Vec<u8> {
    std::fs::read(data("gguf/fixture.gguf")).unwrap()
}

fn tiny_llama() -> Vec<u8> {
    std::fs::read(data("gguf/tiny_llama_f16.gguf")).unwrap()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn blocks<B: bytemuck::Pod>(b: &[u8]) -> Vec<B> {
    b.chunks_exact(std::mem::size_of::<B>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

fn manifest(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data(&format!("gguf/{name}.json"))).unwrap()).unwrap()
}

/// Compare a file lowbit wrote with its committed copy, or write the copy when
/// `LOWBIT_REGEN_FIXTURES` is set (then run `check_lowbit_written.py`).
fn committed(name: &str, bytes: &[u8]) {
    let path = data(&format!("gguf/{name}"));
    if std::env::var_os("LOWBIT_REGEN_FIXTURES").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let want = std::fs::read(&path).unwrap();
    assert!(
        want == bytes,
        "{name}: lowbit now writes other bytes than the committed file"
    );
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

/// The metadata `make_fixture.py` writes, in order.
#[allow(clippy::approx_constant)] // 3.14159 is what the script writes
fn expected_fixture_metadata() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", s("lowbit-test")),
        ("general.name", s("lowbit fixture")),
        ("test.u8", Value::U8(200)),
        ("test.i8", Value::I8(-100)),
        ("test.u16", Value::U16(60000)),
        ("test.i16", Value::I16(-30000)),
        ("test.u32", Value::U32(4_000_000_000)),
        ("test.i32", Value::I32(-2_000_000_000)),
        ("test.f32", Value::F32(3.14159)),
        ("test.f32_neg_zero", Value::F32(-0.0)),
        ("test.f32_inf", Value::F32(f32::INFINITY)),
        ("test.bool", Value::Bool(true)),
        ("test.bool_false", Value::Bool(false)),
        ("test.string", s("h\u{e9}llo, w\u{f6}rld \u{2713}")),
        ("test.string_empty", s("")),
        ("test.u64", Value::U64((1 << 63) + 5)),
        ("test.i64", Value::I64(-(1 << 62))),
        ("test.f64", Value::F64(std::f64::consts::E)),
        ("test.arr.u8", vec![0u8, 1, 255].into()),
        ("test.arr.i8", vec![-128i8, 0, 127].into()),
        ("test.arr.u16", vec![0u16, 65535].into()),
        ("test.arr.i16", vec![-32768i16, 32767].into()),
        ("test.arr.u32", vec![0u32, u32::MAX].into()),
        ("test.arr.i32", vec![i32::MIN, i32::MAX, 7].into()),
        ("test.arr.f32", vec![1.5f32, -2.25, 1e-30].into()),
        ("test.arr.bool", vec![true, false, true].into()),
        ("test.arr.string", vec!["a", "", "\u{fc}n\u{ef}"].into()),
        ("test.arr.u64", vec![0u64, u64::MAX].into()),
        ("test.arr.i64", vec![i64::MIN, i64::MAX].into()),
        ("test.arr.f64", vec![0.1f64, -1e300].into()),
        (
            "test.arr.nested_i32",
            vec![Array::I32(vec![1, 2, 3]), Array::I32(vec![4, 5])].into(),
        ),
        (
            "test.arr.nested_str",
            vec![
                Array::String(vec!["x".into(), "y".into()]),
                Array::String(vec!["z".into()]),
            ]
            .into(),
        ),
        (
            "test.arr.nested_mixed",
            vec![
                Array::I32(vec![1, 2]),
                Array::String(vec!["a".into()]),
                Array::Array(vec![Array::I32(vec![3]), Array::I32(vec![4, 5])]),
            ]
            .into(),
        ),
    ]
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::U8 => "UINT8",
        ValueType::I8 => "INT8",
        ValueType::U16 => "UINT16",
        ValueType::I16 => "INT16",
        ValueType::U32 => "UINT32",
        ValueType::I32 => "INT32",
        ValueType::F32 => "FLOAT32",
        ValueType::Bool => "BOOL",
        ValueType::String => "STRING",
        ValueType::Array => "ARRAY",
        ValueType::U64 => "UINT64",
        ValueType::I64 => "INT64",
        ValueType::F64 => "FLOAT64",
    }
}

/// gguf-py's `ReaderField.types` of a value: the type, then the first element's, nested.
fn gguf_py_types(v: &Value) -> Vec<&'static str> {
    fn array(a: &Array, out: &mut Vec<&'static str>) {
        out.push(type_name(a.element_type()));
        if let Array::Array(inner) = a {
            if let Some(first) = inner.first() {
                array(first, out);
            }
        }
    }
    let mut out = vec![type_name(v.value_type())];
    if let Value::Array(a) = v {
        array(a, &mut out);
    }
    out
}

/// Everything gguf-py's reader saw (`fixture.json`, `tiny_llama_f16.json`) lowbit sees too:
/// key order and types, tensor names, types, dims, sizes, and data at the same file offsets.
fn check_against_gguf_py(bytes: &[u8], name: &str) {
    let g = Gguf::read(bytes).unwrap();
    let m = manifest(name);
    let fields = m["fields"].as_array().unwrap();
    assert_eq!(fields.len(), g.metadata.len());
    for ((key, value), f) in g.metadata.iter().zip(fields) {
        assert_eq!(key, f["key"].as_str().unwrap());
        let types: Vec<&str> = f["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(gguf_py_types(value), types, "{key}");
    }
    let tensors = m["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), g.tensors.len());
    let reader = GgufReader::new(Cursor::new(bytes)).unwrap();
    assert_eq!(reader.data_offset(), m["data_offset"].as_u64().unwrap());
    assert_eq!(
        u64::from(g.metadata.alignment().unwrap()),
        m["alignment"].as_u64().unwrap()
    );
    for (i, (t, want)) in g.tensors.iter().zip(tensors).enumerate() {
        assert_eq!(t.info.name, want["name"].as_str().unwrap());
        assert_eq!(t.info.ty.name().to_uppercase(), want["type"].as_str().unwrap());
        let dims: Vec<u64> = want["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.info.dims, dims, "{}", t.info.name);
        let (n, at) = (want["n_bytes"].as_u64().unwrap(), want["data_offset"].as_u64().unwrap());
        assert_eq!(t.info.n_bytes(), n, "{}", t.info.name);
        assert_eq!(reader.data_offset() + reader.tensor_offset(i).unwrap(), at);
        // Zero-copy: the tensor's bytes are the file's bytes where gguf-py found them.
        assert_eq!(t.data.as_ptr(), bytes[at as usize..].as_ptr(), "{}", t.info.name);
        assert!(matches!(t.data, Cow::Borrowed(_)));
    }
}

#[test]
fn gguf_reads_every_key_of_the_gguf_py_fixture() {
    let bytes = fixture();
    let g = Gguf::read(&bytes).unwrap();
    assert_eq!(g.version, 3);
    let want = expected_fixture_metadata();
    let got: Vec<(&str, &Value)> = g.metadata.iter().collect();
    assert_eq!(got.len(), want.len());
    for ((k, v), (wk, wv)) in got.iter().zip(&want) {
        assert_eq!(k, wk);
        assert_eq!(*v, wv, "{k}");
    }
    // The bits of the float keys, -0.0 included.
    assert_eq!(g.metadata.get("test.f32_neg_zero"), Some(&Value::F32(-0.0)));
    assert!(matches!(g.metadata.get("test.f32_neg_zero"), Some(Value::F32(z)) if z.is_sign_negative()));
    check_against_gguf_py(&bytes, "fixture");
    check_against_gguf_py(&tiny_llama(), "tiny_llama_f16");
}

#[test]
fn gguf_reads_every_tensor_of_the_gguf_py_fixture() {
    let bytes = fixture();
    let g = Gguf::read(&bytes).unwrap();
    let names: Vec<(&str, GgmlType, Vec<u64>)> = g
        .tensors
        .iter()
        .map(|t| (t.info.name.as_str(), t.info.ty, t.info.dims.clone()))
        .collect();
    use GgmlType::*;
    assert_eq!(
        names,
        [
            ("src.weight", F32, vec![64, 4]),
            ("f16.weight", F16, vec![32, 3]),
            ("bf16.weight", BF16, vec![64, 2]),
            ("q8_0.weight", Q8_0, vec![64, 4]),
            ("q4_0.weight", Q4_0, vec![64, 4]),
            ("q4_1.weight", Q4_1, vec![64, 4]),
            ("q4_k.weight", Q4_K, vec![512, 1]),
            ("position_ids", I32, vec![10]),
            ("norm.bias", F32, vec![64]),
            ("experts.weight", F32, vec![32, 3, 2]),
            ("scalar", F32, vec![]),
        ]
    );
    let ids: Vec<i32> = g
        .tensor("position_ids")
        .unwrap()
        .data
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(f32s(&g.tensor("scalar").unwrap().data), [0.5]);
    assert_eq!(g.tensor("experts.weight").unwrap().info.shape(), [2, 3, 32]);

    // The same through Read + Seek, from an offset inside a larger stream.
    let mut stream = vec![0xAAu8; 7];
    stream.extend_from_slice(&bytes);
    let mut cur = Cursor::new(stream);
    cur.set_position(7);
    let mut r = GgufReader::new(cur).unwrap();
    assert_eq!(r.metadata(), &g.metadata);
    for (i, t) in g.tensors.iter().enumerate() {
        assert_eq!(r.tensors()[i], t.info);
        assert_eq!(r.read_tensor(i).unwrap(), &*t.data, "{}", t.info.name);
    }
    assert_eq!(Gguf::read_from(Cursor::new(&bytes)).unwrap(), g);
}

#[test]
fn gguf_quantized_tensors_match_gguf_py_quants() {
    let bytes = fixture();
    let g = Gguf::read(&bytes).unwrap();
    let src = f32s(&g.tensor("src.weight").unwrap().data);
    let t = |n: &str| g.tensor(n).unwrap().data.to_vec();
    let deq = |n: &str| f32s(&std::fs::read(data(&format!("gguf/fixture.{n}.f32"))).unwrap());

    // lowbit quantizes the F32 tensor to the bytes gguf.quants.quantize wrote.
    let q8: &[u8] = &t("q8_0.weight");
    assert_eq!(bytemuck::cast_slice::<_, u8>(&ggml::quantize_q8_0(&src).unwrap()), q8);
    let q4: &[u8] = &t("q4_0.weight");
    assert_eq!(bytemuck::cast_slice::<_, u8>(&ggml::quantize_q4_0(&src).unwrap()), q4);
    let q41: &[u8] = &t("q4_1.weight");
    assert_eq!(bytemuck::cast_slice::<_, u8>(&ggml::quantize_q4_1(&src).unwrap()), q41);

    // ... and dequantizes them to gguf.quants.dequantize's values, bit for bit.
    let mut y = vec![0f32; src.len()];
    ggml::dequantize_q8_0(&blocks(q8), &mut y).unwrap();
    assert_eq!(bits(&y), bits(&deq("q8_0")));
    ggml::dequantize_q4_0(&blocks(q4), &mut y).unwrap();
    assert_eq!(bits(&y), bits(&deq("q4_0")));
    ggml::dequantize_q4_1(&blocks(q41), &mut y).unwrap();
    assert_eq!(bits(&y), bits(&deq("q4_1")));

    // BF16: lowbit decodes gguf.quants' BF16 bytes to its values.
    let codes: Vec<u16> = t("bf16.weight")
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut b = vec![0f32; codes.len()];
    Bf16::decode_slice(&codes, &mut b).unwrap();
    assert_eq!(bits(&b), bits(&deq("bf16")));
}

#[test]
fn gguf_writes_gguf_py_files_back_byte_for_byte() {
    for bytes in [fixture(), tiny_llama()] {
        let g = Gguf::read(&bytes).unwrap();
        assert!(g.to_bytes().unwrap() == bytes);
        let owned = Gguf::read_from(Cursor::new(&bytes)).unwrap();
        assert!(owned.to_bytes().unwrap() == bytes);
        // Streaming, tensor by tensor.
        let mut r = GgufReader::new(Cursor::new(&bytes)).unwrap();
        let infos = r.tensors().to_vec();
        let mut out = Vec::new();
        let mut w = GgufWriter::new(&mut out, r.version(), &r.metadata().clone(), &infos).unwrap();
        for (i, info) in infos.iter().enumerate() {
            assert_eq!(w.next_tensor(), Some(info.name.as_str()));
            w.write_tensor(&r.read_tensor(i).unwrap()).unwrap();
        }
        w.finish().unwrap();
        assert!(out == bytes);
    }
}

/// A file lowbit writes from scratch: every value type, a custom alignment, tensors lowbit
/// quantized, and the Q4_K tensor of the gguf-py fixture passed through.
fn lowbit_written() -> Gguf<'static> {
    let mut g = Gguf::new();
    let m = &mut g.metadata;
    m.insert("general.architecture", "lowbit-test");
    m.insert("general.alignment", 64u32);
    m.insert("lowbit.u8", 7u8);
    m.insert("lowbit.i8", -7i8);
    m.insert("lowbit.u16", 65535u16);
    m.insert("lowbit.i16", -32768i16);
    m.insert("lowbit.u32", 123_456u32);
    m.insert("lowbit.i32", -123_456i32);
    m.insert("lowbit.f32", 0.1f32);
    m.insert("lowbit.bool", true);
    m.insert("lowbit.string", "\u{1F980} lowbit");
    m.insert("lowbit.u64", u64::MAX);
    m.insert("lowbit.i64", i64::MIN);
    m.insert("lowbit.f64", -0.1f64);
    m.insert("lowbit.arr.u8", vec![1u8, 2, 3]);
    m.insert("lowbit.arr.i8", vec![-1i8]);
    m.insert("lowbit.arr.u16", vec![1u16, 2]);
    m.insert("lowbit.arr.i16", vec![-1i16, 1]);
    m.insert("lowbit.arr.u32", vec![1u32, 2, 3, 4]);
    m.insert("lowbit.arr.i32", vec![-1i32, 0, 1]);
    m.insert("lowbit.arr.f32", vec![0.5f32, -0.25]);
    m.insert("lowbit.arr.bool", vec![false, true]);
    m.insert("lowbit.arr.string", vec!["alpha", "\u{3b2}", ""]);
    m.insert("lowbit.arr.u64", vec![u64::MAX, 0]);
    m.insert("lowbit.arr.i64", vec![i64::MIN, -1]);
    m.insert("lowbit.arr.f64", vec![1e-300f64, 3.5]);
    m.insert(
        "lowbit.arr.nested",
        vec![Array::U16(vec![1, 2]), Array::String(vec!["n".into()])],
    );
    m.insert("lowbit.arr.empty", Array::I32(vec![]));

    let x: Vec<f32> = (0..128).map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0).collect();
    let le = |v: &[u16]| -> Vec<u8> { v.iter().flat_map(|c| c.to_le_bytes()).collect() };
    let mut f16 = vec![0u16; 128];
    Fp16::encode_slice(&x, &mut f16).unwrap();
    let mut bf16 = vec![0u16; 128];
    Bf16::encode_slice(&x, &mut bf16).unwrap();
    let f32b: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let q8 = bytemuck::cast_slice(&ggml::quantize_q8_0(&x).unwrap()).to_vec();
    let q40 = bytemuck::cast_slice(&ggml::quantize_q4_0(&x).unwrap()).to_vec();
    let q41 = bytemuck::cast_slice(&ggml::quantize_q4_1(&x).unwrap()).to_vec();
    let q4k = Gguf::read(&fixture())
        .unwrap()
        .tensor("q4_k.weight")
        .unwrap()
        .data
        .to_vec();
    let ids: Vec<u8> = (0..5i32).flat_map(|v| v.to_le_bytes()).collect();
    let t = &mut g.tensors;
    t.push(Tensor::new("x.f32", vec![64, 2], GgmlType::F32, f32b).unwrap());
    t.push(Tensor::new("x.f16", vec![64, 2], GgmlType::F16, le(&f16)).unwrap());
    t.push(Tensor::new("x.bf16", vec![32, 2, 2], GgmlType::BF16, le(&bf16)).unwrap());
    t.push(Tensor::new("x.q8_0", vec![64, 2], GgmlType::Q8_0, q8).unwrap());
    t.push(Tensor::new("x.q4_0", vec![128], GgmlType::Q4_0, q40).unwrap());
    t.push(Tensor::new("x.q4_1", vec![32, 4], GgmlType::Q4_1, q41).unwrap());
    t.push(Tensor::new("passthrough.q4_k", vec![512, 1], GgmlType::Q4_K, q4k).unwrap());
    t.push(Tensor::new("ids", vec![5], GgmlType::I32, ids).unwrap());
    g
}

#[test]
fn gguf_lowbit_written_file_is_the_committed_one_and_reads_back() {
    let g = lowbit_written();
    let bytes = g.to_bytes().unwrap();
    committed("lowbit_written.gguf", &bytes);
    let back = Gguf::read(&bytes).unwrap();
    assert_eq!(back, g);
    // Alignment 64: the data section and every tensor start on a multiple of 64.
    let r = GgufReader::new(Cursor::new(&bytes)).unwrap();
    assert_eq!(r.data_offset() % 64, 0);
    for i in 0..r.tensors().len() {
        assert_eq!(r.tensor_offset(i).unwrap() % 64, 0);
    }
    assert_eq!(bytes.len() % 64, 0);
}

fn options() -> RequantizeOptions {
    RequantizeOptions::default()
}

fn requantize_bytes(
    src: &[u8],
    target: Target,
    opts: &RequantizeOptions,
) -> Result<(Vec<u8>, lowbit::io::gguf::Report), Error> {
    let mut out = Vec::new();
    let report = requantize(&mut GgufReader::new(Cursor::new(src))?, &mut out, target, opts)?;
    // The in-memory path gives the same file and report.
    let (g, r2) = Gguf::read(src)?.requantize(target, opts)?;
    assert!(g.to_bytes()? == out);
    assert_eq!(report, r2);
    Ok((out, report))
}

fn types_of(report: &lowbit::io::gguf::Report) -> Vec<(String, GgmlType, GgmlType)> {
    report
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.type_out, t.llama_cpp_type))
        .collect()
}

/// The committed `tiny_llama_q8_0.gguf` and `tiny_llama_q4_0.gguf` are byte for byte what
/// llama.cpp's `llama-quantize` writes for this model (see `tests/data/README.md`).
#[test]
fn gguf_requantize_tiny_llama_as_llama_quantize() {
    use GgmlType::*;
    let src = tiny_llama();
    let f16 = Gguf::read(&src).unwrap();
    for (target, ftype) in [
        (Target::Q8_0, 7u32),
        (Target::Q4_0, 2),
        (Target::Q4_1, 3),
        (Target::Q5_0, 8),
        (Target::Q5_1, 9),
        (Target::Q6_K, 18),
        (Target::F16, 1),
        (Target::BF16, 32),
    ] {
        let (out, report) = requantize_bytes(&src, target, &options()).unwrap();
        let q = Gguf::read(&out).unwrap();
        // Every key kept in order; quantization_version and file_type moved to the end.
        let keys: Vec<&str> = q.metadata.keys().collect();
        let mut want: Vec<&str> = f16
            .metadata
            .keys()
            .filter(|k| *k != "general.file_type" && *k != "general.quantization_version")
            .collect();
        want.extend(["general.quantization_version", "general.file_type"]);
        assert_eq!(keys, want);
        for (k, v) in f16.metadata.iter() {
            if k != "general.file_type" {
                assert_eq!(q.metadata.get(k), Some(v), "{k}");
            }
        }
        assert_eq!(q.metadata.get("general.file_type"), Some(&Value::U32(ftype)));
        assert_eq!(q.metadata.get("general.quantization_version"), Some(&Value::U32(2)));
        assert_eq!(report.file_type, ftype);

        // llama.cpp's loading order, and its types.
        // output.weight: Q6_K for the quantized targets but Q8_0, whose 256-blocks do not fit
        // a row of 32, so llama.cpp falls back to Q8_0 (tensor_type_fallback); a Q6_K target
        // falls back to Q8_0 on every weight (rows of 32 and 64).
        let w = if target == Target::Q6_K {
            Q8_0
        } else {
            target.ggml_type()
        };
        let head = if target.ggml_type().is_quantized() { Q8_0 } else { w };
        let mut want = vec![
            ("output.weight".to_owned(), head, head),
            ("output_norm.weight".to_owned(), F32, F32),
            ("token_embd.weight".to_owned(), w, w),
        ];
        for l in 0..2 {
            for (n, ty) in [
                ("attn_k.weight", w),
                ("attn_norm.weight", F32),
                ("attn_output.weight", w),
                ("attn_q.weight", w),
                ("attn_v.weight", w),
                ("ffn_down.weight", w),
                ("ffn_gate.weight", w),
                ("ffn_norm.weight", F32),
                ("ffn_up.weight", w),
            ] {
                want.push((format!("blk.{l}.{n}"), ty, ty));
            }
        }
        assert_eq!(types_of(&report), want, "{target:?}");
        for (t, r) in q.tensors.iter().zip(&report.tensors) {
            assert_eq!(
                (&t.info.name, t.info.ty, t.info.n_bytes()),
                (&r.name, r.type_out, r.bytes_out)
            );
            let src_t = f16.tensor(&t.info.name).unwrap();
            assert_eq!(t.info.dims, src_t.info.dims);
            assert_eq!(r.bytes_in, src_t.info.n_bytes());
            if r.type_out == r.type_in {
                assert_eq!(t.data, src_t.data, "{} copied", r.name);
            } else {
                // The data is lowbit's conversion of the F16 values.
                let codes: Vec<u16> = src_t.data.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                let mut x = vec![0f32; codes.len()];
                Fp16::decode_slice(&codes, &mut x).unwrap();
                let want: Vec<u8> = match r.type_out {
                    Q8_0 => bytemuck::cast_slice(&ggml::quantize_q8_0(&x).unwrap()).to_vec(),
                    Q4_0 => bytemuck::cast_slice(&ggml::quantize_q4_0(&x).unwrap()).to_vec(),
                    Q4_1 => bytemuck::cast_slice(&ggml::quantize_q4_1(&x).unwrap()).to_vec(),
                    Q5_0 => bytemuck::cast_slice(&<ggml::BlockQ5_0 as ggml::GgmlBlock>::quantize(&x).unwrap()).to_vec(),
                    Q5_1 => bytemuck::cast_slice(&<ggml::BlockQ5_1 as ggml::GgmlBlock>::quantize(&x).unwrap()).to_vec(),
                    BF16 => x.iter().flat_map(|v| Bf16::encode_f32(*v).to_le_bytes()).collect(),
                    other => panic!("{other}"),
                };
                assert_eq!(&*t.data, &want[..], "{}", r.name);
            }
        }
        if target == Target::F16 {
            // Already F16: only the tensor order and the two keys change.
            assert!(q
                .tensors
                .iter()
                .all(|t| t.data == f16.tensor(&t.info.name).unwrap().data));
        }
        let name = format!("tiny_llama_{}.gguf", format!("{target:?}").to_lowercase());
        if matches!(target, Target::Q8_0 | Target::Q4_0) {
            committed(&name, &out);
        }
    }
}

#[test]
fn gguf_requantize_options() {
    use GgmlType::*;
    let src = tiny_llama();
    let pick = |r: &lowbit::io::gguf::Report, n: &str| r.tensors.iter().find(|t| t.name == n).unwrap().type_out;

    // --pure: output.weight gets the target type too.
    let pure = options().with_pure(true);
    let (_, r) = requantize_bytes(&src, Target::Q4_0, &pure).unwrap();
    assert_eq!(pick(&r, "output.weight"), Q4_0);
    assert!(r.tensors.iter().all(|t| t.type_out == t.llama_cpp_type));

    // --leave-output-tensor.
    let leave = options().with_leave_output_tensor(true);
    let (_, r) = requantize_bytes(&src, Target::Q8_0, &leave).unwrap();
    assert_eq!(pick(&r, "output.weight"), F16);

    // --output-tensor-type and --token-embedding-type.
    let types = options()
        .with_output_tensor_type(Some(BF16))
        .with_token_embedding_type(Some(Q4_1));
    let (_, r) = requantize_bytes(&src, Target::Q8_0, &types).unwrap();
    assert_eq!((pick(&r, "output.weight"), pick(&r, "token_embd.weight")), (BF16, Q4_1));
    let bad = options().with_output_tensor_type(Some(IQ4_NL));
    assert!(matches!(
        requantize_bytes(&src, Target::Q8_0, &bad),
        Err(Error::Unsupported { .. })
    ));

    // Rows of 256: llama.cpp gives output.weight Q6_K for every quantized target but Q8_0, and
    // so does lowbit. With tied embeddings (no output.weight) token_embd.weight takes that rule.
    let wide = |names: &[&str]| {
        let mut g = Gguf::new();
        for n in names {
            g.tensors
                .push(Tensor::new(*n, vec![256, 2], F32, vec![0u8; 2048]).unwrap());
        }
        g
    };
    for target in [Target::Q4_0, Target::Q4_1, Target::Q5_0, Target::Q5_1, Target::Q6_K] {
        let (q, r) = wide(&["output.weight", "token_embd.weight"])
            .requantize(target, &options())
            .unwrap();
        assert_eq!(r.tensors[0].name, "output.weight");
        assert_eq!((r.tensors[0].type_out, r.tensors[0].llama_cpp_type), (Q6_K, Q6_K));
        assert_eq!(q.tensors[0].info.ty, Q6_K);
        assert_eq!(
            (r.tensors[1].type_out, r.tensors[1].llama_cpp_type),
            (target.ggml_type(), target.ggml_type())
        );
        let (_, r) = wide(&["token_embd.weight"]).requantize(target, &options()).unwrap();
        assert_eq!((r.tensors[0].type_out, r.tensors[0].llama_cpp_type), (Q6_K, Q6_K));
    }
    let (_, r) = wide(&["output.weight"]).requantize(Target::Q8_0, &options()).unwrap();
    assert_eq!((r.tensors[0].type_out, r.tensors[0].llama_cpp_type), (Q8_0, Q8_0));

    // 8 experts: attention V and K get Q8_0.
    let mut g = Gguf::read(&src).unwrap();
    g.metadata.insert("llama.expert_count", 8u32);
    let (_, r) = g.requantize(Target::Q4_0, &options()).unwrap();
    assert_eq!(
        (pick(&r, "blk.1.attn_v.weight"), pick(&r, "blk.1.attn_k.weight")),
        (Q8_0, Q8_0)
    );
    assert_eq!(pick(&r, "blk.1.attn_q.weight"), Q4_0);

    // Falcon: output.weight is Q8_0 in llama.cpp too.
    let mut g = Gguf::read(&src).unwrap();
    g.metadata.insert("general.architecture", "falcon");
    let (_, r) = g.requantize(Target::Q4_0, &options()).unwrap();
    let t = r.tensors.iter().find(|t| t.name == "output.weight").unwrap();
    assert_eq!((t.type_out, t.llama_cpp_type), (Q8_0, Q8_0));
}

#[test]
fn gguf_requantize_fixture_and_refusals() {
    use GgmlType::*;
    let src = fixture();
    // q4_0.weight is already quantized: llama-quantize refuses without --allow-requantize.
    let err = requantize_bytes(&src, Target::Q8_0, &options()).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { tensor, .. } if tensor == "q4_0.weight"),
        "{err}"
    );

    let allow = options().with_allow_requantize(true);
    let (out, r) = requantize_bytes(&src, Target::Q8_0, &allow).unwrap();
    let got: Vec<(&str, GgmlType, GgmlType)> = r
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.type_in, t.type_out))
        .collect();
    assert_eq!(
        got,
        [
            ("bf16.weight", BF16, Q8_0),
            ("experts.weight", F32, Q8_0),
            ("f16.weight", F16, Q8_0),
            ("norm.bias", F32, F32),
            ("position_ids", I32, I32),
            ("q4_0.weight", Q4_0, Q8_0),
            ("q4_1.weight", Q4_1, Q8_0),
            ("q4_k.weight", Q4_K, Q4_K), // one row: ggml_n_dims == 1, kept
            ("q8_0.weight", Q8_0, Q8_0),
            ("scalar", F32, F32),
            ("src.weight", F32, Q8_0),
        ]
    );
    let q = Gguf::read(&out).unwrap();
    assert_eq!(q.tensor("scalar").unwrap().info.dims, [1]); // as ggml writes a 0-d tensor
    assert_eq!(q.tensor("q4_k.weight").unwrap().info.dims, [512]);
    assert_eq!(
        q.tensor("q4_k.weight").unwrap().data,
        Gguf::read(&src).unwrap().tensor("q4_k.weight").unwrap().data
    );
    assert_eq!(
        q.tensor("src.weight").unwrap().data,
        q.tensor("q8_0.weight").unwrap().data
    );
    assert_eq!(r.bytes_in(), r.tensors.iter().map(|t| t.bytes_in).sum::<u64>());
    assert!(r.bytes_out() < r.bytes_in());

    // A row that is not whole blocks of 32: F16, as llama-quantize falls back.
    let mut g = Gguf::new();
    g.tensors
        .push(Tensor::new("blk.0.ffn_up.weight", vec![48, 2], F32, vec![0u8; 384]).unwrap());
    g.tensors
        .push(Tensor::new("output.weight", vec![48, 2], F32, vec![0u8; 384]).unwrap());
    for target in [
        Target::Q8_0,
        Target::Q4_0,
        Target::Q4_1,
        Target::Q5_0,
        Target::Q5_1,
        Target::Q6_K,
        Target::F16,
        Target::BF16,
    ] {
        let (q, r) = g.requantize(target, &options()).unwrap();
        let want = if target == Target::BF16 { BF16 } else { F16 };
        assert!(
            r.tensors.iter().all(|t| t.type_out == want && t.llama_cpp_type == want),
            "{target:?}"
        );
        assert!(q.tensors.iter().all(|t| t.info.ty == want));
    }

    // Non-finite values and values beyond F16's range are refused, with the tensor's name.
    let mut g = Gguf::new();
    let mut x = vec![0.5f32; 64];
    x[37] = f32::NAN;
    let b: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    g.tensors.push(Tensor::new("a.weight", vec![32, 2], F32, b).unwrap());
    let err = g.requantize(Target::Q8_0, &options()).unwrap_err();
    assert!(
        matches!(&err, Error::NonFinite { tensor, index: 37 } if tensor == "a.weight"),
        "{err}"
    );
    x[37] = 1e5;
    g.tensors[0].data = x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into();
    let err = g.requantize(Target::F16, &options()).unwrap_err();
    assert!(matches!(&err, Error::NonFinite { index: 37, .. }), "{err}");
    assert!(g.requantize(Target::BF16, &options()).is_ok());

    // Split files are refused.
    let llama = tiny_llama();
    let mut g = Gguf::read(&llama).unwrap();
    g.metadata.insert("split.count", 2u16);
    assert!(matches!(
        g.requantize(Target::Q8_0, &options()),
        Err(Error::Unsupported { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Hostile input: typed errors, no panic, no allocation from a count in the file.

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn push_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn read_err(b: &[u8]) -> Error {
    let e = Gguf::read(b).unwrap_err();
    // The seekable reader fails alike.
    let e2 = GgufReader::new(Cursor::new(b)).unwrap_err();
    assert_eq!(e.to_string(), e2.to_string());
    e
}

#[test]
fn gguf_refuses_huge_counts_without_allocating() {
    assert!(matches!(read_err(&header(3, 1 << 60, 0)), Error::CountTooLarge { count, .. } if count == 1 << 60));
    assert!(matches!(read_err(&header(3, 0, u64::MAX)), Error::CountTooLarge { .. }));
    // A string of 2^62 bytes.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(read_err(&b), Error::CountTooLarge { .. }));
    // Arrays of 2^61 elements of each type, an array of 2^61 strings, of 2^61 arrays.
    for ty in 0..13u32 {
        if ty == 9 {
            continue;
        }
        let mut b = header(3, 0, 1);
        push_str(&mut b, "k");
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&(1u64 << 61).to_le_bytes());
        b.extend_from_slice(&[0; 64]);
        let e = read_err(&b);
        assert!(
            matches!(&e, Error::CountTooLarge { context, .. } if context.contains("'k'")),
            "{e}"
        );
    }
    // A tensor with 2^40 × 2^40 elements.
    let mut b = header(3, 1, 0);
    push_str(&mut b, "t");
    b.extend_from_slice(&2u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(read_err(&b), Error::TensorTooLarge { tensor } if tensor == "t"));
}

fn one_kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
    let mut b = header(3, 0, 1);
    push_str(&mut b, key);
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(value);
    b
}

fn one_tensor(name: &str, dims: &[u64], ty: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut b = header(3, 1, 0);
    push_str(&mut b, name);
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.resize(b.len().next_multiple_of(32) + data, 0);
    b
}

#[test]
fn gguf_typed_errors_name_the_key_or_tensor() {
    assert!(matches!(read_err(b"GGML\x03\0\0\0"), Error::BadMagic(m) if &m == b"GGML"));
    assert!(matches!(read_err(&header(1, 0, 0)), Error::UnsupportedVersion(1)));
    assert!(matches!(read_err(&header(4, 0, 0)), Error::UnsupportedVersion(4)));
    assert!(matches!(read_err(&header(3u32.swap_bytes(), 0, 0)), Error::BigEndian));
    assert_eq!(Gguf::read(&header(2, 0, 0)).unwrap().version, 2);

    assert!(matches!(read_err(&one_kv("k", 13, &[0; 8])), Error::UnknownValueType { key, type_id: 13 } if key == "k"));
    assert!(matches!(
        read_err(&one_kv(
            "k",
            9,
            &[&99u32.to_le_bytes()[..], &1u64.to_le_bytes()].concat()
        )),
        Error::UnknownValueType { type_id: 99, .. }
    ));
    assert!(matches!(read_err(&one_kv("", 0, &[1])), Error::EmptyKey { index: 0 }));
    assert!(matches!(read_err(&one_kv("k", 4, &[1, 2])), Error::Truncated { context, .. } if context.contains("'k'")));
    // Key names must be UTF-8 (gguf-py decodes them); string values are kept as bytes.
    let mut bad_key = header(3, 0, 1);
    bad_key.extend_from_slice(&2u64.to_le_bytes());
    bad_key.extend_from_slice(&[0xff, 0xfe, 0, 0, 0, 0, 1]);
    assert!(matches!(read_err(&bad_key), Error::InvalidUtf8 { context } if context == "key #0"));
    let raw = one_kv("k", 8, &[&2u64.to_le_bytes()[..], &[0xff, 0xfe]].concat());
    let g = Gguf::read(&raw).unwrap();
    assert_eq!(g.metadata.get("k"), Some(&Value::String(GgufString(vec![0xff, 0xfe]))));
    assert_eq!(Gguf::read(&g.to_bytes().unwrap()).unwrap(), g);

    let mut dup = header(3, 0, 2);
    for _ in 0..2 {
        push_str(&mut dup, "k");
        dup.extend_from_slice(&0u32.to_le_bytes());
        dup.push(1);
    }
    assert!(matches!(read_err(&dup), Error::DuplicateKey(k) if k == "k"));

    // Nesting 100 arrays deep.
    let mut deep = Vec::new();
    for _ in 0..100 {
        deep.extend_from_slice(&9u32.to_le_bytes());
        deep.extend_from_slice(&1u64.to_le_bytes());
    }
    assert!(matches!(read_err(&one_kv("deep", 9, &deep)), Error::NestingTooDeep { key } if key == "deep"));

    // general.alignment of the wrong type or not a power of two.
    assert!(matches!(
        read_err(&one_kv("general.alignment", 5, &32i32.to_le_bytes())),
        Error::BadAlignment(_)
    ));
    assert!(matches!(
        read_err(&one_kv("general.alignment", 4, &48u32.to_le_bytes())),
        Error::BadAlignment(_)
    ));
    assert!(matches!(
        read_err(&one_kv("general.alignment", 4, &0u32.to_le_bytes())),
        Error::BadAlignment(_)
    ));

    assert!(
        matches!(read_err(&one_tensor("t", &[4], 4, 0, 64)), Error::UnknownTensorType { tensor, type_id: 4 } if tensor == "t")
    );
    assert!(matches!(
        read_err(&one_tensor("t", &[1; 5], 0, 0, 64)),
        Error::TooManyDims { n_dims: 5, .. }
    ));
    assert!(matches!(
        read_err(&one_tensor("t", &[48, 2], 8, 0, 256)),
        Error::NotWholeBlocks { row: 48, block: 32, .. }
    ));
    assert!(
        matches!(read_err(&one_tensor("t", &[8], 0, 0, 31)), Error::TensorOutOfBounds { tensor, size: 32, available: 31, .. } if tensor == "t")
    );
    assert!(matches!(
        read_err(&one_tensor("t", &[8], 0, u64::MAX - 3, 64)),
        Error::TensorOutOfBounds { .. }
    ));
    assert!(matches!(
        read_err(&one_tensor("t", &[u64::MAX, 0], 0, 0, 64)),
        Error::TensorTooLarge { .. }
    ));
    // The tensor data may end without its padding.
    let ok = one_tensor("t", &[3], 0, 0, 12);
    assert_eq!(Gguf::read(&ok).unwrap().tensors[0].info.dims, [3]);

    let mut dup = header(3, 2, 0);
    for _ in 0..2 {
        push_str(&mut dup, "t");
        dup.extend_from_slice(&1u32.to_le_bytes());
        dup.extend_from_slice(&1u64.to_le_bytes());
        dup.extend_from_slice(&0u32.to_le_bytes());
        dup.extend_from_slice(&0u64.to_le_bytes());
    }
    assert!(matches!(read_err(&dup), Error::DuplicateTensor(t) if t == "t"));

    // Reader and writer misuse.
    let mut r = GgufReader::new(Cursor::new(fixture())).unwrap();
    assert!(matches!(r.read_tensor(99), Err(Error::NoSuchTensor(_))));
    assert!(matches!(
        r.read_tensor_into(0, &mut [0u8; 3]),
        Err(Error::DataSizeMismatch { .. })
    ));
    let infos = [TensorInfo::new("a", vec![2], GgmlType::F32).unwrap()];
    let mut w = GgufWriter::new(Vec::new(), 3, &Metadata::new(), &infos).unwrap();
    assert!(matches!(w.write_tensor(&[0; 4]), Err(Error::DataSizeMismatch { .. })));
    let w = GgufWriter::new(Vec::new(), 3, &Metadata::new(), &infos).unwrap();
    assert!(matches!(
        w.finish(),
        Err(Error::TensorCount {
            expected: 1,
            written: 0
        })
    ));
    assert!(matches!(
        GgufWriter::new(Vec::new(), 1, &Metadata::new(), &[]),
        Err(Error::UnsupportedVersion(1))
    ));
    let twice = [infos[0].clone(), infos[0].clone()];
    assert!(matches!(
        GgufWriter::new(Vec::new(), 3, &Metadata::new(), &twice),
        Err(Error::DuplicateTensor(_))
    ));
    assert!(matches!(
        Tensor::new("q", vec![40], GgmlType::Q4_0, vec![0u8; 0]),
        Err(Error::NotWholeBlocks { .. })
    ));
    assert!(matches!(
        Tensor::new("q", vec![32], GgmlType::Q4_0, vec![0u8; 17]),
        Err(Error::DataSizeMismatch {
            expected: 18,
            actual: 17,
            ..
        })
    ));
}

#[test]
fn gguf_never_panics_on_truncated_or_corrupted_files() {
    let bytes = fixture();
    // Every prefix: an error (a prefix that ends inside the last tensor's padding still parses).
    let last_data = {
        let r = GgufReader::new(Cursor::new(&bytes)).unwrap();
        let n = r.tensors().len() - 1;
        (r.data_offset() + r.tensor_offset(n).unwrap() + r.tensors()[n].n_bytes()) as usize
    };
    for len in 0..bytes.len() {
        let r = Gguf::read(&bytes[..len]);
        assert_eq!(r.is_ok(), len >= last_data, "prefix of {len} bytes");
    }
    // Byte flips all over the header: any result but a panic, and what parses writes back.
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let header_len = GgufReader::new(Cursor::new(&bytes)).unwrap().data_offset() as usize;
    for _ in 0..20_000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() % header_len as u64) as usize;
            b[i] = match next() % 3 {
                0 => next() as u8,
                1 => b[i] ^ (1 << (next() % 8)),
                _ => 0xff,
            };
        }
        if let Ok(g) = Gguf::read(&b) {
            let _ = g.to_bytes();
        }
    }
}

#[test]
fn gguf_type_table_is_ggmls() {
    // Spot checks against ggml's ggml-common.h; ids as in ggml.h.
    use GgmlType::*;
    for (t, id, block, size) in [
        (F32, 0, 1, 4),
        (Q4_0, 2, 32, 18),
        (Q8_0, 8, 32, 34),
        (Q8_1, 9, 32, 36),
        (Q4_K, 12, 256, 144),
        (Q6_K, 14, 256, 210),
        (IQ4_XS, 23, 256, 136),
        (BF16, 30, 1, 2),
        (MXFP4, 39, 32, 17),
        (Q2_0, 42, 64, 18),
    ] {
        assert_eq!((t.id(), t.block_size(), t.type_size()), (id, block, size), "{t}");
    }
    for (i, t) in GgmlType::ALL.iter().enumerate() {
        assert_eq!(GgmlType::from_id(t.id()), Some(*t));
        if i > 0 {
            assert!(GgmlType::ALL[i - 1].id() < t.id());
        }
    }
    for id in [4, 5, 31, 32, 33, 36, 37, 38, 43, u32::MAX] {
        assert_eq!(GgmlType::from_id(id), None);
    }
    assert_eq!(Q4_K.to_string(), "q4_K");
    assert!(Q8_0.is_quantized() && !BF16.is_quantized() && !I32.is_quantized());
}

/// The K-quant and 5-bit types through the re-quantizer and the reader: written with ggml's
/// reference quantizers, read back (`Tensor::to_f32`, `allow_requantize`) with its
/// dequantizers.
#[test]
fn gguf_kquants_write_and_read() {
    use ggml::{BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K, BlockQ6_K, BlockQ8_K, GgmlBlock};
    use GgmlType::*;
    let x: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.02).collect();
    let f32_bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut g = Gguf::new();
    g.metadata.insert("general.architecture", "llama");
    for n in ["output.weight", "token_embd.weight", "blk.0.ffn_up.weight"] {
        g.tensors
            .push(Tensor::new(n, vec![256, 2], F32, f32_bytes.clone()).unwrap());
    }
    for (target, ty) in [(Target::Q6_K, Q6_K), (Target::Q5_0, Q5_0), (Target::Q5_1, Q5_1)] {
        let (q, r) = g.requantize(target, &options()).unwrap();
        assert_eq!(r.file_type, target.file_type());
        let t = q.tensor("blk.0.ffn_up.weight").unwrap();
        assert_eq!(t.info.ty, ty);
        let (want, back): (Vec<u8>, Vec<f32>) = match ty {
            Q6_K => (
                bytemuck::cast_slice(&BlockQ6_K::quantize(&x).unwrap()).to_vec(),
                BlockQ6_K::dequantize(&BlockQ6_K::quantize(&x).unwrap()),
            ),
            Q5_0 => (
                bytemuck::cast_slice(&BlockQ5_0::quantize(&x).unwrap()).to_vec(),
                BlockQ5_0::dequantize(&BlockQ5_0::quantize(&x).unwrap()),
            ),
            _ => (
                bytemuck::cast_slice(&BlockQ5_1::quantize(&x).unwrap()).to_vec(),
                BlockQ5_1::dequantize(&BlockQ5_1::quantize(&x).unwrap()),
            ),
        };
        assert_eq!(&*t.data, &want[..]);
        assert_eq!(t.to_f32().unwrap(), back);
        let out = q.tensor("output.weight").unwrap();
        assert_eq!(out.info.ty, Q6_K);
        assert_eq!(
            &*out.data,
            bytemuck::cast_slice::<_, u8>(&BlockQ6_K::quantize(&x).unwrap())
        );
    }

    // Every K-quant as an output or token-embedding override.
    for ty in [Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        let opts = options()
            .with_output_tensor_type(Some(ty))
            .with_token_embedding_type(Some(ty));
        let (q, _) = g.requantize(Target::Q8_0, &opts).unwrap();
        let t = q.tensor("output.weight").unwrap();
        assert_eq!(t.info.ty, ty);
        let y = t.to_f32().unwrap();
        let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.6, "{ty}: {err}");
    }

    // Quantized sources are read with ggml's dequantizers (with allow_requantize).
    let quantized = |ty: GgmlType, bytes: Vec<u8>| {
        let mut g = Gguf::new();
        g.tensors
            .push(Tensor::new("blk.0.ffn_up.weight", vec![256, 2], ty, bytes).unwrap());
        g
    };
    let allow = options().with_allow_requantize(true);
    for (ty, bytes, y) in [
        (
            Q2_K,
            bytemuck::cast_slice(&BlockQ2_K::quantize(&x).unwrap()).to_vec(),
            BlockQ2_K::dequantize(&BlockQ2_K::quantize(&x).unwrap()),
        ),
        (
            Q3_K,
            bytemuck::cast_slice(&BlockQ3_K::quantize(&x).unwrap()).to_vec(),
            BlockQ3_K::dequantize(&BlockQ3_K::quantize(&x).unwrap()),
        ),
        (
            Q4_K,
            bytemuck::cast_slice(&BlockQ4_K::quantize(&x).unwrap()).to_vec(),
            BlockQ4_K::dequantize(&BlockQ4_K::quantize(&x).unwrap()),
        ),
        (
            Q5_K,
            bytemuck::cast_slice(&BlockQ5_K::quantize(&x).unwrap()).to_vec(),
            BlockQ5_K::dequantize(&BlockQ5_K::quantize(&x).unwrap()),
        ),
        (
            Q8_K,
            bytemuck::cast_slice(&BlockQ8_K::quantize(&x).unwrap()).to_vec(),
            BlockQ8_K::dequantize(&BlockQ8_K::quantize(&x).unwrap()),
        ),
    ] {
        let src = quantized(ty, bytes);
        assert_eq!(src.tensors[0].to_f32().unwrap(), y, "{ty}");
        assert!(matches!(
            src.requantize(Target::Q8_0, &options()),
            Err(Error::Unsupported { .. })
        ));
        let (q, _) = src.requantize(Target::Q8_0, &allow).unwrap();
        assert_eq!(
            &*q.tensors[0].data,
            bytemuck::cast_slice::<_, u8>(&ggml::quantize_q8_0(&y).unwrap()),
            "{ty}"
        );
    }
    let iq = quantized(IQ4_XS, vec![0u8; 2 * 136]);
    assert!(matches!(iq.tensors[0].to_f32(), Err(Error::Unsupported { .. })));
}

/// Found by the `gguf_file` fuzz target: files the reader accepted whose owned copies or
/// write-back were far larger than the file (tensors sharing their data, tensors off the
/// alignment under a huge `general.alignment`, a tensor-less file padded to 2^31 bytes).
#[test]
fn gguf_fuzz_reads_and_writes_stay_in_proportion() {
    // Two tensors of 32 F32 on the same bytes: refused (read_slice borrowed them, but
    // `into_gguf`, `to_bytes` and requantize copied the shared bytes once per tensor).
    let mut b = header(3, 2, 0);
    for name in ["a", "b"] {
        push_str(&mut b, name);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&32u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
    }
    b.resize(b.len().next_multiple_of(32) + 128, 0);
    let e = read_err(&b);
    assert!(
        matches!(&e, Error::TensorsOverlap { tensor, other } if tensor == "b" && other == "a"),
        "{e}"
    );
    // Empty tensors share nothing: two at offset 0 are fine.
    let mut b = header(3, 2, 0);
    for name in ["a", "b"] {
        push_str(&mut b, name);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
    }
    b.resize(b.len().next_multiple_of(32), 0);
    assert_eq!(Gguf::read(&b).unwrap().tensors.len(), 2);
    // Tensors in any order are still read (gguf-py's reader does), when aligned.
    let t = |name: &str, at: u64| {
        let mut b = Vec::new();
        push_str(&mut b, name);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&8u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&at.to_le_bytes());
        b
    };
    let mut b = header(3, 2, 0);
    b.extend(t("a", 32));
    b.extend(t("b", 0));
    b.resize(b.len().next_multiple_of(32) + 64, 7);
    let g = Gguf::read(&b).unwrap();
    let w = g.to_bytes().unwrap();
    assert_eq!(Gguf::read(&w).unwrap().tensors, g.tensors);
    // A tensor off the alignment: refused, as ggml refuses it.
    let mut b = header(3, 2, 0);
    b.extend(t("a", 0));
    b.extend(t("b", 36));
    b.resize(b.len().next_multiple_of(32) + 96, 0);
    let e = read_err(&b);
    assert!(
        matches!(&e, Error::MisalignedTensor { tensor, offset: 36, alignment: 32 } if tensor == "b"),
        "{e}"
    );
    // No tensors, `general.alignment` 2^31: read, and written back without 2 GiB of padding.
    let b = one_kv("general.alignment", 4, &(1u32 << 31).to_le_bytes());
    let g = Gguf::read(&b).unwrap();
    let w = g.to_bytes().unwrap();
    assert_eq!(w, b);
    assert_eq!(Gguf::read(&w).unwrap(), g);
    // With tensors, the data section is padded as before.
    let mut f = Gguf::new();
    f.tensors
        .push(Tensor::new("t", vec![4], GgmlType::F32, vec![0u8; 16]).unwrap());
    assert_eq!(f.to_bytes().unwrap().len() % 32, 0);
}

/// Found by the `gguf_file` fuzz target: a tensor with a 0 dim past the first (no elements)
/// was re-quantized with the 0 dropped as if it were a trailing 1, so its description needed
/// bytes its data did not have: the in-memory result could not be written, the streamed one
/// failed. ggml drops trailing 1s only (a 0 dim is kept).
#[test]
fn gguf_fuzz_requantize_keeps_zero_dims() {
    let mut f = Gguf::new();
    f.tensors
        .push(Tensor::new("output.weight", vec![256, 0], GgmlType::F32, Vec::<u8>::new()).unwrap());
    f.tensors
        .push(Tensor::new("blk.0.attn_q.weight", vec![64, 1, 1], GgmlType::F32, vec![0u8; 256]).unwrap());
    let bytes = f.to_bytes().unwrap();
    for target in [Target::Q8_0, Target::Q4_0, Target::F16] {
        let (q, report) = f.requantize(target, &options()).unwrap();
        assert_eq!(report.tensors[0].dims, [256, 0]);
        assert_eq!(report.tensors[1].dims, [64]); // trailing 1s dropped
        let out = q.to_bytes().unwrap();
        let mut streamed = Vec::new();
        let r2 = requantize(
            &mut GgufReader::new(Cursor::new(&bytes)).unwrap(),
            &mut streamed,
            target,
            &options(),
        )
        .unwrap();
        assert_eq!(r2, report);
        assert_eq!(streamed, out);
    }
}
