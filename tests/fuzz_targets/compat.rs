//! The compatibility layers: ggml blocks, bitsandbytes states, and the modelopt and ONNX
//! Runtime histogram calibrators.

use super::{f32_any, f32_finite, f32s, f32s_mostly_finite, run, same_f32s, size, vec_of};
use arbitrary::{Result, Unstructured};
use lowbit::{FloatFormat, Fp16};

/// The bits of an f16 scale: any pattern, or an encoded value.
fn f16_bits(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(if u.arbitrary()? {
        u.arbitrary()?
    } else {
        Fp16::encode_f32(f32_any(u)?)
    })
}

/// One `GgmlBlock` type: quantize (allocating and into, finite values back), with an
/// importance matrix of any weights, dequantize any bytes as blocks.
fn ggml_block<B: lowbit::compat::ggml::GgmlBlock>(u: &mut Unstructured<'_>) -> Result<()> {
    let mut x = Vec::new();
    for _ in 0..u.int_in_range(0usize..=2)? * B::BLOCK {
        x.push(if u.ratio(1u8, 64)? {
            f32_any(u)?
        } else if u.ratio(1u8, 8)? {
            f32_finite(u)?
        } else {
            u.int_in_range(-4000i16..=4000)? as f32 / 1000.0
        });
    }
    if u.ratio(1u8, 8)? {
        x.extend(f32s(u, 40)?);
    }
    let r = B::quantize(&x);
    let mut into = vec![
        B::zeroed();
        if u.ratio(7u8, 8)? {
            x.len() / B::BLOCK
        } else {
            u.int_in_range(0usize..=3)?
        }
    ];
    let r2 = B::quantize_into(&x, &mut into);
    if let (Ok(a), Ok(())) = (&r, &r2) {
        assert_eq!(
            bytemuck::cast_slice::<B, u8>(a),
            bytemuck::cast_slice::<B, u8>(&into),
            "{:?} allocating vs into",
            B::TYPE
        );
        assert!(
            B::dequantize(a).iter().all(|v| v.is_finite()),
            "{:?} dequantizes to non-finite values",
            B::TYPE
        );
    }
    if !x.is_empty() {
        let w = if u.arbitrary()? {
            f32s_mostly_finite(u, x.len())?
        } else {
            x.iter().map(|v| v * v).collect()
        };
        if let Ok(b) = lowbit::compat::ggml::quantize_with_imatrix::<B>(&x, x.len(), &w) {
            assert_eq!(b.len(), x.len() / B::BLOCK);
        }
    }
    let mut bytes = vec![0u8; core::mem::size_of::<B>() * u.int_in_range(0usize..=2)?];
    u.fill_buffer(&mut bytes)?;
    let mut blocks = vec![B::zeroed(); bytes.len() / core::mem::size_of::<B>()];
    bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(&bytes);
    let mut out = vec![0f32; if u.ratio(7u8, 8)? { blocks.len() * B::BLOCK } else { 7 }];
    let _ = B::dequantize_into(&blocks, &mut out);
    Ok(())
}

