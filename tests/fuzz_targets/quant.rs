//! Quantizers: constructors with odd parameters, quantize / dequantize and their `_into`
//! forms, the stored bytes of every result, and the pack, MX and double-quant helpers.

use super::{
    bits, f32_any, f32_finite, f32s, f32s_finite, f32s_mostly_finite, granularity, non_finite, rounding, run,
    same_f32s, size, size_upto, vec_of,
};
use arbitrary::{Result, Unstructured};
use lowbit::format::FloatFormat;
use lowbit::quant::codebook::{
    normal_float_levels, normal_float_levels_with_offset, normal_float_offset, normal_quantile,
};
use lowbit::quant::{
    AbsmaxQuantizer, AffineQuantizer, Codebook, CodebookQuantizer, Granularity, QParams, QRange, Quantized, Quantizer,
    Rounding, ZeroBlock,
};
use lowbit::{Bf16, E4M3Fnuz, Fp16, Fp32, Fp64, Tf32, E2M1, E4M3, E5M2, E8M0};

/// The length of a contiguous group (for messages; 1 for per-column).
fn g_len(g: Granularity, _i: usize) -> usize {
    match g {
        Granularity::PerBlock(b) => b,
        Granularity::PerRow { cols } => cols,
        _ => 1,
    }
}

/// Group index of element `i` under `g` (for the error bound).
fn group_of(g: Granularity, i: usize) -> usize {
    match g {
        Granularity::PerTensor => 0,
        Granularity::PerBlock(b) => i / b,
        Granularity::PerRow { cols } => i / cols,
        Granularity::PerColumn { cols } => i % cols,
    }
}

/// Everything a quantizer offers, on `x`; returns the quantized value and its dequantization.
/// Asserts: `_into` equals the allocating form whatever the buffer held, the stored bytes
/// round-trip, the shapes agree, lengths are checked.
pub(crate) fn exercise<Q: Quantizer + ?Sized>(
    q: &Q,
    x: &[f32],
    reuse: &mut Quantized,
) -> Option<(Quantized, Vec<f32>)> {
    let r = q.quantize(x);
    let r2 = q.quantize_into(x, reuse);
    assert_eq!(r.is_ok(), r2.is_ok(), "quantize vs quantize_into: {r:?} / {r2:?}");
    let z = r.ok()?;
    assert!(*reuse == z, "quantize_into into a used buffer differs from quantize");
    assert_eq!(z.len(), x.len());
    assert_eq!(z.is_empty(), x.is_empty());
    assert_eq!(z.bits(), q.bits());
    assert_eq!(z.granularity(), q.granularity());
    let groups = z.granularity().groups(x.len()).expect("groups of a quantized value");
    assert_eq!(z.groups(), groups);
    assert_eq!(z.scales().len(), groups);
    assert_eq!(z.scale_codes().len(), groups);
    assert_eq!(z.codes().len(), lowbit::quant::pack::packed_len(z.bits(), z.len()));
    let codes = z.unpacked_codes();
    assert_eq!(codes.len(), x.len());
    assert!(z.bits() >= 8 || codes.iter().all(|&c| c >> z.bits() == 0));
    let _ = (
        z.bits_per_element(),
        z.scheme(),
        z.bit_order(),
        z.tensor_scale(),
        z.zero_points(),
        z.scale_layout(),
    );
    // Stored bytes round-trip exactly.
    let bytes = z.to_bytes();
    assert_eq!(bytes.len(), z.byte_len());
    let back = Quantized::from_bytes(&bytes).expect("from_bytes(to_bytes(q))");
    assert!(back == z, "from_bytes(to_bytes(q)) != q");
    // Dequantize, allocating and into a buffer; wrong lengths are errors.
    let y = q.dequantize(&z).expect("dequantize what quantize made");
    assert_eq!(y.len(), x.len());
    let mut y2 = vec![f32::NAN; x.len()];
    q.dequantize_into(&z, &mut y2).expect("dequantize_into");
    assert!(same_f32s(&y, &y2), "dequantize vs dequantize_into");
    let mut wrong = vec![0f32; x.len() + 1];
    assert!(q.dequantize_into(&z, &mut wrong).is_err());
    let y3 = q.dequantize(&back).expect("dequantize the decoded bytes");
    assert!(same_f32s(&y, &y3), "dequantize after the byte round trip differs");
    // Another scheme's value: an error, or (same scheme and width) values.
    let _ = q.dequantize(reuse);
    let (c, s, zp) = z.clone().into_parts();
    assert_eq!(
        (c.len(), s.len(), zp.len()),
        (z.codes().len(), z.scales().len(), z.zero_points().len())
    );
    Some((z, y))
}

