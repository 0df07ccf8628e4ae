//! The file readers, which parse untrusted bytes: `io::safetensors` (feature `safetensors`:
//! `SafetensorsFile`, bitsandbytes 4-bit and compressed-tensors layouts) and `io::gguf`
//! (feature `gguf`: `Gguf`, `GgufReader`, the re-quantizer). Each target feeds random bytes,
//! crafted headers and valid files (built with the crate's own writers, or the committed
//! fixtures) truncated, extended or with bits flipped, then uses whatever is accepted through
//! every read method and writes it back.
//!
//! Invariants: no panic, typed errors, allocation in proportion to the input (the tensor data
//! a reader hands out is at most the file's bytes), and a file read and written again reads
//! the same.

#[cfg(feature = "safetensors")]
pub use self::safetensors_target::safetensors_file;

#[cfg(feature = "gguf")]
pub use self::gguf_target::gguf_file;

#[cfg(feature = "safetensors")]
mod safetensors_target {
    use super::super::{damage, f32_any, f32s_finite, run, size, vec_of};
    use arbitrary::{Result, Unstructured};
    use lowbit::compat::bnb::{self as cbnb, QuantType};
    use lowbit::io::safetensors::compressed::{self, Activations, Scheme, Strategy};
    use lowbit::io::safetensors::{bnb, read, to_bytes, Dtype, Metadata, SafetensorsFile, Tensor};

    /// Every dtype the header can name, with its name in the JSON.
    const DTYPES: [(Dtype, &str); 20] = [
        (Dtype::BOOL, "BOOL"),
        (Dtype::F4, "F4"),
        (Dtype::F6_E2M3, "F6_E2M3"),
        (Dtype::F6_E3M2, "F6_E3M2"),
        (Dtype::U8, "U8"),
        (Dtype::I8, "I8"),
        (Dtype::F8_E5M2, "F8_E5M2"),
        (Dtype::F8_E4M3, "F8_E4M3"),
        (Dtype::F8_E8M0, "F8_E8M0"),
        (Dtype::I16, "I16"),
        (Dtype::U16, "U16"),
        (Dtype::F16, "F16"),
        (Dtype::BF16, "BF16"),
        (Dtype::I32, "I32"),
        (Dtype::U32, "U32"),
        (Dtype::F32, "F32"),
        (Dtype::C64, "C64"),
        (Dtype::F64, "F64"),
        (Dtype::I64, "I64"),
        (Dtype::U64, "U64"),
    ];

    /// The tensor names the quantized layouts look for, after a module prefix.
    const SUFFIXES: [&str; 13] = [
        ".weight",
        ".weight.absmax",
        ".weight.quant_map",
        ".weight.nested_absmax",
        ".weight.nested_quant_map",
        ".weight.quant_state.bitsandbytes__nf4",
        ".weight.quant_state.bitsandbytes__fp4",
        ".weight_packed",
        ".weight_scale",
        ".weight_shape",
        ".weight_zero_point",
        ".weight_global_scale",
        ".input_scale",
    ];

    fn strategy(u: &mut Unstructured<'_>) -> Result<Strategy> {
        Ok(match u.int_in_range(0u8..=3)? {
            0 => Strategy::Tensor,
            1 => Strategy::Channel,
            2 => Strategy::Group(*u.choose(&[16usize, 32, 64, 128])?),
            _ => Strategy::Group(size(u)?),
        })
    }

    fn scheme(u: &mut Unstructured<'_>) -> Result<Scheme> {
        Ok(match u.int_in_range(0u8..=4)? {
            0 => Scheme::Fp8 {
                strategy: strategy(u)?,
                activations: *u.choose(&[
                    Activations::None,
                    Activations::DynamicPerToken,
                    Activations::StaticPerTensor,
                ])?,
            },
            1 => Scheme::Int {
                bits: if u.ratio(7u8, 8)? {
                    u.int_in_range(2..=8)?
                } else {
                    u.arbitrary()?
                },
                symmetric: u.arbitrary()?,
                strategy: strategy(u)?,
                packed: u.ratio(3u8, 4)?,
            },
            2 => Scheme::Nvfp4,
            3 => Scheme::Mxfp4,
            _ => Scheme::Mxfp8,
        })
    }

    /// A small 2-D weight: rows, columns (often whole blocks of 32) and finite values.
    fn weight(u: &mut Unstructured<'_>) -> Result<(usize, usize, Vec<f32>)> {
        let rows = u.int_in_range(0usize..=4)?;
        let cols = match u.int_in_range(0u8..=3)? {
            0 => u.int_in_range(0usize..=40)?,
            1 => 16,
            2 => 64,
            _ => 32,
        };
        let mut w = f32s_finite(u, rows * cols)?;
        w.resize(rows * cols, 0.25);
        Ok((rows, cols, w))
    }

    fn metadata(u: &mut Unstructured<'_>) -> Result<Option<Metadata>> {
        if !u.arbitrary()? {
            return Ok(None);
        }
        let n = u.int_in_range(0usize..=3)?;
        let mut m = Metadata::new();
        for i in 0..n {
            m.insert(format!("k{i}"), super::super::name(u)?);
        }
        Ok(Some(m))
    }