/// ggml `Q8_0`, `Q4_0`, `Q4_1`: quantize (allocating and into), dequantize any blocks; and
/// every block type through `GgmlBlock` (the K-quants, `Q5_0`, `Q5_1`, imatrix).
pub fn ggml(data: &[u8]) {
    use lowbit::compat::ggml::{self as g, BlockQ4_0, BlockQ4_1, BlockQ8_0, QK};
    run(data, |u| {
        let x = if u.arbitrary()? {
            // Whole blocks, mostly.
            let n = u.int_in_range(0usize..=4)? * QK;
            let mut v = f32s_mostly_finite(u, 0)?;
            for _ in 0..n {
                v.push(if u.ratio(1u8, 32)? { f32_any(u)? } else { f32_finite(u)? });
            }
            v
        } else {
            f32s(u, 140)?
        };
        let nb = x.len() / QK;
        let out_blocks = if u.ratio(7u8, 8)? {
            nb
        } else {
            u.int_in_range(0usize..=6)?
        };
        let mut y = vec![0f32; out_blocks * QK];
        match u.int_in_range(0u8..=3)? {
            3 => {
                use lowbit::compat::ggml::*;
                match u.int_in_range(0u8..=10)? {
                    0 => ggml_block::<BlockQ5_0>(u)?,
                    1 => ggml_block::<BlockQ5_1>(u)?,
                    2 => ggml_block::<BlockQ8_K>(u)?,
                    3 => ggml_block::<BlockQ6_K>(u)?,
                    4 => ggml_block::<BlockQ4_K>(u)?,
                    5 => ggml_block::<BlockQ5_K>(u)?,
                    6 => ggml_block::<BlockQ3_K>(u)?,
                    7 => ggml_block::<BlockQ2_K>(u)?,
                    8 => ggml_block::<BlockQ8_0>(u)?,
                    9 => ggml_block::<BlockQ4_0>(u)?,
                    _ => ggml_block::<BlockQ4_1>(u)?,
                }
            }
            0 => {
                let r = g::quantize_q8_0(&x);
                let mut into = vec![
                    BlockQ8_0 {
                        d: Fp16::to_half(f16_bits(u)?),
                        qs: [0; QK]
                    };
                    out_blocks
                ];
                let r2 = g::quantize_q8_0_into(&x, &mut into);
                if let (Ok(a), Ok(())) = (&r, &r2) {
                    assert_eq!(a, &into, "q8_0 allocating vs into");
                    g::dequantize_q8_0(a, &mut y).expect("dequantize q8_0");
                }
                let mut blocks = Vec::new();
                for _ in 0..u.int_in_range(0usize..=3)? {
                    let mut qs = [0i8; QK];
                    for q in &mut qs {
                        *q = u.arbitrary()?;
                    }
                    blocks.push(BlockQ8_0 {
                        d: Fp16::to_half(f16_bits(u)?),
                        qs,
                    });
                }
                let mut out = vec![0f32; if u.ratio(7u8, 8)? { blocks.len() * QK } else { 5 }];
                let _ = g::dequantize_q8_0(&blocks, &mut out);
            }
            1 => {
                let r = g::quantize_q4_0(&x);
                let mut into = vec![
                    BlockQ4_0 {
                        d: Fp16::to_half(f16_bits(u)?),
                        qs: [0; QK / 2]
                    };
                    out_blocks
                ];
                let r2 = g::quantize_q4_0_into(&x, &mut into);
                if let (Ok(a), Ok(())) = (&r, &r2) {
                    assert_eq!(a, &into, "q4_0 allocating vs into");
                    g::dequantize_q4_0(a, &mut y).expect("dequantize q4_0");
                }
                let mut blocks = Vec::new();
                for _ in 0..u.int_in_range(0usize..=3)? {
                    let mut qs = [0u8; QK / 2];
                    u.fill_buffer(&mut qs)?;
                    blocks.push(BlockQ4_0 {
                        d: Fp16::to_half(f16_bits(u)?),
                        qs,
                    });
                }
                let mut out = vec![0f32; if u.ratio(7u8, 8)? { blocks.len() * QK } else { 5 }];
                let _ = g::dequantize_q4_0(&blocks, &mut out);
            }
            _ => {
                let r = g::quantize_q4_1(&x);
                let z = Fp16::to_half(f16_bits(u)?);
                let mut into = vec![
                    BlockQ4_1 {
                        d: z,
                        m: z,
                        qs: [0; QK / 2]
                    };
                    out_blocks
                ];
                let r2 = g::quantize_q4_1_into(&x, &mut into);
                if let (Ok(a), Ok(())) = (&r, &r2) {
                    assert_eq!(a, &into, "q4_1 allocating vs into");
                    g::dequantize_q4_1(a, &mut y).expect("dequantize q4_1");
                }
                let mut blocks = Vec::new();
                for _ in 0..u.int_in_range(0usize..=3)? {
                    let mut qs = [0u8; QK / 2];
                    u.fill_buffer(&mut qs)?;
                    blocks.push(BlockQ4_1 {
                        d: Fp16::to_half(f16_bits(u)?),
                        m: Fp16::to_half(f16_bits(u)?),
                        qs,
                    });
                }
                let mut out = vec![0f32; if u.ratio(7u8, 8)? { blocks.len() * QK } else { 5 }];
                let _ = g::dequantize_q4_1(&blocks, &mut out);
            }
        }
        Ok(())
    });
}