macro_rules! with_scale_format {
    ($i:expr, $S:ident => $body:expr) => {
        match $i {
            0 => {
                type $S = Fp32;
                $body
            }
            1 => {
                type $S = Bf16;
                $body
            }
            2 => {
                type $S = Fp16;
                $body
            }
            3 => {
                type $S = E4M3;
                $body
            }
            4 => {
                type $S = E5M2;
                $body
            }
            5 => {
                type $S = E8M0;
                $body
            }
            6 => {
                type $S = E4M3Fnuz;
                $body
            }
            7 => {
                type $S = E2M1;
                $body
            }
            8 => {
                type $S = Tf32;
                $body
            }
            9 => {
                type $S = Fp64;
                $body
            }
            10 => {
                type $S = super::formats::W8M23Bias1000;
                $body
            }
            11 => {
                type $S = super::formats::W1M0Pow2;
                $body
            }
            _ => {
                type $S = super::formats::W8M23BiasNeg1000;
                $body
            }
        }
    };
}

fn absmax_with<S: FloatFormat>(u: &mut Unstructured<'_>) -> Result<()> {
    let b = bits(u)?;
    let g = granularity(u)?;
    let Ok(q) = AbsmaxQuantizer::<S>::with_scale_format(b, g) else {
        return Ok(());
    };
    let r = rounding(u)?;
    let q = q.with_rounding(r).unwrap_or(q);
    let q = q.with_non_finite(non_finite(u)?);
    assert_eq!(q.qmax(), (1 << (b - 1)) - 1);
    let x = f32s_mostly_finite(u, 200)?;
    let mut reuse = Quantized::empty();
    let Some((z, y)) = exercise(&q, &x, &mut reuse) else {
        return Ok(());
    };
    // The error bound, for f32 scales and finite data: within half a step of the stored scale
    // (a step with truncation), the absmax element within an ulp of itself.
    if S::NAME == Fp32::NAME && x.iter().all(|v| v.is_finite()) {
        let step = if r == Rounding::TowardZero { 1.0 } else { 0.5 };
        let mut amax = vec![0f32; z.groups()];
        for (i, v) in x.iter().enumerate() {
            let a = &mut amax[group_of(g, i)];
            *a = a.max(v.abs());
        }
        for (i, (&v, &w)) in x.iter().zip(&y).enumerate() {
            let gi = group_of(g, i);
            let s = z.scales()[gi];
            let bound = f64::from(s) * step * (1.0 + 1e-6) + f64::from(amax[gi]) * 2f64.powi(-23);
            assert!(
                (f64::from(v) - f64::from(w)).abs() <= bound,
                "absmax {b}-bit {g:?} {r:?}: x[{i}] = {v:e} came back {w:e}, scale {s:e}, bound {bound:e}"
            );
        }
    }
    Ok(())
}

/// `AbsmaxQuantizer` with every scale format, bit width, granularity, rounding and policy.
pub fn absmax(data: &[u8]) {
    run(data, |u| {
        let s = u.int_in_range(0u8..=12)?;
        with_scale_format!(s, S => absmax_with::<S>(u))
    });
}

fn affine_with<S: FloatFormat>(u: &mut Unstructured<'_>) -> Result<()> {
    let b = bits(u)?;
    let g = granularity(u)?;
    let Ok(q) = AffineQuantizer::<S>::with_scale_format(b, g) else {
        return Ok(());
    };
    let q = q.with_rounding(rounding(u)?).unwrap_or(q);
    let q = q.with_non_finite(non_finite(u)?);
    let eps = f32_any(u)?;
    let q = q.with_eps(eps).unwrap_or(q);
    assert_eq!(q.qmax(), (1 << b) - 1);
    let x = f32s_mostly_finite(u, 200)?;
    let mut reuse = Quantized::empty();
    if let Some((_, y)) = exercise(&q, &x, &mut reuse) {
        // (F19, fixed: an eps near f32::MAX let finite data dequantize to infinity; with_eps
        // now refuses an eps whose qmax steps overflow.)
        if S::NAME == Fp32::NAME && x.iter().all(|v| v.is_finite()) {
            // Finite data gives finite values.
            if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                let lo = i - i % g_len(g, i);
                panic!(
                    "{q:?}: x[{i}] = {} came back {}; group from {lo}: {:?} -> {:?}",
                    x[i],
                    y[i],
                    &x[lo..(lo + g_len(g, i)).min(x.len())],
                    &y[lo..(lo + g_len(g, i)).min(y.len())]
                );
            }
        }
    }
    Ok(())
}

