//! lowbit's own safetensors layout of a PTQ weight ([`QuantizedWeight`]), for checkpoints that
//! lowbit itself (or a runtime written against it) reads back, rather than a runtime's layout
//! ([`bnb`](super::bnb), [`compressed`](super::compressed)).
//!
//! For a weight `NAME`:
//!
//! | kind | tensors |
//! |---|---|
//! | kept | `NAME` (F32, its shape) |
//! | float cast | `NAME` (its shape; F8_E4M3, F8_E5M2, F16, BF16, F32, F64, or U8 code bytes for formats safetensors has no dtype for, [`dtype_of`], with a last axis of the code's bytes when wider than one), `NAME.scale` (F32 scalar) when scaled |
//! | integer / MX / NVFP4 ([`Quantized`](crate::quant::Quantized)) | `NAME.codes` (U8, packed), `NAME.scales` (U8 scale codes for 8-bit scale formats such as E8M0 and E4M3, else F32), `NAME.zero_points` (U8, affine), `NAME.tensor_scale` (F32 scalar, NVFP4) |
//! | bitsandbytes 4-bit | `NAME.codes` (U8), then `NAME.absmax` (F32), or with double quantization `NAME.absmax` (U8 codes), `NAME.nested_absmax` (F32), `NAME.nested_offset` (F32 scalar) |

use super::{Dtype, Error, Tensor};
use crate::compat::bnb::Absmax;
use crate::format::Format;
use crate::scheme::ptq::QuantizedWeight;

/// The safetensors dtype of a float format's codes, if safetensors has one.
pub fn dtype_of(format: Format) -> Option<Dtype> {
    Some(match format {
        Format::E4M3 => Dtype::F8_E4M3,
        Format::E5M2 => Dtype::F8_E5M2,
        Format::Fp16 => Dtype::F16,
        Format::Bf16 => Dtype::BF16,
        Format::Fp32 => Dtype::F32,
        Format::Fp64 => Dtype::F64,
        _ => return None,
    })
}

/// The tensors of weight `name` (of `shape`) in lowbit's layout (see the module docs).
///
/// # Errors
/// [`Error::Tensor`] when the parts do not fit `shape`.
///
/// ```
/// use lowbit::io::safetensors::lowbit::weight_tensors;
/// use lowbit::scheme::ptq::{Recipe, WeightGranularity, WeightScheme};
///
/// let w: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
/// let recipe = Recipe::new().weights("*", WeightScheme::int(4, WeightGranularity::PerBlock(32))?);
/// let (q, _) = recipe.quantize_weight("fc.weight", &w, &[4, 32])?;
/// let t = weight_tensors("fc.weight", &[4, 32], &q)?;
/// let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
/// assert_eq!(names, ["fc.weight.codes", "fc.weight.scales"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn weight_tensors(name: &str, shape: &[usize], q: &QuantizedWeight) -> Result<Vec<Tensor>, Error> {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u8s = |suffix: &str, b: &[u8]| Tensor::raw(format!("{name}{suffix}"), vec![b.len()], Dtype::U8, b.to_vec());
    let scalar = |suffix: &str, v: f32| Tensor::f32(format!("{name}{suffix}"), vec![], vec![v]);
    let mut out = Vec::new();
    match q {
        QuantizedWeight::Kept(v) => out.push(Tensor::f32(name, shape.to_vec(), v.clone())?),
        QuantizedWeight::Int(q) => {
            out.push(u8s(".codes", q.codes())?);
            if q.scale_layout().bits() <= 8 {
                let s: Vec<u8> = q.scale_codes().iter().map(|&c| c as u8).collect();
                out.push(u8s(".scales", &s)?);
            } else {
                let n = q.scales().len();
                out.push(Tensor::f32(format!("{name}.scales"), vec![n], q.scales().to_vec())?);
            }
            if !q.zero_points().is_empty() {
                out.push(u8s(".zero_points", q.zero_points())?);
            }
            if let Some(t) = q.tensor_scale() {
                out.push(scalar(".tensor_scale", t)?);
            }
        }
        QuantizedWeight::Bnb4 { packed, state } => {
            out.push(u8s(".codes", packed)?);
            match state.scales() {
                Absmax::Plain(a) => out.push(Tensor::f32(format!("{name}.absmax"), vec![a.len()], a.clone())?),
                Absmax::Double(dq) => {
                    out.push(u8s(".absmax", dq.codes())?);
                    let n = dq.absmax2().len();
                    out.push(Tensor::raw(
                        format!("{name}.nested_absmax"),
                        vec![n],
                        Dtype::F32,
                        f32s(dq.absmax2()),
                    )?);
                    out.push(scalar(".nested_offset", dq.offset())?);
                }
            }
        }
        QuantizedWeight::Float {
            format,
            codes,
            scale,
            scaled,
        } => {
            match dtype_of(*format) {
                Some(d) => out.push(Tensor::raw(name, shape.to_vec(), d, codes.clone())?),
                // No safetensors dtype: the code bytes, with a last axis for the bytes of each
                // code when it has more than one (TF32's four).
                None => {
                    let n: usize = shape.iter().product();
                    let mut s = shape.to_vec();
                    if n > 0 && codes.len() > n {
                        s.push(codes.len() / n);
                    }
                    out.push(Tensor::raw(name, s, Dtype::U8, codes.clone())?);
                }
            }
            if *scaled {
                out.push(scalar(".scale", *scale)?);
            }
        }
    }
    Ok(out)
}