/// bitsandbytes: 4-bit and 8-bit blockwise quantize/dequantize, states from parts, maps.
pub fn bnb(data: &[u8]) {
    use lowbit::compat::bnb::{self as b, Absmax, BlockwiseState, QuantState, QuantType};
    use lowbit::quant::double::DoubleQuant;
    run(data, |u| {
        let x = f32s_mostly_finite(u, 300)?;
        let qt = if u.arbitrary()? { QuantType::Nf4 } else { QuantType::Fp4 };
        let _ = (qt.codebook(), qt.code(), qt.name());
        let bs = if u.ratio(3u8, 4)? {
            *u.choose(&b::BLOCKSIZES_4BIT)?
        } else {
            size(u)?
        };
        let compress: bool = u.arbitrary()?;
        match u.int_in_range(0u8..=2)? {
            0 => {
                let r = b::quantize_4bit(&x, bs, qt, compress);
                let mut packed = vec![0u8; if u.ratio(7u8, 8)? { x.len().div_ceil(2) } else { 3 }];
                let r2 = b::quantize_4bit_into(&x, bs, qt, compress, &mut packed);
                if let (Ok((p, st)), Ok(st2)) = (&r, &r2) {
                    assert_eq!(p, &packed);
                    assert_eq!(st, st2);
                    let _ = (st.scales(), st.blocksize(), st.quant_type(), st.len(), st.is_empty());
                    let _ = (st.blocks(), st.bits_per_element());
                    let a = st.absmax().expect("absmax of a fresh state");
                    let y = b::dequantize_4bit(p, st).expect("dequantize_4bit");
                    assert_eq!(y.len(), x.len());
                    let mut y2 = vec![0f32; x.len()];
                    b::dequantize_4bit_into(p, st, &mut y2).expect("dequantize_4bit_into");
                    assert!(same_f32s(&y, &y2));
                    // Finite data (every input that quantizes is finite) gives finite scales and
                    // values, with double quantization too (F20: block maxima near f32::MAX).
                    assert!(a.iter().all(|v| v.is_finite()), "bnb4 absmax {a:?}");
                    assert!(y.iter().all(|v| v.is_finite()), "bnb4 values {y:?}");
                    // |y| never exceeds its block's absmax.
                    if !compress {
                        for (i, v) in y.iter().enumerate() {
                            let m = a[i / bs];
                            assert!(v.is_nan() || v.abs() <= m.abs(), "bnb4 y[{i}] = {v} > absmax {m}");
                        }
                    }
                    // The same parts, through the checked constructor.
                    let again = QuantState::new(st.scales().clone(), st.blocksize(), st.quant_type(), st.len())
                        .expect("QuantState::new of a fresh state's parts");
                    assert_eq!(&again, st);
                }
            }
            1 => {
                // A state from parts (a checkpoint): any scales, any length.
                let len = if u.arbitrary()? {
                    size(u)?
                } else {
                    u.int_in_range(0usize..=300)?
                };
                let absmax = if u.arbitrary()? {
                    Absmax::Plain(f32s(u, 12)?)
                } else {
                    let codes = vec_of(u, 12, |u| u.arbitrary::<u8>())?;
                    let a2 = f32s(u, 2)?;
                    match DoubleQuant::from_parts(codes, a2, f32_any(u)?, size(u)?) {
                        Ok(dq) => Absmax::Double(dq),
                        Err(_) => return Ok(()),
                    }
                };
                if let Ok(st) = QuantState::new(absmax, bs, qt, len) {
                    let _ = (st.blocks(), st.bits_per_element(), st.absmax());
                    let packed = vec_of(u, 160, |u| u.arbitrary::<u8>())?;
                    let _ = b::dequantize_4bit(&packed, &st);
                    let mut out = vec![0f32; len.min(400)];
                    let _ = b::dequantize_4bit_into(&packed, &st, &mut out);
                }
            }
            _ => {
                let bs8 = if u.ratio(3u8, 4)? {
                    *u.choose(&b::BLOCKSIZES_8BIT)?
                } else {
                    size(u)?
                };
                let code = match u.int_in_range(0u8..=3)? {
                    0 => lowbit::quant::double::dynamic_map().to_vec(),
                    1 => {
                        let t = u.int_in_range(0u32..=9)?;
                        match b::create_fp8_map(u.arbitrary()?, u.int_in_range(0u32..=9)?, u.int_in_range(0u32..=9)?, t)
                        {
                            Ok(m) => m,
                            Err(_) => return Ok(()),
                        }
                    }
                    2 => {
                        // Any widths (F18, fixed: their sum overflowed `u32`).
                        let (e, p): (u32, u32) = (u.arbitrary()?, u.arbitrary()?);
                        let _ = b::create_fp8_map(u.arbitrary()?, e, p, u.arbitrary()?);
                        vec_of(u, 257, f32_any)?
                    }
                    _ => {
                        let mut m = lowbit::quant::double::dynamic_map().to_vec();
                        let i = u.choose_index(256)?;
                        m[i] = f32_any(u)?;
                        m
                    }
                };
                let r = if code.len() == 256 && code == lowbit::quant::double::dynamic_map() {
                    b::quantize_blockwise(&x, bs8)
                } else {
                    b::quantize_blockwise_with_code(&x, &code, bs8)
                };
                if let Ok((q, st)) = r {
                    assert_eq!(q.len(), x.len());
                    let y = b::dequantize_blockwise(&q, &st).expect("dequantize_blockwise");
                    assert_eq!(y.len(), x.len());
                }
                // Any state (public fields).
                let st = BlockwiseState {
                    absmax: f32s(u, 6)?,
                    code,
                    blocksize: if u.arbitrary()? { bs8 } else { size(u)? },
                };
                let q = vec_of(u, 300, |u| u.arbitrary::<u8>())?;
                let _ = b::dequantize_blockwise(&q, &st);
            }
        }
        Ok(())
    });
}