    /// The bytes of a valid file written by lowbit: plain float and integer tensors, a
    /// bitsandbytes 4-bit weight, or a compressed-tensors weight.
    fn valid_file(u: &mut Unstructured<'_>) -> Result<Option<(Vec<u8>, Option<Scheme>)>> {
        let meta = metadata(u)?;
        let (tensors, scheme) = match u.int_in_range(0u8..=3)? {
            0 => {
                let n = u.int_in_range(0usize..=4)?;
                let mut ts = Vec::new();
                for i in 0..n {
                    let (rows, cols, w) = weight(u)?;
                    let dtype = *u.choose(&[
                        Dtype::F32,
                        Dtype::F64,
                        Dtype::F16,
                        Dtype::BF16,
                        Dtype::F8_E4M3,
                        Dtype::F8_E5M2,
                    ])?;
                    let t = if u.ratio(1u8, 4)? {
                        let dt = *u.choose(&[Dtype::I64, Dtype::U8, Dtype::I32, Dtype::F8_E8M0, Dtype::BOOL])?;
                        let len = rows * cols * dt.bitsize() / 8;
                        let mut b = vec_of(u, len, |u| u.arbitrary::<u8>())?;
                        b.resize(len, 0);
                        Tensor::raw(format!("t{i}"), vec![rows, cols], dt, b)
                    } else {
                        Tensor::cast(format!("t{i}"), vec![rows, cols], &w, dtype)
                    };
                    ts.push(t.expect("a valid tensor"));
                }
                (ts, None)
            }
            1 => {
                let (rows, cols, w) = weight(u)?;
                let qt = if u.arbitrary()? { QuantType::Nf4 } else { QuantType::Fp4 };
                let bs = *u.choose(&cbnb::BLOCKSIZES_4BIT)?;
                let dtype = *u.choose(&[Dtype::F32, Dtype::F16, Dtype::BF16])?;
                let dq = u.arbitrary()?;
                // FINDINGS.md F20 is fixed: double quantization of any finite weight restores
                // finite block maxima.
                match bnb::quantize("m", &[rows, cols], &w, qt, bs, dq, dtype) {
                    Ok(ts) => {
                        // Read back what was written: the quantizer's own values.
                        let bytes = to_bytes(&ts, meta.as_ref()).expect("bnb tensors");
                        let f = SafetensorsFile::parse(&bytes).expect("bnb file");
                        let q = bnb::read(&f, "m").expect("bnb::read of bnb::quantize");
                        let (packed, st) = cbnb::quantize_4bit(&w, bs, qt, dq).expect("quantized above");
                        assert_eq!(q.packed, packed);
                        assert!(q.state == st, "bnb state read back differs");
                        let a = q.dequantize().expect("dequantize");
                        let b = cbnb::dequantize_4bit(&packed, &st).expect("dequantize_4bit");
                        assert_eq!(a.len(), rows * cols);
                        // Equal values (the sign of FP4's zero aside), finite for finite data.
                        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                            panic!(
                                "bnb file dequantizes differently at {i}: {} vs {} ({qt:?}, blocks of {bs}, double quant {dq}, {:?})",
                                a[i], b[i], q.state
                            );
                        }
                        assert!(a.iter().all(|x| x.is_finite()), "bnb: finite data gives {a:?}");
                        (ts, None)
                    }
                    Err(_) => return Ok(None),
                }
            }
            _ => {
                let (rows, cols, w) = weight(u)?;
                let s = scheme(u)?;
                match compressed::quantize("m", &[rows, cols], &w, &s) {
                    Ok(mut ts) => {
                        if let Scheme::Fp8 {
                            activations: Activations::StaticPerTensor,
                            ..
                        } = s
                        {
                            if let Ok(t) = compressed::input_scale("m", f32_any(u)?) {
                                ts.push(t);
                            }
                        }
                        (ts, Some(s))
                    }
                    Err(_) => return Ok(None),
                }
            }
        };
        let bytes = to_bytes(&tensors, meta.as_ref()).expect("to_bytes of valid tensors");
        if let Some(s) = scheme {
            let f = SafetensorsFile::parse(&bytes).expect("a file lowbit wrote");
            let parts = compressed::read(&f, "m", &s).expect("compressed::read of compressed::quantize");
            let y = parts.dequantize().expect("dequantize what was written");
            assert_eq!(y.len(), parts.shape.iter().product::<usize>());
        }
        Ok(Some((bytes, scheme)))
    }

    /// A header of fuzzed entries (consistent offsets most of the time) and fuzzed data: the
    /// quantized layouts' names, quant-state JSON, shapes up to `usize::MAX`, integer weight
    /// shapes up to `i64::MAX`.
    fn crafted_file(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let n = u.int_in_range(0usize..=7)?;
        let mut json = String::from("{");
        let mut data = Vec::new();
        if u.ratio(1u8, 4)? {
            json.push_str("\"__metadata__\":{\"format\":\"pt\"},");
        }
        for i in 0..n {
            let name = if u.ratio(7u8, 8)? {
                format!("m{}", SUFFIXES[u.choose_index(SUFFIXES.len())?])
            } else {
                format!("t{i}")
            };
            let (dtype, dname) = if u.ratio(1u8, 3)? {
                DTYPES[u.choose_index(DTYPES.len())?]
            } else {
                *u.choose(&[
                    (Dtype::U8, "U8"),
                    (Dtype::F32, "F32"),
                    (Dtype::I32, "I32"),
                    (Dtype::I64, "I64"),
                    (Dtype::F8_E4M3, "F8_E4M3"),
                ])?
            };
            let ndims = u.int_in_range(0usize..=3)?;
            let mut shape = Vec::new();
            for _ in 0..ndims {
                shape.push(if u.ratio(1u8, 8)? {
                    size(u)?
                } else {
                    u.int_in_range(0usize..=70)?
                });
            }
            let mut content: Vec<u8> = if name.contains("quant_state") {
                quant_state_json(u)?.into_bytes()
            } else if name.ends_with("weight_shape") {
                let dims = vec_of(u, 3, |u| {
                    Ok(if u.arbitrary()? {
                        u.arbitrary::<i64>()?
                    } else {
                        u.int_in_range(0i64..=70)?
                    })
                })?;
                dims.iter().flat_map(|d| d.to_le_bytes()).collect()
            } else {
                Vec::new()
            };
            if name.contains("quant_state") || name.ends_with("weight_shape") {
                shape = if dtype == Dtype::U8 && !name.ends_with("weight_shape") {
                    vec![content.len()]
                } else if name.ends_with("weight_shape") && u.arbitrary()? {
                    vec![content.len() / 8]
                } else {
                    shape
                };
            }
            let want = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(dtype.bitsize()))
                .map(|b| b.div_ceil(8));
            let len = match want {
                Some(b) if b <= 4096 && u.ratio(7u8, 8)? => b,
                _ => u.int_in_range(0usize..=64)?,
            };
            while content.len() < len {
                content.push(u.arbitrary()?);
            }
            content.truncate(len);
            let (start, mut end) = (data.len() as u64, (data.len() + content.len()) as u64);
            if u.ratio(1u8, 16)? {
                end = u.arbitrary()?;
            }
            data.extend_from_slice(&content);
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            json.push_str(&format!(
                "\"{name}\":{{\"dtype\":\"{dname}\",\"shape\":[{}],\"data_offsets\":[{start},{end}]}},",
                dims.join(",")
            ));
        }
        if json.ends_with(',') {
            json.pop();
        }
        json.push('}');
        let mut header = json.into_bytes();
        // The libraries pad the header with spaces to 8 bytes.
        while u.arbitrary()? && header.len() % 8 != 0 {
            header.push(b' ');
        }
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        if u.ratio(1u8, 16)? {
            out = u.arbitrary::<u64>()?.to_le_bytes().to_vec();
        }
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// A bitsandbytes packed quant state with fuzzed fields.
    fn quant_state_json(u: &mut Unstructured<'_>) -> Result<String> {
        let qt = if u.arbitrary()? { "nf4" } else { "fp4" };
        let num = |u: &mut Unstructured<'_>| -> Result<String> {
            Ok(match u.int_in_range(0u8..=5)? {
                0 => size(u)?.to_string(),
                1 => u.arbitrary::<i64>()?.to_string(),
                2 => "1e308".into(),
                3 => "-1".into(),
                _ => (*u.choose(&[32u32, 64, 128, 256, 4096])?).to_string(),
            })
        };
        let dims = vec_of(u, 3, |u| {
            Ok(if u.ratio(1u8, 6)? {
                num(u)?
            } else {
                u.int_in_range(0u32..=70)?.to_string()
            })
        })?;
        let mut s = format!(
            "{{\"quant_type\": \"{qt}\", \"blocksize\": {}, \"dtype\": \"bfloat16\", \"shape\": [{}]",
            num(u)?,
            dims.join(", ")
        );
        if u.arbitrary()? {
            let off = f32_any(u)?;
            let off = if off.is_finite() { off.to_string() } else { "NaN".into() };
            s.push_str(&format!(
                ", \"nested_blocksize\": {}, \"nested_dtype\": \"float32\", \"nested_offset\": {off}",
                num(u)?
            ));
        }
        s.push('}');
        Ok(s)
    }

    /// Every scheme kind, a few parameters each.
    fn schemes() -> Vec<Scheme> {
        let mut v = vec![
            Scheme::Fp8 {
                strategy: Strategy::Tensor,
                activations: Activations::None,
            },
            Scheme::Fp8 {
                strategy: Strategy::Channel,
                activations: Activations::StaticPerTensor,
            },
            Scheme::Nvfp4,
            Scheme::Mxfp4,
            Scheme::Mxfp8,
        ];
        for bits in [2, 3, 4, 8] {
            for symmetric in [true, false] {
                for strategy in [Strategy::Tensor, Strategy::Channel, Strategy::Group(16)] {
                    v.push(Scheme::Int {
                        bits,
                        symmetric,
                        strategy,
                        packed: true,
                    });
                }
            }
        }
        for symmetric in [true, false] {
            v.push(Scheme::Int {
                bits: 8,
                symmetric,
                strategy: Strategy::Channel,
                packed: false,
            });
        }
        v
    }

    /// Same name, shape, dtype and bytes.
    fn same(a: &Tensor, b: &Tensor) -> bool {
        a.name == b.name && a.shape == b.shape && a.dtype() == b.dtype() && a.bytes() == b.bytes()
    }

    /// Everything a reader offers, on a file it accepted.
    fn use_file(
        f: &SafetensorsFile<'_>,
        bytes: &[u8],
        u: &mut Unstructured<'_>,
        written: Option<Scheme>,
    ) -> Result<()> {
        let _ = format!("{f:?}");
        let _ = f.metadata();
        let names: Vec<String> = f.names().into_iter().map(str::to_owned).collect();
        let mut held = 0usize;
        let mut raws = Vec::new();
        for n in &names {
            assert!(f.contains(n));
            let v = f.view(n).expect("a listed tensor");
            held += v.bytes.len();
            let numel = v.numel();
            if let Ok(x) = v.to_f32() {
                // Sub-byte float dtypes are not decoded (not floats lowbit reads).
                assert_eq!(x.len(), numel, "{n}: {:?} {:?}", v.dtype, v.shape);
                let y = f.f32s(n).expect("f32s of a float tensor");
                assert!(super::super::same_f32s(&x, &y));
                if let Some(a) = v.as_f32() {
                    assert!(super::super::same_f32s(a, &x));
                }
            }
            let t = f.tensor(n).expect("tensor");
            assert_eq!(t.shape, v.shape);
            let r = f.raw(n).expect("raw");
            assert_eq!(r.bytes().as_ref(), v.bytes);
            assert_eq!(r.view(), v);
            raws.push(r);
        }
        // Allocation: the tensors are the file's bytes, each byte once.
        assert!(held <= bytes.len(), "{held} tensor bytes in a file of {}", bytes.len());
        // `read` agrees with the parsed file.
        let (all, meta) = read(bytes).expect("read of a file parse accepted");
        assert_eq!(all.len(), names.len());
        assert_eq!(meta.as_ref(), f.metadata());
        let tensors = f.tensors().expect("tensors");
        for (a, b) in all.iter().zip(&tensors) {
            assert!(same(a, b));
        }
        // Written again, the file reads the same.
        let again = to_bytes(&raws, f.metadata()).expect("to_bytes of what was read");
        let g = SafetensorsFile::parse(&again).expect("a file lowbit wrote");
        assert_eq!(g.names(), f.names());
        assert_eq!(g.metadata(), f.metadata());
        for r in &raws {
            assert!(same(r, &g.raw(&r.name).expect("written")));
        }
        // The quantized layouts, for every module prefix the names suggest.
        let mut prefixes: Vec<&str> = names
            .iter()
            .flat_map(|n| SUFFIXES.iter().filter_map(move |s| n.strip_suffix(s)))
            .collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        let mut kinds = schemes();
        kinds.push(scheme(u)?);
        kinds.extend(written);
        for p in prefixes {
            if let Ok(q) = bnb::read(f, p) {
                let n = q.state.len();
                assert_eq!(n, q.shape.iter().product::<usize>());
                // Allocation: the element count is bounded by the packed bytes.
                assert!(n <= 2 * bytes.len());
                let _ = q.state.absmax();
                let _ = q.state.bits_per_element();
                if let Ok(y) = q.dequantize() {
                    assert_eq!(y.len(), n);
                }
                if let Ok(y) = cbnb::dequantize_4bit(&q.packed, &q.state) {
                    assert_eq!(y.len(), n);
                }
                // Written out again with lowbit's maps and read back: the same state and codes.
                let dtype = match q.dtype.as_str() {
                    "float16" => Dtype::F16,
                    "float32" => Dtype::F32,
                    _ => Dtype::BF16,
                };
                if let Ok(ts) = bnb::tensors(p, &q.shape, q.packed.clone(), &q.state, dtype) {
                    let b = to_bytes(&ts, None).expect("bnb tensors");
                    let g = SafetensorsFile::parse(&b).expect("bnb file");
                    let back = bnb::read(&g, p).expect("bnb::read of bnb::tensors");
                    assert_eq!(back.packed, q.packed);
                    assert_eq!(back.shape, q.shape);
                    assert!(
                        format!("{:?}", back.state) == format!("{:?}", q.state),
                        "bnb state written and read differs"
                    );
                }
                // Any parts (public fields) dequantize or give an error.
                let mut bad = q.clone();
                match u.int_in_range(0u8..=3)? {
                    0 => bad.packed.truncate(bad.packed.len() / 2),
                    1 => bad.quant_map.truncate(u.int_in_range(0..=16)?),
                    2 => {
                        if let Some(m) = bad.nested_quant_map.as_mut() {
                            m.truncate(u.int_in_range(0..=256)?);
                        }
                    }
                    _ => {}
                }
                let _ = bad.dequantize();
            }
            for s in &kinds {
                if let Ok(parts) = compressed::read(f, p, s) {
                    let n = parts.codes.len();
                    // Allocation: at most four codes per byte (2-bit integers), one scale and
                    // zero point per byte.
                    assert!(n <= 4 * bytes.len() && parts.scales.len() <= bytes.len());
                    if let Ok(y) = parts.dequantize() {
                        assert_eq!(y.len(), n);
                    }
                    if let Ok(q) = parts.to_quantized() {
                        let mut out = vec![0f32; q.len()];
                        let _ = lowbit::quant::mx::dequantize_into(&q, &mut out);
                    }
                    // Any parts (public fields) dequantize or give an error.
                    let mut bad = parts.clone();
                    match u.int_in_range(0u8..=3)? {
                        0 => bad.codes.truncate(bad.codes.len() / 2),
                        1 => bad.scales.truncate(u.int_in_range(0..=bad.scales.len())?),
                        2 => bad.zero_points.push(1),
                        _ => bad.shape = vec![u.int_in_range(0..=9)?, size(u)?],
                    }
                    let _ = bad.dequantize();
                    let _ = bad.to_quantized();
                }
            }
        }
        Ok(())
    }

    /// `SafetensorsFile::parse` and the quantized-layout readers on random bytes, crafted
    /// headers and damaged valid files.
    pub fn safetensors_file(data: &[u8]) {
        run(data, |u| {
            let (bytes, scheme) = match u.int_in_range(0u8..=7)? {
                0 => {
                    let mut b = vec_of(u, 300, |u| u.arbitrary::<u8>())?;
                    if b.len() >= 8 && u.arbitrary()? {
                        // A plausible header length.
                        let n = (b.len() - 8) as u64;
                        b[..8].copy_from_slice(&u.int_in_range(0..=n)?.to_le_bytes());
                    }
                    (b, None)
                }
                1..=3 => (crafted_file(u)?, None),
                _ => match valid_file(u)? {
                    Some((b, s)) => (damage(u, b)?, s),
                    None => return Ok(()),
                },
            };
            if let Ok(f) = SafetensorsFile::parse(&bytes) {
                use_file(&f, &bytes, u, scheme)?;
            } else {
                assert!(read(&bytes[..]).is_err());
            }
            Ok(())
        });
    }
}

