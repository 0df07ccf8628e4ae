//! Writing the compressed-tensors layouts.

use super::{le_f32, le_i32, pack_row, rint, rows_cols, scale_shape, Scheme, Strategy};
use crate::format::FloatFormat;
use crate::io::safetensors::{Dtype, Error, Tensor};
use crate::quant::mx::MxElement;
use crate::quant::{Granularity, Quantized};
use crate::{E2M1, E4M3};

/// The tensors of module `prefix` with weight `w` (`[out, in]`, row-major) quantized with
/// `scheme` by compressed-tensors' arithmetic, MX included (see the [module docs](super));
/// [`quantize_mx`] lays out an MX value of lowbit's own instead.
///
/// # Errors
/// [`Error::Tensor`] for a shape that is not 2-D or does not match `w`, a group size that does
/// not divide the rows, NVFP4 / MX rows that are not whole blocks, or a scheme outside the
/// ranges above; [`Error::Quant`] for a non-finite value.
pub fn quantize(prefix: &str, shape: &[usize], w: &[f32], scheme: &Scheme) -> Result<Vec<Tensor>, Error> {
    let name = format!("{prefix}.weight");
    scheme.check(&name)?;
    let (rows, cols) = rows_cols(&name, shape, w.len())?;
    if let Some(index) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::quant(&name)(crate::QuantError::NonFinite { group: 0, index }));
    }
    match *scheme {
        Scheme::Fp8 { strategy, .. } => {
            let (codes, scales, _) = int_or_fp8(w, rows, cols, strategy, 8, true, true, &name)?;
            let gpr = strategy.per_row(&name, cols)?;
            Ok(vec![
                Tensor::raw(
                    name.clone(),
                    vec![rows, cols],
                    Dtype::F8_E4M3,
                    codes.iter().map(|&c| c as u8).collect(),
                )?,
                Tensor::raw(
                    format!("{name}_scale"),
                    scale_shape(strategy, rows, gpr),
                    Dtype::F32,
                    le_f32(&scales),
                )?,
            ])
        }
        Scheme::Int {
            bits,
            symmetric,
            strategy,
            packed,
        } => {
            let (codes, scales, zps) = int_or_fp8(w, rows, cols, strategy, bits, symmetric, false, &name)?;
            let gpr = strategy.per_row(&name, cols)?;
            let sshape = scale_shape(strategy, rows, gpr);
            let mut out = Vec::new();
            if packed {
                let mut words = Vec::new();
                for r in 0..rows {
                    pack_row(&codes[r * cols..(r + 1) * cols], bits, &mut words);
                }
                let wcols = (cols * bits as usize).div_ceil(32);
                out.push(Tensor::raw(
                    format!("{prefix}.weight_packed"),
                    vec![rows, wcols],
                    Dtype::I32,
                    le_i32(&words),
                )?);
                out.push(Tensor::raw(
                    format!("{prefix}.weight_shape"),
                    vec![2],
                    Dtype::I64,
                    [rows as i64, cols as i64]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                )?);
            } else {
                out.push(Tensor::raw(
                    name.clone(),
                    vec![rows, cols],
                    Dtype::I8,
                    codes.iter().map(|&c| c as u8).collect(),
                )?);
            }
            out.push(Tensor::raw(
                format!("{name}_scale"),
                sshape.clone(),
                Dtype::F32,
                le_f32(&scales),
            )?);
            if !symmetric {
                let zname = format!("{name}_zero_point");
                if packed && strategy != Strategy::Tensor {
                    // pack_to_int32(zp, bits, packed_dim=0): each column of [rows, g] packed.
                    let mut cols_words = Vec::new();
                    for j in 0..gpr {
                        let col: Vec<i8> = (0..rows).map(|r| zps[r * gpr + j]).collect();
                        pack_row(&col, bits, &mut cols_words);
                    }
                    let prow = (rows * bits as usize).div_ceil(32);
                    let mut t = vec![0u32; prow * gpr];
                    for j in 0..gpr {
                        for p in 0..prow {
                            t[p * gpr + j] = cols_words[j * prow + p];
                        }
                    }
                    out.push(Tensor::raw(zname, vec![prow, gpr], Dtype::I32, le_i32(&t))?);
                } else {
                    out.push(Tensor::raw(
                        zname,
                        sshape,
                        Dtype::I8,
                        zps.iter().map(|&z| z as u8).collect(),
                    )?);
                }
            }
            Ok(out)
        }
        Scheme::Nvfp4 => nvfp4(prefix, rows, cols, w),
        Scheme::Mxfp4 | Scheme::Mxfp8 => mx(prefix, rows, cols, w, *scheme == Scheme::Mxfp4),
    }
}