/// `AffineQuantizer` with every scale format and option, and the torch qparams functions.
pub fn affine(data: &[u8]) {
    run(data, |u| {
        let s = u.int_in_range(0u8..=12)?;
        with_scale_format!(s, S => affine_with::<S>(u))?;
        // QRange and QParams.
        let (lo, hi) = (u.arbitrary::<i32>()?, u.arbitrary::<i32>()?);
        let lo = if u.arbitrary()? { lo } else { lo % 300 };
        let hi = if u.arbitrary()? { hi } else { hi % 300 };
        let mut ranges = vec![QRange::QUINT8, QRange::QINT8, QRange::QINT8_NARROW];
        if let Ok(r) = QRange::new(lo, hi) {
            assert!(r.min() <= 0 && 0 <= r.max() && r.min() < r.max());
            ranges.push(r);
        }
        if let Ok(r) = QRange::unsigned(bits(u)?) {
            ranges.push(r);
            ranges.push(r.reduce_range());
        }
        let range = ranges[u.choose_index(ranges.len())?];
        let (min, max, eps) = (f32_any(u)?, f32_any(u)?, f32_any(u)?);
        for p in [
            QParams::torch_affine(min, max, range, eps),
            QParams::torch_symmetric(min, max, range, eps),
        ] {
            for _ in 0..4 {
                let v = f32_any(u)?;
                let k = p.quantize(v, range);
                assert!(range.min() <= k && k <= range.max(), "{p:?} {range:?}: {v} -> {k}");
                let _ = p.dequantize(k);
            }
        }
        Ok(())
    });
}

/// A codebook from the bytes: a built-in one, normal-float levels, or levels of our own.
pub(crate) fn any_codebook(u: &mut Unstructured<'_>) -> Result<Option<Codebook>> {
    Ok(match u.int_in_range(0u8..=6)? {
        0 => Some(Codebook::nf4()),
        1 => Some(Codebook::bnb_fp4()),
        2 => Some(Codebook::e2m1()),
        3 => Codebook::normal_float(bits(u)?).ok(),
        4 => Some(lowbit::quant::double::dynamic_codebook()),
        _ => {
            let mut levels = vec_of(u, 20, |u| Ok(f32::from(u.arbitrary::<i16>()?) / 32767.0))?;
            if u.ratio(3u8, 4)? {
                levels.sort_by(f32::total_cmp);
                levels.dedup();
            }
            if u.ratio(1u8, 8)? && !levels.is_empty() {
                let i = u.choose_index(levels.len())?;
                levels[i] = f32_any(u)?;
            }
            let cb = if u.arbitrary()? {
                let bounds = vec_of(u, levels.len(), |u| Ok(f32::from(u.arbitrary::<i16>()?) / 32767.0))?;
                Codebook::with_bounds(&levels, &bounds).or_else(|_| Codebook::new(&levels))
            } else {
                Codebook::new(&levels)
            };
            match cb {
                Ok(cb) if u.arbitrary()? => {
                    let codes = vec_of(u, cb.levels().len(), |u| u.arbitrary::<u8>())?;
                    Some(cb.clone().with_codes(&codes).unwrap_or(cb))
                }
                other => other.ok(),
            }
        }
    })
}

