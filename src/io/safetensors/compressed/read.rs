//! Reading the compressed-tensors layouts back.

use super::{rows_cols, scale_shape, unpack_row, Scheme, Strategy};
use crate::format::FloatFormat;
use crate::io::safetensors::{Dtype, Error, SafetensorsFile};
use crate::quant::mx::{MxElement, NVFP4_SCHEME};
use crate::quant::pack::BitOrder;
use crate::quant::{Granularity, Quantized};
use crate::{E2M1, E4M3, E8M0};

/// A compressed-tensors weight taken apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Parts {
    /// The scheme it was read with.
    pub scheme: Scheme,
    /// `[out, in]`.
    pub shape: Vec<usize>,
    /// One code per element, row-major: INT codes as two's-complement bytes, FP8 E4M3 bytes,
    /// FP4 E2M1 codes (unpacked, 0..16).
    pub codes: Vec<u8>,
    /// One scale per group, row-major over `[out, groups]`, as values: `f32`, E4M3 (NVFP4) or
    /// `2^(e - 127)` (MX).
    pub scales: Vec<f32>,
    /// One zero point per group (asymmetric INT), else empty.
    pub zero_points: Vec<i8>,
    /// NVFP4's `weight_global_scale` (the divisor of the block scales).
    pub global_scale: Option<f32>,
    /// FP8's `input_scale`, if stored.
    pub input_scale: Option<f32>,
}

impl Parts {
    /// The dequantized weight (row-major), as compressed-tensors' `decompress` computes it in
    /// `f32`: `(code - zero_point) * scale` for INT, `e4m3 * scale` for FP8,
    /// `e2m1 * (scale / global_scale)` for NVFP4, `element * 2^(e - 127)` for MX.
    /// (compressed-tensors' NVFP4 `decompress` then rounds these to `bfloat16`, the dtype it
    /// unpacks FP4 codes to; this returns the `f32` values before that cast.)
    ///
    /// # Errors
    /// [`Error::Tensor`] if the parts do not fit together.
    pub fn dequantize(&self) -> Result<Vec<f32>, Error> {
        let name = "weight";
        let (rows, cols) = rows_cols(name, &self.shape, self.codes.len())?;
        if self.codes.is_empty() {
            // An empty weight (`[0, in]` or `[out, 0]`): groups of no elements may have no scale.
            return Ok(Vec::new());
        }
        let k = self.scales.len();
        let per_row = k / rows.max(1);
        if k == 0 || (k != 1 && (!k.is_multiple_of(rows.max(1)) || per_row == 0 || !cols.is_multiple_of(per_row))) {
            return Err(Error::tensor(name, "the scales do not fit the shape"));
        }
        let run = if k == 1 { 1 } else { cols / per_row };
        let group_of = |i: usize| {
            if k == 1 {
                0
            } else {
                (i / cols) * per_row + (i % cols) / run
            }
        };
        if !self.zero_points.is_empty() && self.zero_points.len() != k {
            return Err(Error::tensor(name, "the zero points do not fit the scales"));
        }
        let g = self.global_scale.unwrap_or(1.0);
        Ok(self
            .codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let k = group_of(i);
                let s = self.scales[k];
                match self.scheme {
                    Scheme::Int { .. } => {
                        let z = self.zero_points.get(k).map_or(0.0, |&z| f32::from(z));
                        (f32::from(c as i8) - z) * s
                    }
                    Scheme::Fp8 { .. } | Scheme::Mxfp8 => E4M3::decode_f32(c) * s,
                    Scheme::Nvfp4 => E2M1::decode_f32(c) * (s / g),
                    Scheme::Mxfp4 => E2M1::decode_f32(c) * s,
                }
            })
            .collect())
    }

    /// NVFP4 and MX parts as a lowbit [`Quantized`] value, which
    /// [`quant::mx::dequantize_into`](crate::quant::mx::dequantize_into) decodes: MX exactly;
    /// NVFP4 with `tensor_scale = 1 / global_scale` (lowbit multiplies by the tensor scale
    /// where compressed-tensors divides the block scale by the global scale, so the values can
    /// differ in the last bit unless `1 / global_scale` is exact).
    ///
    /// # Errors
    /// [`Error::Tensor`] for INT and FP8 parts.
    pub fn to_quantized(&self) -> Result<Quantized, Error> {
        let name = "weight";
        let (scheme, block, layout, bits) = match self.scheme {
            Scheme::Nvfp4 => (NVFP4_SCHEME, 16, E4M3::LAYOUT, 4),
            Scheme::Mxfp4 => (MxElement::E2M1.scheme(), 32, E8M0::LAYOUT, 4),
            Scheme::Mxfp8 => (MxElement::E4M3.scheme(), 32, E8M0::LAYOUT, 8),
            _ => return Err(Error::tensor(name, "only NVFP4 and MX parts are lowbit block values")),
        };
        let packed = if bits == 4 {
            self.codes
                .chunks(2)
                .map(|p| p[0] | p.get(1).map_or(0, |h| h << 4))
                .collect()
        } else {
            self.codes.clone()
        };
        let q = Quantized::from_parts(
            scheme,
            bits,
            self.codes.len(),
            Granularity::PerBlock(block),
            layout,
            packed,
            self.scales.clone(),
            Vec::new(),
        )
        .map_err(Error::quant(name))?;
        let q = if bits == 4 {
            q.with_bit_order(BitOrder::LsbFirst)
        } else {
            q
        };
        match self.global_scale {
            Some(g) => q.with_tensor_scale(Some(1.0 / g)).map_err(Error::quant(name)),
            None => Ok(q),
        }
    }
}