/// Codes (one per element), scales and zero points (one per group).
type Coded = (Vec<i8>, Vec<f32>, Vec<i8>);

/// Codes, scales and zero points of an INT or FP8 weight, by compressed-tensors' arithmetic.
#[allow(clippy::too_many_arguments)]
pub(super) fn int_or_fp8(
    w: &[f32],
    rows: usize,
    cols: usize,
    strategy: Strategy,
    bits: u32,
    symmetric: bool,
    fp8: bool,
    name: &str,
) -> Result<Coded, Error> {
    let n = rows * cols;
    let ranges: Vec<std::ops::Range<usize>> = match strategy {
        Strategy::Tensor => std::iter::once(0..n).collect(),
        Strategy::Channel => (0..rows).map(|r| r * cols..(r + 1) * cols).collect(),
        Strategy::Group(g) => {
            strategy.per_row(name, cols)?;
            // g divides the rows, so runs of g in row-major order are the (row, group) order.
            (0..n / g).map(|k| k * g..(k + 1) * g).collect()
        }
    };
    let (qmin, qmax) = if fp8 {
        (-448f32, 448f32)
    } else {
        (-((1i32 << (bits - 1)) as f32), ((1i32 << (bits - 1)) - 1) as f32)
    };
    let range = qmax - qmin;
    let mut codes = vec![0i8; n];
    let mut scales = Vec::with_capacity(ranges.len());
    let mut zps = Vec::new();
    for idx in ranges {
        let x = &w[idx.clone()];
        let lo = x.iter().copied().fold(0f32, f32::min);
        let hi = x.iter().copied().fold(0f32, f32::max);
        let (mut scale, zp) = if symmetric {
            (lo.abs().max(hi.abs()) / (range / 2.0), 0f32)
        } else {
            let s = (hi - lo) / range;
            let z = qmin - lo / s;
            // 0 / 0 for an all-zero group: torch casts that NaN to an integer; use 0.
            let z = if z.is_nan() { 0.0 } else { rint(z.clamp(qmin, qmax)) };
            (s, z)
        };
        if scale == 0.0 {
            scale = f32::EPSILON;
        }
        scales.push(scale);
        if !symmetric {
            zps.push(zp as i8);
        }
        for (c, &v) in codes[idx].iter_mut().zip(x) {
            let y = (v / scale + zp).clamp(qmin, qmax);
            *c = if fp8 { E4M3::encode_f32(y) as i8 } else { rint(y) as i8 };
        }
    }
    Ok((codes, scales, zps))
}

/// NVFP4 by compressed-tensors' arithmetic.
fn nvfp4(prefix: &str, rows: usize, cols: usize, w: &[f32]) -> Result<Vec<Tensor>, Error> {
    let name = format!("{prefix}.weight");
    if !cols.is_multiple_of(16) {
        return Err(Error::tensor(
            &name,
            format!("NVFP4 rows are whole blocks of 16 ({cols} columns)"),
        ));
    }
    let amax = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let mut g = 2688.0 / amax;
    if !g.is_finite() {
        g = 1.0;
    }
    let mut scale_codes = Vec::with_capacity(w.len() / 16);
    let mut packed = vec![0u8; w.len() / 2];
    for (b, x) in w.chunks_exact(16).enumerate() {
        let am = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut code = E4M3::encode_f32((g * (am / 6.0)).clamp(-448.0, 448.0));
        if E4M3::decode_f32(code) == 0.0 {
            code = E4M3::encode_f32(0.125);
        }
        scale_codes.push(code);
        let s = E4M3::decode_f32(code) / g;
        for (i, &v) in x.iter().enumerate() {
            let c = E2M1::encode_f32((v / s).clamp(-6.0, 6.0));
            packed[b * 8 + i / 2] |= c << (4 * (i % 2));
        }
    }
    Ok(vec![
        Tensor::raw(
            format!("{prefix}.weight_packed"),
            vec![rows, cols / 2],
            Dtype::U8,
            packed,
        )?,
        Tensor::raw(
            format!("{prefix}.weight_scale"),
            vec![rows, cols / 16],
            Dtype::F8_E4M3,
            scale_codes,
        )?,
        Tensor::f32(format!("{prefix}.weight_global_scale"), vec![1], vec![g])?,
    ])
}