/// Codebooks (construction, lookup) and `CodebookQuantizer`.
pub fn codebook(data: &[u8]) {
    run(data, |u| {
        // Normal-float helpers.
        let _ = normal_quantile(f64::from(f32_any(u)?));
        let k = bits(u)?;
        let _ = normal_float_offset(k);
        let _ = normal_float_levels(k);
        let _ = normal_float_levels_with_offset(k, f32_any(u)?);
        let Some(cb) = any_codebook(u)? else {
            return Ok(());
        };
        // Every level encodes to its own code and decodes back.
        let (levels, codes) = (cb.levels(), cb.codes());
        assert_eq!(levels.len(), codes.len());
        assert_eq!(cb.bounds().len() + 1, levels.len());
        assert!(cb.code_bits() >= 1 && cb.code_bits() <= 8);
        for (i, (&l, &c)) in levels.iter().zip(codes).enumerate() {
            assert_eq!(
                cb.decode(c).to_bits(),
                l.to_bits(),
                "code {c} decodes to {}",
                cb.decode(c)
            );
            // A level encodes to itself (numerically: -0.0 and 0.0 levels are one value).
            assert_eq!(levels[cb.index(l)], l, "level {l} indexes elsewhere");
            assert_eq!(cb.decode(cb.encode(l)), l);
            let _ = i;
        }
        for _ in 0..4 {
            let y = f32_any(u)?;
            let i = cb.index(y);
            assert!(i < levels.len());
            let _ = cb.decode(cb.encode(y));
            let _ = cb.decode(u.arbitrary()?);
        }
        let _ = cb.values();
        let g = granularity(u)?;
        let Ok(q) = CodebookQuantizer::new(cb, g) else {
            return Ok(());
        };
        let q = q.with_zero_block(if u.arbitrary()? {
            ZeroBlock::Nearest
        } else {
            ZeroBlock::Bitsandbytes
        });
        let _ = q.codebook();
        // Double quantization of the scales, stored in the value (nested block sizes from 1).
        let q = if u.arbitrary()? {
            match q.clone().with_double_quant(Some(size(u)?)) {
                Ok(d) => d,
                Err(_) => q,
            }
        } else {
            q
        };
        let x = f32s_mostly_finite(u, 200)?;
        let mut reuse = Quantized::empty();
        exercise(&q, &x, &mut reuse);
        // Binary and ternary quantization on the walker, through the same checks.
        let g = granularity(u)?;
        if let Ok(b) = lowbit::scheme::binary::BinaryQuantizer::new(g) {
            exercise(&b, &x, &mut reuse);
        }
        if let Ok(t) = lowbit::scheme::ternary::TernaryQuantizer::new(g) {
            let t = t.with_factor(f32_any(u)?).unwrap_or(t);
            exercise(&t, &x, &mut reuse);
        }
        Ok(())
    });
}