#[cfg(feature = "gguf")]
mod gguf_target {
    use super::super::{damage, f32_any, f32s_finite, run, size, vec_of};
    use arbitrary::{Result, Unstructured};
    use lowbit::compat::ggml;
    use lowbit::io::gguf::{
        requantize, requantize_plan, Array, GgmlType, Gguf, GgufReader, Imatrix, RequantizeOptions, Target, Tensor,
        TensorInfo, Value, ValueType, ALIGNMENT_KEY,
    };
    use lowbit::{Bf16, FloatFormat, Fp16};
    use std::io::Cursor;

    /// The fixtures committed with the GGUF tests (gguf-py and lowbit wrote them).
    const FIXTURES: [&[u8]; 2] = [
        include_bytes!("../data/gguf/fixture.gguf"),
        include_bytes!("../data/gguf/lowbit_written.gguf"),
    ];

    const NAMES: [&str; 12] = [
        "output.weight",
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_v.weight",
        "blk.0.attn_k.weight",
        "blk.1.ffn_up.weight",
        "blk.0.attn_norm.weight",
        "output_norm.weight",
        "blk.-3.x.weight",
        "blk.99999999999.ffn_down.weight",
        "position_embd.weight",
        "rope_freqs",
    ];

    const KEYS: [&str; 7] = [
        "general.architecture",
        ALIGNMENT_KEY,
        "general.file_type",
        "split.count",
        "llama.expert_count",
        "general.name",
        "tokenizer.ggml.tokens",
    ];

    fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
        Ok(match u.int_in_range(0u8..=12)? {
            0 => Value::U8(u.arbitrary()?),
            1 => Value::I8(u.arbitrary()?),
            2 => Value::U16(u.arbitrary()?),
            3 => Value::I32(u.arbitrary()?),
            4 => Value::U32(*u.choose(&[0u32, 1, 3, 8, 32, 64, 4096, 1 << 31, u32::MAX])?),
            5 => Value::F32(f32_any(u)?),
            6 => Value::Bool(u.arbitrary()?),
            7 => Value::String(super::super::name(u)?.into()),
            8 if depth < 3 => Value::Array(array(u, depth + 1)?),
            9 => Value::U64(size(u)? as u64),
            10 => Value::I64(u.arbitrary()?),
            11 => Value::F64(f64::from(f32_any(u)?)),
            _ => Value::U32(u.arbitrary()?),
        })
    }

    fn array(u: &mut Unstructured<'_>, depth: u32) -> Result<Array> {
        Ok(match u.int_in_range(0u8..=5)? {
            0 => Array::U8(vec_of(u, 8, |u| u.arbitrary())?),
            1 => Array::F32(vec_of(u, 8, f32_any)?),
            2 => Array::String(vec_of(u, 4, |u| Ok(super::super::name(u)?.into()))?),
            3 if depth < 3 => Array::Array(vec_of(u, 3, |u| array(u, depth + 1))?),
            4 => Array::Bool(vec_of(u, 8, |u| u.arbitrary())?),
            _ => Array::I64(vec_of(u, 4, |u| u.arbitrary())?),
        })
    }

    /// A valid tensor of a fuzzed type and small dims.
    fn tensor(u: &mut Unstructured<'_>, name: &str) -> Result<Option<Tensor<'static>>> {
        let ty = if u.ratio(3u8, 4)? {
            *u.choose(&[
                GgmlType::F32,
                GgmlType::F16,
                GgmlType::BF16,
                GgmlType::Q8_0,
                GgmlType::Q4_0,
                GgmlType::Q4_1,
            ])?
        } else {
            GgmlType::ALL[u.choose_index(GgmlType::ALL.len())?]
        };
        let b = ty.block_size() as usize;
        let row = if u.ratio(1u8, 4)? {
            u.int_in_range(0usize..=40)?
        } else {
            b * u.int_in_range(0usize..=2)?
        };
        let row = if row % b == 0 { row } else { b };
        let mut dims = vec![row as u64];
        for _ in 0..u.int_in_range(0usize..=3)? {
            dims.push(u.int_in_range(0u64..=3)?);
        }
        let n: usize = dims.iter().product::<u64>() as usize;
        if n > 1024 {
            return Ok(None);
        }
        let mut x = f32s_finite(u, n)?;
        x.resize(n, 0.5);
        let bytes: Vec<u8> = match ty {
            GgmlType::F32 => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
            GgmlType::F16 => x.iter().flat_map(|&v| Fp16::encode_f32(v).to_le_bytes()).collect(),
            GgmlType::BF16 => x.iter().flat_map(|&v| Bf16::encode_f32(v).to_le_bytes()).collect(),
            GgmlType::Q8_0 => match ggml::quantize_q8_0(&x) {
                Ok(b) => bytemuck::cast_slice(&b).to_vec(),
                Err(_) => return Ok(None),
            },
            GgmlType::Q4_0 => match ggml::quantize_q4_0(&x) {
                Ok(b) => bytemuck::cast_slice(&b).to_vec(),
                Err(_) => return Ok(None),
            },
            GgmlType::Q4_1 => match ggml::quantize_q4_1(&x) {
                Ok(b) => bytemuck::cast_slice(&b).to_vec(),
                Err(_) => return Ok(None),
            },
            _ => {
                let len = ty.bytes_for(n as u64).expect("whole blocks") as usize;
                let mut b = vec_of(u, len, |u| u.arbitrary::<u8>())?;
                b.resize(len, 0);
                b
            }
        };
        Ok(Some(Tensor::new(name, dims, ty, bytes).expect("a valid tensor")))
    }

    /// A file lowbit writes: fuzzed metadata and a few tensors.
    fn valid_file(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let mut g = Gguf::new();
        if u.ratio(1u8, 8)? {
            g.version = 2;
        }
        for _ in 0..u.int_in_range(0usize..=4)? {
            let k = if u.ratio(3u8, 4)? {
                KEYS[u.choose_index(KEYS.len())?].to_owned()
            } else {
                super::super::name(u)?
            };
            let v = if k == ALIGNMENT_KEY {
                Value::U32(*u.choose(&[1u32, 8, 16, 32, 64])?)
            } else if k == "general.architecture" {
                Value::from(*u.choose(&["llama", "falcon", "glm5-next", ""])?)
            } else {
                value(u, 0)?
            };
            if !k.is_empty() {
                g.metadata.insert(k, v);
            }
        }
        let mut names: Vec<&str> = NAMES.to_vec();
        for _ in 0..u.int_in_range(0usize..=4)? {
            if names.is_empty() {
                break;
            }
            let name = names.swap_remove(u.choose_index(names.len())?);
            if let Some(t) = tensor(u, name)? {
                g.tensors.push(t);
            }
        }
        Ok(g.to_bytes().expect("a valid file"))
    }

    fn put_str(b: &mut Vec<u8>, s: &[u8]) {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s);
    }

    /// A fuzzed count: the true one most often, else anything up to `u64::MAX`.
    fn count(u: &mut Unstructured<'_>, n: usize) -> Result<u64> {
        Ok(if u.ratio(3u8, 4)? {
            n as u64
        } else if u.arbitrary()? {
            size(u)? as u64
        } else {
            u.arbitrary()?
        })
    }

    /// Raw value bytes of a type, with array counts that may lie.
    fn raw_value(u: &mut Unstructured<'_>, b: &mut Vec<u8>, ty: u32, depth: u32) -> Result<()> {
        match ValueType::from_id(ty) {
            Some(ValueType::String) => {
                let s = super::super::name(u)?;
                let n = count(u, s.len())?;
                b.extend_from_slice(&n.to_le_bytes());
                b.extend_from_slice(s.as_bytes());
            }
            Some(ValueType::Array) => {
                let et = if u.ratio(7u8, 8)? {
                    u.int_in_range(0u32..=12)?
                } else {
                    u.arbitrary()?
                };
                let et = if et == 9 && depth > 4 { 0 } else { et };
                let n = u.int_in_range(0usize..=4)?;
                b.extend_from_slice(&et.to_le_bytes());
                b.extend_from_slice(&count(u, n)?.to_le_bytes());
                for _ in 0..n {
                    if et == 9 {
                        let inner = if u.ratio(3u8, 4)? {
                            u.int_in_range(0u32..=12)?
                        } else {
                            9
                        };
                        b.extend_from_slice(&inner.to_le_bytes());
                        let k = u.int_in_range(0usize..=3)?;
                        b.extend_from_slice(&count(u, k)?.to_le_bytes());
                        for _ in 0..k {
                            raw_value(u, b, inner, depth + 1)?;
                        }
                    } else {
                        raw_value(u, b, et, depth + 1)?;
                    }
                }
            }
            Some(t) => {
                let n = t.size().expect("a fixed size");
                for _ in 0..n {
                    b.push(u.arbitrary()?);
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Magic, version, counts (true or huge), key/values of every type (array counts that
    /// may lie, nested arrays, `general.alignment`), tensor infos with fuzzed dims, types and
    /// offsets (consecutive or not), padding, data.
    fn crafted_file(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let mut b = b"GGUF".to_vec();
        let version = *u.choose(&[3u32, 3, 2, 1, 0x0300_0000, u32::MAX])?;
        b.extend_from_slice(&version.to_le_bytes());
        let n_tensors = u.int_in_range(0usize..=4)?;
        let n_kv = u.int_in_range(0usize..=4)?;
        b.extend_from_slice(&count(u, n_tensors)?.to_le_bytes());
        b.extend_from_slice(&count(u, n_kv)?.to_le_bytes());
        let mut alignment = 32u64;
        for _ in 0..n_kv {
            let key = if u.ratio(3u8, 4)? {
                KEYS[u.choose_index(KEYS.len())?].to_owned()
            } else {
                super::super::name(u)?
            };
            put_str(&mut b, key.as_bytes());
            if key == ALIGNMENT_KEY && u.ratio(3u8, 4)? {
                let a = *u.choose(&[1u32, 2, 8, 64, 0, 3, 1 << 31])?;
                b.extend_from_slice(&4u32.to_le_bytes());
                b.extend_from_slice(&a.to_le_bytes());
                if a.is_power_of_two() {
                    alignment = a.into();
                }
                continue;
            }
            let ty = if u.ratio(15u8, 16)? {
                u.int_in_range(0u32..=12)?
            } else {
                u.arbitrary()?
            };
            b.extend_from_slice(&ty.to_le_bytes());
            raw_value(u, &mut b, ty, 0)?;
        }
        let mut offset = 0u64;
        let mut data_len = 0u64;
        for _ in 0..n_tensors {
            let name = NAMES[u.choose_index(NAMES.len())?];
            put_str(&mut b, name.as_bytes());
            let ty = if u.ratio(3u8, 4)? {
                GgmlType::ALL[u.choose_index(GgmlType::ALL.len())?]
            } else {
                GgmlType::F32
            };
            let nd = if u.ratio(7u8, 8)? {
                u.int_in_range(1u32..=3)?
            } else {
                u.arbitrary()?
            };
            b.extend_from_slice(&nd.to_le_bytes());
            let mut dims = Vec::new();
            for i in 0..nd.min(6) {
                let d = match u.int_in_range(0u8..=7)? {
                    0 => size(u)? as u64,
                    1 => u.arbitrary()?,
                    _ if i == 0 => ty.block_size() * u.int_in_range(0u64..=2)?,
                    _ => u.int_in_range(0u64..=3)?,
                };
                dims.push(d);
                b.extend_from_slice(&d.to_le_bytes());
            }
            let tid = if u.ratio(15u8, 16)? { ty.id() } else { u.arbitrary()? };
            b.extend_from_slice(&tid.to_le_bytes());
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let size = n.and_then(|n| ty.bytes_for(n)).unwrap_or(0);
            let off = match u.int_in_range(0u8..=7)? {
                0 => u.arbitrary()?,
                1 => 0, // every tensor at the start: overlapping data
                _ => offset,
            };
            b.extend_from_slice(&off.to_le_bytes());
            offset = offset.saturating_add(size.saturating_add(alignment - 1) / alignment * alignment);
            data_len = data_len.max(off.saturating_add(size));
        }
        let pad = (alignment - b.len() as u64 % alignment) % alignment;
        if pad <= 4096 && u.ratio(15u8, 16)? {
            b.resize(b.len() + pad as usize, 0);
        }
        let data_len = if data_len <= 4096 && u.ratio(7u8, 8)? {
            data_len
        } else {
            u.int_in_range(0u64..=64)?
        };
        for _ in 0..data_len {
            b.push(u.arbitrary()?);
        }
        Ok(b)
    }

    fn options(u: &mut Unstructured<'_>) -> Result<RequantizeOptions> {
        let ty = |u: &mut Unstructured<'_>| -> Result<Option<GgmlType>> {
            Ok(if u.ratio(1u8, 4)? {
                Some(GgmlType::ALL[u.choose_index(GgmlType::ALL.len())?])
            } else {
                None
            })
        };
        Ok(RequantizeOptions::default()
            .with_pure(u.arbitrary()?)
            .with_leave_output_tensor(u.arbitrary()?)
            .with_output_tensor_type(ty(u)?)
            .with_token_embedding_type(ty(u)?)
            .with_allow_requantize(u.arbitrary()?))
    }

    /// Values of the types lowbit dequantizes, through `compat::ggml`.
    fn dequantize(t: &Tensor<'_>) {
        let n = t.info.n_elements() as usize;
        let mut out = vec![0f32; n];
        fn blocks<B: bytemuck::Pod>(d: &[u8]) -> Vec<B> {
            d.chunks_exact(std::mem::size_of::<B>())
                .map(bytemuck::pod_read_unaligned)
                .collect()
        }
        let r = match t.info.ty {
            GgmlType::Q8_0 => ggml::dequantize_q8_0(&blocks(&t.data), &mut out),
            GgmlType::Q4_0 => ggml::dequantize_q4_0(&blocks(&t.data), &mut out),
            GgmlType::Q4_1 => ggml::dequantize_q4_1(&blocks(&t.data), &mut out),
            _ => return,
        };
        r.expect("a tensor the reader accepted has whole blocks");
    }

    /// Everything the reader offers, on a file it accepted.
    fn use_file(g: &Gguf<'_>, bytes: &[u8], u: &mut Unstructured<'_>) -> Result<()> {
        // Allocation: the tensor data is the file's bytes, each byte once.
        let held: usize = g.tensors.iter().map(|t| t.data.len()).sum();
        assert!(
            held <= bytes.len(),
            "{held} bytes of tensor data in a file of {}",
            bytes.len()
        );
        for t in &g.tensors {
            assert_eq!(t.data.len() as u64, t.info.n_bytes());
            assert!(g.tensor(&t.info.name).is_some());
            let _ = (
                t.info.shape(),
                t.info.n_rows(),
                t.info.ggml_n_dims(),
                t.info.n_elements(),
            );
            dequantize(t);
        }
        let _ = g.metadata.alignment().expect("the reader checked it");
        for (k, v) in g.metadata.iter() {
            assert!(g.metadata.get(k).is_some());
            let _ = (
                v.as_u32(),
                v.as_u64(),
                v.as_str(),
                v.as_array().map(Array::len),
                v.value_type(),
            );
        }
        // Written again, the file reads the same, and writing that gives the same bytes.
        let w = g.to_bytes().expect("a file the reader accepted can be written");
        let h = Gguf::read(&w).expect("a file lowbit wrote");
        assert_eq!(h.tensors.len(), g.tensors.len());
        for (a, b) in g.tensors.iter().zip(&h.tensors) {
            assert_eq!(a.info, b.info);
            assert_eq!(a.data, b.data);
        }
        assert_eq!(
            h.metadata.keys().collect::<Vec<_>>(),
            g.metadata.keys().collect::<Vec<_>>()
        );
        assert_eq!(h.to_bytes().expect("write"), w, "write(read(write(f))) != write(f)");
        // The streaming reader, from a position inside a larger stream, agrees.
        let skip = u.int_in_range(0usize..=3)?;
        let mut buf = vec![0xa5u8; skip];
        buf.extend_from_slice(bytes);
        let mut c = Cursor::new(&buf);
        c.set_position(skip as u64);
        let mut r = GgufReader::new(c).expect("GgufReader accepts what Gguf::read accepts");
        assert_eq!(r.version(), g.version);
        assert_eq!(r.tensors().len(), g.tensors.len());
        for (i, t) in g.tensors.iter().enumerate() {
            assert_eq!(r.tensors()[i], t.info);
            assert_eq!(r.position(&t.info.name), Some(i));
            assert_eq!(r.read_tensor(i).expect("read_tensor"), t.data.as_ref());
            let _ = r.tensor_offset(i);
        }
        assert!(r.read_tensor(g.tensors.len()).is_err());
        let _ = r.data_offset();
        let owned = r.into_gguf().expect("into_gguf");
        assert_eq!(owned.to_bytes().expect("write"), w);
        // Re-quantization, in memory and streaming: the same outcome and bytes.
        let target = *u.choose(&Target::ALL)?;
        let mut opts = options(u)?;
        if u.ratio(1u8, 3)? {
            // An importance matrix for some of the file's tensors: of their size (row length ×
            // experts), of another, or empty.
            let mut m = Imatrix::new();
            for t in &g.tensors {
                if u.ratio(1u8, 2)? {
                    let d = |i: usize| t.info.dims.get(i).copied().unwrap_or(1) as usize;
                    let n = if u.ratio(1u8, 8)? {
                        u.int_in_range(1..=300)?
                    } else {
                        d(0).saturating_mul(d(2))
                    };
                    if (1..=1 << 16).contains(&n) {
                        let w = vec_of(u, n, |u| Ok(f32::from(u.int_in_range(0u16..=900)?) / 9.0))?;
                        let mut w = w;
                        w.resize(n, 1.0);
                        m.insert(t.info.name.clone(), w).expect("finite");
                    }
                }
            }
            opts = opts.with_imatrix("fuzz.imatrix", m);
        }
        let mem = g.requantize(target, &opts);
        let mut out = Vec::new();
        let mut r = GgufReader::new(Cursor::new(bytes)).expect("reader");
        let streamed = requantize(&mut r, &mut out, target, &opts);
        let infos: Vec<TensorInfo> = g.tensors.iter().map(|t| t.info.clone()).collect();
        let plan = requantize_plan(&g.metadata, &infos, target, &opts);
        match (mem, streamed) {
            (Ok((q, rep)), Ok(rep2)) => {
                assert_eq!(rep, rep2);
                assert_eq!(
                    plan.expect("planned what was written"),
                    rep,
                    "requantize_plan != requantize"
                );
                assert_eq!(q.to_bytes().expect("write"), out, "requantize: in memory != streamed");
                let back = Gguf::read(&out).expect("a re-quantized file reads");
                assert_eq!(back.tensors.len(), rep.tensors.len());
                for (t, tr) in back.tensors.iter().zip(&rep.tensors) {
                    assert_eq!((&t.info.name, t.info.ty), (&tr.name, tr.type_out));
                    assert_eq!(t.data.len() as u64, tr.bytes_out);
                    dequantize(t);
                }
                // Allocation: at most 13 bytes out per byte in (Q2_K, the densest type lowbit
                // reads, to F32 is 1024 for 84).
                assert!(rep.bytes_out() <= 13 * rep.bytes_in() + 64);
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!(
                "requantize in memory and streamed disagree: {:?} vs {:?}",
                a.map(|x| x.1),
                b
            ),
        }
        Ok(())
    }

    /// An importance matrix lowbit writes, in either format.
    fn imatrix_file(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let mut m = Imatrix::new();
        for i in 0..u.int_in_range(0..=4)? {
            let n_mat = u.int_in_range(1..=3)?;
            let width = u.int_in_range(1..=40)?;
            let values = vec_of(u, width * n_mat, |u| Ok(f32::from(u.int_in_range(0u16..=1000)?) / 7.0))?;
            if values.is_empty() || values.len() % n_mat != 0 {
                continue;
            }
            let names = [
                "blk.0.ffn_up.weight",
                "token_embd.weight",
                "output.weight",
                "blk.1.attn_v.weight",
                "a",
            ];
            m.insert_experts(format!("{}{i}", names[u.choose_index(names.len())?]), values, n_mat)
                .expect("finite importances");
        }
        if m.is_empty() {
            m.insert("blk.0.attn_q.weight", vec![1.0; 32]).expect("finite");
        }
        let chunks: u32 = u.arbitrary()?;
        m.set_provenance(vec!["data.txt".into()], chunks, u.arbitrary()?);
        Ok(if u.arbitrary()? {
            m.to_bytes().expect("write")
        } else {
            match m.to_legacy_bytes() {
                Ok(b) => b,
                // The legacy format counts chunks in an i32.
                Err(_) => {
                    assert!(chunks > i32::MAX as u32);
                    m.to_bytes().expect("write")
                }
            }
        })
    }

    /// `Imatrix::read` of any bytes: a typed error, or finite importances that write and read
    /// back to the same values, and per-tensor lookups that never panic.
    fn use_imatrix(bytes: &[u8], u: &mut Unstructured<'_>) -> Result<()> {
        let Ok(m) = Imatrix::read(bytes) else {
            return Ok(());
        };
        let mut total = 0usize;
        for name in m.names() {
            let v = m.get(name).expect("listed");
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{name}: non-finite importance accepted"
            );
            total += v.len();
        }
        assert!(total * 4 <= bytes.len(), "importances larger than the file");
        if m.is_empty() {
            assert!(m.to_bytes().is_err() && m.to_legacy_bytes().is_err());
            return Ok(());
        }
        let again = Imatrix::read(&m.to_bytes().expect("write")).expect("read what lowbit wrote");
        for name in m.names() {
            assert_eq!(
                again
                    .get(name)
                    .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                m.get(name).map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                "{name}"
            );
        }
        if let Some(name) = m.names().next() {
            let dims = vec_of(u, 4, |u| Ok(u64::from(u.int_in_range(0u16..=300)?)))?;
            if let Ok(info) = TensorInfo::new(name, dims, GgmlType::F32) {
                if let Ok(Some(v)) = m.for_tensor(&info) {
                    assert_eq!(
                        v.len() as u64,
                        info.dims.first().copied().unwrap_or(1) * info.dims.get(2).copied().unwrap_or(1)
                    );
                }
            }
        }
        Ok(())
    }

    /// `Gguf::read`, `GgufReader` and the re-quantizer on random bytes, crafted headers and
    /// damaged valid files.
    pub fn gguf_file(data: &[u8]) {
        run(data, |u| {
            let bytes = match u.int_in_range(0u8..=11)? {
                0 => {
                    let mut b = b"GGUF".to_vec();
                    b.extend(vec_of(u, 300, |u| u.arbitrary::<u8>())?);
                    b
                }
                10 | 11 => {
                    let b = imatrix_file(u)?;
                    damage(u, b)?
                }
                1..=4 => crafted_file(u)?,
                5 => {
                    let f = FIXTURES[u.choose_index(FIXTURES.len())?];
                    damage(u, f.to_vec())?
                }
                _ => {
                    let b = valid_file(u)?;
                    let g = Gguf::read(&b).expect("a file lowbit wrote");
                    assert_eq!(g.to_bytes().expect("write"), b, "write(read(b)) != b");
                    damage(u, b)?
                }
            };
            use_imatrix(&bytes, u)?;
            match Gguf::read(&bytes) {
                Ok(g) => use_file(&g, &bytes, u)?,
                Err(_) => {
                    assert!(GgufReader::new(Cursor::new(&bytes)).is_err());
                    assert!(Gguf::read_from(Cursor::new(&bytes)).is_err());
                }
            }
            Ok(())
        });
    }
}