/// MXFP4 / MXFP8 by compressed-tensors' arithmetic (`generate_mx_scales`, then `quantize`).
fn mx(prefix: &str, rows: usize, cols: usize, w: &[f32], fp4: bool) -> Result<Vec<Tensor>, Error> {
    let name = format!("{prefix}.weight");
    if !cols.is_multiple_of(32) {
        return Err(Error::tensor(
            &name,
            format!("MX rows are whole blocks of 32 ({cols} columns)"),
        ));
    }
    // The element's max and floor(log2(max)); both round the amax with FP4's one mantissa bit.
    let (max, emax) = if fp4 { (6.0f32, 2.0f32) } else { (448.0, 8.0) };
    let mut scales = Vec::with_capacity(w.len() / 32);
    let mut codes = Vec::with_capacity(w.len());
    for x in w.chunks_exact(32) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        // round_to_power_2: add half of the second mantissa bit, keep sign and exponent.
        let p = f32::from_bits(amax.to_bits().wrapping_add(1 << 21) & 0xff80_0000);
        // 127 + floor(log2(p)) - emax, then rounded into uint8 (log2(0) = -inf clamps to 0).
        let e = (127.0 + p.log2().floor() - emax).clamp(0.0, 255.0);
        let code = e as u8;
        let scale = 2f32.powi(i32::from(code) - 127);
        scales.push(code);
        for &v in x {
            let y = (v / scale).clamp(-max, max);
            codes.push(if fp4 { E2M1::encode_f32(y) } else { E4M3::encode_f32(y) });
        }
    }
    let weight = if fp4 {
        let packed = codes.chunks_exact(2).map(|p| p[0] | p[1] << 4).collect();
        Tensor::raw(
            format!("{prefix}.weight_packed"),
            vec![rows, cols / 2],
            Dtype::U8,
            packed,
        )?
    } else {
        Tensor::raw(name.clone(), vec![rows, cols], Dtype::F8_E4M3, codes)?
    };
    Ok(vec![
        weight,
        Tensor::raw(format!("{name}_scale"), vec![rows, cols / 32], Dtype::U8, scales)?,
    ])
}

/// The tensors of an MXFP4 or MXFP8 weight quantized by lowbit's
/// [`MxQuantizer`](crate::quant::mx::MxQuantizer) with [`MxElement::E2M1`] or
/// [`MxElement::E4M3`] and blocks of 32 along the rows (`mxfp4-pack-quantized` /
/// `mxfp8-quantized`).
///
/// # Errors
/// [`Error::Tensor`] for another element format or block size, or a shape that is not
/// `[out, in]` with `in` a multiple of 32.
pub fn quantize_mx(prefix: &str, shape: &[usize], q: &Quantized) -> Result<Vec<Tensor>, Error> {
    let name = format!("{prefix}.weight");
    let (rows, cols) = rows_cols(&name, shape, q.len())?;
    if q.granularity() != Granularity::PerBlock(32) || cols % 32 != 0 {
        return Err(Error::tensor(&name, "MX blocks of 32 along rows of a multiple of 32"));
    }
    let scales: Vec<u8> = q.scale_codes().iter().map(|&c| c as u8).collect();
    let scale = Tensor::raw(format!("{name}_scale"), vec![rows, cols / 32], Dtype::U8, scales)?;
    if q.scheme() == MxElement::E2M1.scheme() {
        Ok(vec![
            Tensor::raw(
                format!("{prefix}.weight_packed"),
                vec![rows, cols / 2],
                Dtype::U8,
                q.codes().to_vec(),
            )?,
            scale,
        ])
    } else if q.scheme() == MxElement::E4M3.scheme() {
        Ok(vec![
            Tensor::raw(name.clone(), vec![rows, cols], Dtype::F8_E4M3, q.codes().to_vec())?,
            scale,
        ])
    } else {
        Err(Error::tensor(&name, "not an MXFP4 (E2M1) or MXFP8 (E4M3) value"))
    }
}

/// The static input scale of an FP8 layer ([`Activations::StaticPerTensor`](super::Activations::StaticPerTensor)): `amax / 448` as
/// an F32 `[1]` tensor named `prefix.input_scale`.
///
/// # Errors
/// [`Error::Tensor`] for an amax that is not finite and positive.
pub fn input_scale(prefix: &str, amax: f32) -> Result<Tensor, Error> {
    let name = format!("{prefix}.input_scale");
    if !(amax.is_finite() && amax > 0.0) {
        return Err(Error::tensor(&name, format!("amax {amax} is not finite and positive")));
    }
    Tensor::f32(name, vec![1], vec![amax / 448.0])
}