/// `MxQuantizer` (every element, rule, block size, rounding, policy), `Nvfp4Quantizer`,
/// `mx::dequantize_into`, the scale swizzle, and the per-block arithmetic.
pub fn mx(data: &[u8]) {
    use lowbit::quant::mx::{self, MxElement, MxQuantizer, Nvfp4Quantizer, ScaleRule, TensorScale};
    use lowbit::quant::mx_math::{self as mm, Elem, MsxElem, MsxRound};
    run(data, |u| {
        let x = f32s_mostly_finite(u, 200)?;
        let mut reuse = Quantized::empty();
        let made = match u.int_in_range(0u8..=2)? {
            0 => {
                let el = *u.choose(&[
                    MxElement::E4M3,
                    MxElement::E5M2,
                    MxElement::E2M3,
                    MxElement::E3M2,
                    MxElement::E2M1,
                    MxElement::Int8,
                ])?;
                let rule = *u.choose(&ScaleRule::ALL)?;
                let _ = (el.bits(), el.scheme());
                let Ok(q) = MxQuantizer::new(el, rule) else {
                    return Ok(());
                };
                let q = q.with_block_size(size(u)?).unwrap_or(q);
                let q = q.with_rounding(rounding(u)?).unwrap_or(q);
                let q = q.with_non_finite(non_finite(u)?).unwrap_or(q);
                let _ = (q.element(), q.rule(), q.block_size());
                exercise(&q, &x, &mut reuse)
            }
            1 => {
                let ts = match u.int_in_range(0u8..=2)? {
                    0 => TensorScale::None,
                    1 => TensorScale::FromAmax,
                    _ => TensorScale::Fixed(f32_any(u)?),
                };
                let Ok(q) = Nvfp4Quantizer::new(ts) else {
                    return Ok(());
                };
                let q = q.with_non_finite(non_finite(u)?).unwrap_or(q);
                let _ = q.tensor_scale();
                exercise(&q, &x, &mut reuse)
            }
            _ => {
                // Swizzled scales round-trip.
                let scales = vec_of(u, 64, |u| u.arbitrary::<u8>())?;
                let rows = if u.arbitrary()? {
                    size(u)?
                } else {
                    u.int_in_range(0..=scales.len())?
                };
                let cols = if rows == 0 {
                    size(u)?
                } else {
                    scales.len() / rows.max(1)
                };
                if let Ok(t) = mx::swizzle_scales(&scales, rows, cols) {
                    assert_eq!(mx::unswizzle_scales(&t, rows, cols).expect("unswizzle"), scales);
                }
                let tiled = vec_of(u, 1100, |u| u.arbitrary::<u8>())?;
                let _ = mx::unswizzle_scales(&tiled, size(u)?, size(u)?);
                None
            }
        };
        if let Some((z, y)) = made {
            let mut out = vec![0f32; z.len()];
            mx::dequantize_into(&z, &mut out).expect("mx::dequantize_into of an MX value");
            assert!(same_f32s(&out, &y), "mx::dequantize_into differs from the quantizer's");
        }
        // The per-block arithmetic (public, hidden from the docs).
        let (a, v, t) = (f32_any(u)?, f32_any(u)?, f32_any(u)?);
        let _ = (
            mm::tmul(a, v),
            mm::tdiv(a, v),
            mm::clamp_keep_nan(a, v, t),
            mm::log2_f32(a),
        );
        let _ = mm::pow2f(u.arbitrary()?);
        let _ = mm::block_amax(&x);
        let el = *u.choose(&Elem::ALL)?;
        let rule = *u.choose(&ScaleRule::ALL)?;
        let sc: u8 = u.arbitrary()?;
        let _ = (
            el.name(),
            el.max(),
            el.max_pow2(),
            el.exp_bits(),
            el.man_bits(),
            el.bits(),
            rule.name(),
        );
        let _ = (
            el.encode(a),
            el.decode(u.arbitrary()?),
            mm::floatx_nan_code(a, el.exp_bits(), el.man_bits()),
        );
        let _ = mm::mx_scale_code(a, el, rule);
        let blk = mm::MxBlock::new(a, el, rule);
        let _ = (blk.scaled(v), blk.multiplier(), blk.elem_code(v));
        let blk = mm::MxBlock::from_code(sc, el, rule);
        let _ = (blk.scaled(v), blk.multiplier(), blk.elem_code(v));
        let _ = (
            mm::mx_elem_code(v, sc, el, rule),
            mm::mx_scale_value(sc),
            mm::mx_dequant(u.arbitrary()?, sc, el),
        );
        let ts = if u.arbitrary()? { Some(t) } else { None };
        let _ = mm::nvfp4_tensor_scale(a);
        let nb = mm::Nvfp4Block::new(a, ts);
        let _ = (nb.scaled(v), nb.elem_code(v), nb.dequant(u.arbitrary()?));
        let nb = mm::Nvfp4Block::from_code(sc, ts);
        let _ = (nb.scaled(v), nb.elem_code(v), nb.dequant(u.arbitrary()?));
        let _ = (
            mm::nvfp4_block_scale_code(a, ts),
            mm::nvfp4_elem_code(v, sc, ts),
            mm::nvfp4_dequant(u.arbitrary()?, sc, ts),
        );
        let me = *u.choose(&MsxElem::ALL)?;
        let mr = *u.choose(&[MsxRound::Nearest, MsxRound::Even])?;
        let _ = (me.name(), mr.name());
        let e = mm::msx_shared_exp(a, me);
        let _ = (
            mm::msx_quantize(v, e, me, mr),
            mm::msx_scale_code(e),
            mm::mxint8_code(v, e, mr),
        );
        let _ = (mm::mxint8_dequant(u.arbitrary()?, e), mm::mxint8_code(v, t, mr));
        let _ = mm::msx_scale_code(t);
        Ok(())
    });
}