/// Batches for the compat calibrators: any values, so later batches may widen the range far
/// past the first one's (up to the documented bin limits, else an error).
fn compat_batches(u: &mut Unstructured<'_>) -> Result<Vec<Vec<f32>>> {
    let n = u.int_in_range(1usize..=4)?;
    let mut batches = Vec::with_capacity(n);
    for _ in 0..n {
        batches.push(f32s_mostly_finite(u, 40)?);
    }
    Ok(batches)
}

/// modelopt's `HistogramCalibrator`: collect batches, compute the amax by every method.
pub fn modelopt(data: &[u8]) {
    use lowbit::compat::modelopt::{HistogramCalibrator, Method};
    run(data, |u| {
        let mut c = HistogramCalibrator::new();
        assert!(c.histogram().is_none());
        for b in compat_batches(u)? {
            let _ = c.collect(&b);
            if let Some((h, e)) = c.histogram() {
                // The histogram stays within its documented limit (else an error).
                let max = lowbit::compat::modelopt::MAX_BINS;
                assert!(
                    h.len() <= max && e.len() <= max + 2,
                    "modelopt histogram grew to {}",
                    h.len()
                );
            }
        }
        let p = if u.arbitrary()? { f64::from(f32_any(u)?) } else { 99.9 };
        let method = match u.int_in_range(0u8..=2)? {
            0 => Method::Percentile(p),
            1 => Method::Mse,
            _ => Method::Entropy,
        };
        let _ = c.compute_amax(method);
        Ok(())
    });
}

/// ONNX Runtime's `HistogramCollector`: odd constructor parameters, collect, compute.
pub fn ort(data: &[u8]) {
    use lowbit::compat::ort::{HistogramCollector, Method};
    run(data, |u| {
        let method = if u.arbitrary()? {
            Method::Entropy
        } else {
            Method::Percentile
        };
        let symmetric: bool = u.arbitrary()?;
        let bins = size(u)?;
        let qbins = size(u)?;
        let p = f64::from(f32_any(u)?);
        let Ok(mut c) = HistogramCollector::new(method, symmetric, bins, qbins, p) else {
            return Ok(());
        };
        // Speed, not a finding: a percentile histogram's bins (up to 2^24) are allocated in
        // full per batch; kept to 4096 here so that inputs stay cheap.
        if bins > 4096 && method == Method::Percentile {
            return Ok(());
        }
        assert!(c.histogram().is_none());
        for b in compat_batches(u)? {
            let _ = c.collect(&b);
            if let Some((h, _)) = c.histogram() {
                let max = lowbit::compat::ort::MAX_BINS;
                assert!(h.len() <= max, "ORT histogram grew to {}", h.len());
            }
        }
        let _ = c.compute();
        Ok(())
    });
}

/// ONNX Runtime's `compute_scale_zp` / `qparams` / `quantize_nparray`: a scale and zero point
/// within the type, codes within its full range, or a typed error.
pub fn ort_qparams(data: &[u8]) {
    run(data, |u| {
        use lowbit::compat::ort::{compute_scale_zp, qparams, quantize_nparray, QuantType};
        let qtype = QuantType::ALL[u.choose_index(QuantType::ALL.len())?];
        let (sym, reduce): (bool, bool) = (u.arbitrary()?, u.arbitrary()?);
        let r = lowbit::calib::Range {
            min: f32_any(u)?,
            max: f32_any(u)?,
        };
        let (lo, hi) = qtype.full_range();
        if let Ok(q) = qparams(r, qtype, sym, reduce) {
            assert!(q.scale.is_finite() && q.scale > 0.0, "{r:?} {qtype:?}: {q:?}");
            let (qmin, qmax) = qtype.qmin_qmax(reduce, sym);
            assert!((qmin..=qmax).contains(&q.zero_point), "{r:?} {qtype:?}: {q:?}");
            let x = f32s(u, 16)?;
            if let Ok(codes) = q.quantize(&x) {
                assert_eq!(codes.len(), x.len());
                assert!(codes.iter().all(|c| (lo..=hi).contains(c)), "{codes:?}");
            }
        }
        let (qmin, qmax): (i32, i32) = (u.arbitrary()?, u.arbitrary()?);
        let mrr = if u.arbitrary()? { Some(f32_any(u)?) } else { None };
        if let Ok((zp, scale)) = compute_scale_zp(r.min, r.max, qmin, qmax, sym, mrr) {
            assert!(scale.is_finite() && scale > 0.0 && (qmin..=qmax).contains(&zp));
        }
        let _ = quantize_nparray(qtype, &f32s(u, 8)?, f32_any(u)?, u.arbitrary()?);
        Ok(())
    });
}