fn expect(file: &SafetensorsFile<'_>, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>, Error> {
    let v = file.view(name)?;
    if v.dtype != dtype || v.shape != shape {
        return Err(Error::tensor(
            name,
            format!("expected {dtype:?} {shape:?}, found {:?} {:?}", v.dtype, v.shape),
        ));
    }
    Ok(v.bytes.to_vec())
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

/// The scale of a tensor-strategy layer: `[1]` or `[]`.
fn tensor_scale(file: &SafetensorsFile<'_>, name: &str) -> Result<f32, Error> {
    let v = file.view(name)?;
    if v.dtype != Dtype::F32 || v.numel() != 1 || v.shape.len() > 1 {
        return Err(Error::tensor(
            name,
            format!("expected one F32, found {:?} {:?}", v.dtype, v.shape),
        ));
    }
    Ok(f32s(v.bytes)[0])
}

fn unpack_fp4(b: &[u8]) -> Vec<u8> {
    b.iter().flat_map(|&x| [x & 15, x >> 4]).collect()
}

/// Read the weight of module `prefix` written with `scheme` (the tensors of the
/// [module docs](super)).
///
/// # Errors
/// [`Error::Missing`] for a missing tensor, [`Error::Tensor`] for a dtype or shape the layout
/// does not have.
pub fn read(file: &SafetensorsFile<'_>, prefix: &str, scheme: &Scheme) -> Result<Parts, Error> {
    let name = format!("{prefix}.weight");
    scheme.check(&name)?;
    let sname = format!("{name}_scale");
    let mut parts = Parts {
        scheme: *scheme,
        shape: Vec::new(),
        codes: Vec::new(),
        scales: Vec::new(),
        zero_points: Vec::new(),
        global_scale: None,
        input_scale: None,
    };
    match *scheme {
        Scheme::Fp8 { strategy, .. } => {
            let w = file.view(&name)?;
            let (rows, cols) = rows_cols(&name, &w.shape, w.numel())?;
            expect(file, &name, Dtype::F8_E4M3, &[rows, cols])?;
            parts.codes = w.bytes.to_vec();
            parts.scales = match strategy {
                Strategy::Tensor => vec![tensor_scale(file, &sname)?],
                _ => f32s(&expect(file, &sname, Dtype::F32, &[rows, 1])?),
            };
            let iname = format!("{prefix}.input_scale");
            if file.contains(&iname) {
                parts.input_scale = Some(tensor_scale(file, &iname)?);
            }
            parts.shape = vec![rows, cols];
        }
        Scheme::Int {
            bits,
            symmetric,
            strategy,
            packed,
        } => {
            let (rows, cols) = if packed {
                let shape_name = format!("{prefix}.weight_shape");
                let s = file.view(&shape_name)?;
                let dims: Vec<i64> = match s.dtype {
                    Dtype::I64 => s
                        .bytes
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8")))
                        .collect(),
                    Dtype::I32 => s
                        .bytes
                        .chunks_exact(4)
                        .map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4"))))
                        .collect(),
                    _ => Vec::new(),
                };
                match dims[..] {
                    // Sizes from the file: their products (elements, packed bits per row and
                    // per column) must not overflow.
                    [r, c]
                        if r >= 0
                            && c >= 0
                            && usize::try_from(r).is_ok_and(|r| {
                                usize::try_from(c).is_ok_and(|c| {
                                    r.checked_mul(c).is_some()
                                        && r.checked_mul(bits as usize).is_some()
                                        && c.checked_mul(bits as usize).is_some()
                                })
                            }) =>
                    {
                        (r as usize, c as usize)
                    }
                    _ => {
                        return Err(Error::tensor(
                            &shape_name,
                            "expected two non-negative integers whose products fit in memory",
                        ))
                    }
                }
            } else {
                let w = file.view(&name)?;
                rows_cols(&name, &w.shape, w.numel())?
            };
            let gpr = strategy.per_row(&name, cols)?;
            let sshape = scale_shape(strategy, rows, gpr);
            parts.codes = if packed {
                let wcols = (cols * bits as usize).div_ceil(32);
                let words = u32s(&expect(
                    file,
                    &format!("{prefix}.weight_packed"),
                    Dtype::I32,
                    &[rows, wcols],
                )?);
                // Row by row through the words the file holds (none for rows of no columns,
                // however many rows `weight_shape` claims).
                words
                    .chunks_exact(wcols.max(1))
                    .flat_map(|row| unpack_row(row, bits, cols))
                    .map(|c| c as u8)
                    .collect()
            } else {
                expect(file, &name, Dtype::I8, &[rows, cols])?
            };
            parts.scales = if strategy == Strategy::Tensor {
                vec![tensor_scale(file, &sname)?]
            } else {
                f32s(&expect(file, &sname, Dtype::F32, &sshape)?)
            };
            if !symmetric {
                let zname = format!("{name}_zero_point");
                parts.zero_points = if packed && strategy != Strategy::Tensor {
                    let prow = (rows * bits as usize).div_ceil(32);
                    let t = u32s(&expect(file, &zname, Dtype::I32, &[prow, gpr])?);
                    let cols_of: Vec<Vec<i8>> = (0..gpr)
                        .map(|j| {
                            let words: Vec<u32> = (0..prow).map(|p| t[p * gpr + j]).collect();
                            unpack_row(&words, bits, rows)
                        })
                        .collect();
                    // No rows to walk when there are no groups (rows of no columns).
                    (0..if gpr == 0 { 0 } else { rows })
                        .flat_map(|r| (0..gpr).map(move |j| (r, j)))
                        .map(|(r, j)| cols_of[j][r])
                        .collect()
                } else {
                    let z = file.view(&zname)?;
                    if z.dtype != Dtype::I8 || z.numel() != sshape.iter().product::<usize>() {
                        return Err(Error::tensor(&zname, format!("expected I8 {sshape:?}")));
                    }
                    z.bytes.iter().map(|&b| b as i8).collect()
                };
            }
            parts.shape = vec![rows, cols];
        }
        Scheme::Nvfp4 | Scheme::Mxfp4 | Scheme::Mxfp8 => {
            let (block, scale_dtype) = if *scheme == Scheme::Nvfp4 {
                (16, Dtype::F8_E4M3)
            } else {
                (32, Dtype::U8)
            };
            let (rows, cols, codes) = if *scheme == Scheme::Mxfp8 {
                let w = file.view(&name)?;
                let (rows, cols) = rows_cols(&name, &w.shape, w.numel())?;
                (rows, cols, expect(file, &name, Dtype::F8_E4M3, &[rows, cols])?)
            } else {
                let pname = format!("{prefix}.weight_packed");
                let p = file.view(&pname)?;
                let (rows, half) = rows_cols(&pname, &p.shape, p.numel())?;
                // A shape of no rows can have any number of columns: twice them must fit.
                let cols = half
                    .checked_mul(2)
                    .ok_or_else(|| Error::tensor(&pname, format!("{half} packed columns overflow")))?;
                (rows, cols, unpack_fp4(&expect(file, &pname, Dtype::U8, &[rows, half])?))
            };
            if cols % block != 0 {
                return Err(Error::tensor(
                    &name,
                    format!("{cols} columns are not whole blocks of {block}"),
                ));
            }
            let s = expect(file, &sname, scale_dtype, &[rows, cols / block])?;
            parts.scales = if *scheme == Scheme::Nvfp4 {
                s.iter().map(|&c| E4M3::decode_f32(c)).collect()
            } else {
                s.iter().map(|&c| E8M0::decode_f32(c)).collect()
            };
            if *scheme == Scheme::Nvfp4 {
                parts.global_scale = Some(tensor_scale(file, &format!("{prefix}.weight_global_scale"))?);
            }
            parts.codes = codes;
            parts.shape = vec![rows, cols];
        }
    }
    Ok(parts)
}