/// `pack`, `unpack`, `pack_in`, `unpack_in`, `packed_len`: codes round-trip in both orders.
pub fn pack(data: &[u8]) {
    use lowbit::quant::pack::{self as p, BitOrder};
    run(data, |u| {
        let b = bits(u)?;
        let n = size(u)?;
        let _ = p::packed_len(b, n);
        let codes = vec_of(u, 100, |u| u.arbitrary::<u8>())?;
        let order = if u.arbitrary()? {
            BitOrder::MsbFirst
        } else {
            BitOrder::LsbFirst
        };
        let out_len = if u.ratio(7u8, 8)? && (1..=8).contains(&b) {
            p::packed_len(b, codes.len())
        } else {
            u.int_in_range(0usize..=110)?
        };
        let mut packed = vec![0u8; out_len];
        let r = p::pack_in(order, b, &codes, &mut packed);
        let mut packed2 = vec![0u8; out_len];
        let r2 = if order == BitOrder::MsbFirst {
            p::pack(b, &codes, &mut packed2)
        } else {
            p::pack_in(order, b, &codes, &mut packed2)
        };
        assert_eq!(r, r2);
        if r.is_ok() {
            assert_eq!(packed, packed2);
            let mut back = vec![0u8; codes.len()];
            p::unpack_in(order, b, &packed, &mut back).expect("unpack what pack made");
            assert_eq!(back, codes, "{b}-bit {order:?}");
            if order == BitOrder::MsbFirst {
                let mut back2 = vec![0u8; codes.len()];
                p::unpack(b, &packed, &mut back2).expect("unpack");
                assert_eq!(back2, codes);
            }
        }
        // Unpack of any bytes into any length.
        let bytes = vec_of(u, 100, |u| u.arbitrary::<u8>())?;
        let mut out = vec![0u8; u.int_in_range(0usize..=200)?];
        if p::unpack_in(order, b, &bytes, &mut out).is_ok() && b < 8 {
            assert!(out.iter().all(|&c| c >> b == 0));
        }
        Ok(())
    });
}

/// `DoubleQuant` (quantize, from_parts, restore), the dynamic map and its codebook, the
/// bits-per-element formula and torch's CUDA mean.
pub fn double_quant(data: &[u8]) {
    use lowbit::quant::double::{self as d, DoubleQuant};
    run(data, |u| {
        let absmax = if u.arbitrary()? {
            f32s(u, 600)?
        } else {
            vec_of(u, 600, |u| Ok(f32_finite(u)?.abs()))?
        };
        let _ = d::torch_cuda_mean(&absmax);
        let b2 = size_upto(u, 1 << 12)?;
        let b2 = if u.ratio(1u8, 8)? { size(u)? } else { b2 };
        if let Ok(dq) = DoubleQuant::quantize(&absmax, b2) {
            assert_eq!(dq.codes().len(), absmax.len());
            let back = dq.restore().expect("restore");
            assert_eq!(back.len(), absmax.len());
            let mut out = vec![0f32; absmax.len()];
            dq.restore_into(&mut out).expect("restore_into");
            assert!(same_f32s(&out, &back));
            let mut wrong = vec![0f32; absmax.len() + 1];
            assert!(dq.restore_into(&mut wrong).is_err());
            let again =
                DoubleQuant::from_parts(dq.codes().to_vec(), dq.absmax2().to_vec(), dq.offset(), dq.blocksize2())
                    .expect("from_parts of quantize's parts");
            assert_eq!(again, dq);
            let _ = dq.bytes();
        }
        // Parts from a checkpoint: anything.
        let codes = vec_of(u, 300, |u| u.arbitrary::<u8>())?;
        let a2 = f32s(u, 8)?;
        if let Ok(dq) = DoubleQuant::from_parts(codes, a2, f32_any(u)?, size(u)?) {
            let _ = dq.restore();
            let _ = dq.bytes();
        }
        // Maps.
        let map = d::dynamic_map();
        let mut m = map;
        if u.arbitrary()? {
            for _ in 0..u.int_in_range(1u8..=4)? {
                m[u.choose_index(256)?] = f32_any(u)?;
            }
        }
        let _ = d::bnb_map_codebook(&m);
        let _ = d::bits_per_element(bits(u)?, size(u)?, if u.arbitrary()? { Some(size(u)?) } else { None });
        let _ = f32s_finite(u, 0)?;
        Ok(())
    });
}
