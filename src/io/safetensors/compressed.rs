//! compressed-tensors checkpoints (version 0.20), as vLLM and transformers'
//! `CompressedTensorsHfQuantizer` load them: FP8 (`float-quantized`), INT2..INT8
//! (`pack-quantized`, and INT8 `int-quantized`), NVFP4 (`nvfp4-pack-quantized`), MXFP4
//! (`mxfp4-pack-quantized`) and MXFP8 (`mxfp8-quantized`).
//!
//! A [`Scheme`] says which; [`quantize`] turns a 2-D `[out, in]` weight into the module's
//! tensors, [`quantization_config`] gives the `quantization_config` entry of `config.json`,
//! [`read`] takes the tensors apart again and [`Parts::dequantize`] computes what
//! compressed-tensors' `decompress` gives.
//!
//! # Arithmetic
//!
//! [`quantize`] computes scales and codes as compressed-tensors does on an `f32` weight
//! (`calculate_qparams` with min/max per group, then `quantize`, all in `f32`):
//!
//! - groups: the whole tensor, each output row (`channel`), or runs of `group_size` along a
//!   row (`group`, which must divide the row);
//! - `min = min(x, 0)`, `max = max(x, 0)` per group;
//! - symmetric: `scale = max(|min|, |max|) / ((qmax - qmin) / 2)` — `amax / 7.5` for INT4,
//!   `amax / 127.5` for INT8, `amax / 448` for FP8 — and codes `round(clamp(x / scale, qmin,
//!   qmax))` with `[qmin, qmax] = [-2^(b-1), 2^(b-1) - 1]` (so INT4 codes reach -8) or
//!   `[-448, 448]` cast to E4M3 (nearest even);
//! - asymmetric (INT only): `scale = (max - min) / (2^b - 1)`, `zero_point = round(clamp(qmin
//!   - min / scale, qmin, qmax))` (an all-zero group, where this is `0 / 0`, gets 0), codes
//!   `round(clamp(x / scale + zero_point, qmin, qmax))`;
//! - a zero scale becomes `f32::EPSILON` (`torch.finfo(float32).eps`); rounding is half to
//!   even (`torch.round`).
//! - NVFP4: `global_scale = 448 · 6 / amax(w)` (1 where that is not finite), block scales
//!   `e4m3(clamp(global_scale · (amax_block / 6), ±448))` (0.125 where that is 0), elements
//!   `e2m1(clamp(x / (scale / global_scale), ±6))` to nearest even. The file stores
//!   `global_scale` itself, the *divisor* of the block scales: a value is `e2m1 · (scale /
//!   global_scale)` (compressed-tensors' `_dequantize`; vLLM's `process_weights_after_loading`
//!   takes `1 / weight_global_scale` for the same reason). lowbit's
//!   [`Nvfp4Quantizer`](crate::quant::mx::Nvfp4Quantizer) keeps the reciprocal instead, the
//!   *multiplier* `tensor_scale = amax / 2688`; [`Parts::to_quantized`] converts (exactly only
//!   when `1 / global_scale` is exact in `f32`).
//! - MX: [`quantize_mx`] lays out values from lowbit's
//!   [`MxQuantizer`](crate::quant::mx::MxQuantizer) (E8M0 scale bytes as they are, FP4 two a
//!   byte with the first element in the low nibble, as compressed-tensors' `pack_fp4_to_uint8`).
//!   compressed-tensors' own MX scale (`generate_mx_scales`: the amax rounded to a power of
//!   two with FP4's mantissa width, then `floor(log2) - emax`) is the `Even` rule of
//!   [`ScaleRule`](crate::quant::mx::ScaleRule) for MXFP4; for MXFP8 it rounds with FP4's
//!   mantissa width too, which no lowbit rule reproduces, so the scales lowbit writes for
//!   MXFP8 are lowbit's (any E8M0 scale loads the same way).
//!
//! # Layouts
//!
//! For a module `prefix` with a weight of shape `[out, in]` and `g` groups per row
//! (compressed-tensors 0.20, `compressors/*/base.py` and `quantization/lifecycle/initialize.py`):
//!
//! | scheme | tensors |
//! |---|---|
//! | FP8 | `weight` F8_E4M3 `[out, in]`, `weight_scale` F32 `[1]` (tensor) or `[out, 1]` (channel), optional `input_scale` F32 `[1]` |
//! | INT, `pack-quantized` | `weight_packed` I32 `[out, ceil(in·b/32)]`, `weight_scale` F32 `[1]` / `[out, 1]` / `[out, g]`, `weight_shape` I64 `[2]`, asymmetric: `weight_zero_point` (I32 `[ceil(out·b/32), g]` packed along the rows for channel and group, I8 `[1]` for tensor) |
//! | INT8, `int-quantized` | `weight` I8 `[out, in]`, `weight_scale`, asymmetric: `weight_zero_point` I8 of the scale's shape |
//! | NVFP4 | `weight_packed` U8 `[out, in/2]`, `weight_scale` F8_E4M3 `[out, in/16]`, `weight_global_scale` F32 `[1]` |
//! | MXFP4 | `weight_packed` U8 `[out, in/2]`, `weight_scale` U8 `[out, in/32]` (E8M0 bytes) |
//! | MXFP8 | `weight` F8_E4M3 `[out, in]`, `weight_scale` U8 `[out, in/32]` |
//!
//! `pack_to_int32` packs each row's codes plus `2^(b-1)` (so they are unsigned) densely,
//! element `i` at bit `i·b` of the row's little-endian stream of 32-bit words (eight INT4 a
//! word, the first in the low nibble), the last word zero-padded.
//!
//! # Examples
//!
//! ```
//! use lowbit::io::safetensors::compressed::{self, Scheme, Strategy};
//! use lowbit::io::safetensors::{to_bytes, SafetensorsFile};
//!
//! let w: Vec<f32> = (0..8 * 64).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
//! let scheme = Scheme::Int { bits: 4, symmetric: true, strategy: Strategy::Group(32), packed: true };
//! let tensors = compressed::quantize("model.layers.0.mlp.up_proj", &[8, 64], &w, &scheme)?;
//! let bytes = to_bytes(&tensors, None)?;
//!
//! let file = SafetensorsFile::parse(&bytes)?;
//! let parts = compressed::read(&file, "model.layers.0.mlp.up_proj", &scheme)?;
//! assert_eq!(parts.scales.len(), 16); // 8 rows × 2 groups
//! let y = parts.dequantize()?;
//! assert!(w.iter().zip(&y).all(|(a, b)| (a - b).abs() <= 1.0 / 15.0 + 1e-6));
//!
//! let config = compressed::quantization_config(&[(scheme, vec!["Linear".into()])], &["lm_head".into()]);
//! assert_eq!(config["format"], "pack-quantized");
//! # Ok::<(), lowbit::io::safetensors::Error>(())
//! ```

use serde_json::{json, Value};

use super::{numel, Dtype, Error, SafetensorsFile, Tensor};
use crate::format::FloatFormat;
use crate::quant::mx::{MxElement, NVFP4_SCHEME};
use crate::quant::pack::BitOrder;
use crate::quant::{Granularity, Quantized};
use crate::{E2M1, E4M3, E8M0};

/// The compressed-tensors version whose layouts and configuration this module writes.
pub const VERSION: &str = "0.20.0";

/// How elements share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// One scale for the whole tensor (`"tensor"`).
    Tensor,
    /// One scale per output row (`"channel"`).
    Channel,
    /// One scale per run of this many elements along a row (`"group"`, `group_size`).
    Group(usize),
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Tensor => "tensor",
            Strategy::Channel => "channel",
            Strategy::Group(_) => "group",
        }
    }

    fn group_size(self) -> Value {
        match self {
            Strategy::Group(g) => json!(g),
            _ => Value::Null,
        }
    }

    /// Scales per row of a `[rows, cols]` weight (1 for tensor and channel).
    fn per_row(self, name: &str, cols: usize) -> Result<usize, Error> {
        match self {
            Strategy::Tensor | Strategy::Channel => Ok(1),
            Strategy::Group(g) => {
                if g == 0 || cols % g != 0 {
                    return Err(Error::tensor(
                        name,
                        format!("group size {g} does not divide the row length {cols}"),
                    ));
                }
                Ok(cols / g)
            }
        }
    }
}

/// What the layer's input activations are declared as (they are quantized by the runtime,
/// not stored, except for a static scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activations {
    /// Not quantized (weight-only: vLLM's W8A16 / WNA16 kernels).
    None,
    /// Dynamic, per token (`FP8_DYNAMIC`, `INT8_W8A8`).
    DynamicPerToken,
    /// Static, per tensor: the checkpoint holds `input_scale` ([`input_scale`]).
    StaticPerTensor,
}

/// A compressed-tensors quantization scheme for `Linear` weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// FP8 E4M3 weights (`float-quantized`), scale per tensor or per channel.
    Fp8 {
        /// [`Strategy::Tensor`] or [`Strategy::Channel`].
        strategy: Strategy,
        /// The declared input activations (FP8).
        activations: Activations,
    },
    /// Integer weights, symmetric or asymmetric.
    Int {
        /// Bits per code, 2 to 8.
        bits: u32,
        /// Symmetric (no zero point) or asymmetric.
        symmetric: bool,
        /// Scale grouping.
        strategy: Strategy,
        /// `true`: `pack-quantized` (weight-only, any bits); `false`: `int-quantized` (8 bits,
        /// I8 weight, with dynamic per-token INT8 activations as `INT8_W8A8`).
        packed: bool,
    },
    /// NVFP4 weights (`nvfp4-pack-quantized`, the `NVFP4A16` preset: weight-only).
    Nvfp4,
    /// MXFP4 weights (`mxfp4-pack-quantized`, weight-only).
    Mxfp4,
    /// MXFP8 weights (`mxfp8-quantized`, weight-only).
    Mxfp8,
}

impl Scheme {
    /// The compressed-tensors format name.
    pub fn format(&self) -> &'static str {
        match self {
            Scheme::Fp8 { .. } => "float-quantized",
            Scheme::Int { packed: true, .. } => "pack-quantized",
            Scheme::Int { packed: false, .. } => "int-quantized",
            Scheme::Nvfp4 => "nvfp4-pack-quantized",
            Scheme::Mxfp4 => "mxfp4-pack-quantized",
            Scheme::Mxfp8 => "mxfp8-quantized",
        }
    }

    fn check(&self, name: &str) -> Result<(), Error> {
        match *self {
            Scheme::Fp8 {
                strategy: Strategy::Group(_),
                ..
            } => Err(Error::tensor(name, "FP8 here is per tensor or per channel")),
            Scheme::Int { bits, packed, .. } if !(2..=8).contains(&bits) || (!packed && bits != 8) => Err(
                Error::tensor(name, format!("{bits}-bit integers (pack-quantized: 2..=8, int-quantized: 8)")),
            ),
            _ => Ok(()),
        }
    }

    /// The `weights` entry of the scheme's `QuantizationArgs`, as compressed-tensors 0.20
    /// serialises it.
    pub fn weight_args(&self) -> Value {
        match *self {
            Scheme::Fp8 { strategy, .. } => args(8, "float", true, strategy, false),
            Scheme::Int {
                bits,
                symmetric,
                strategy,
                ..
            } => args(bits, "int", symmetric, strategy, false),
            Scheme::Nvfp4 => {
                let mut a = args(4, "float", true, Strategy::Group(16), false);
                a["strategy"] = json!("tensor_group");
                a["scale_dtype"] = json!("torch.float8_e4m3fn");
                a
            }
            Scheme::Mxfp4 | Scheme::Mxfp8 => {
                let bits = if *self == Scheme::Mxfp4 { 4 } else { 8 };
                let mut a = args(bits, "float", true, Strategy::Group(32), false);
                a["scale_dtype"] = json!("torch.uint8");
                a
            }
        }
    }

    /// The `input_activations` entry (`null` for weight-only schemes).
    pub fn input_args(&self) -> Value {
        match *self {
            Scheme::Fp8 { activations, .. } => match activations {
                Activations::None => Value::Null,
                Activations::DynamicPerToken => args_named(8, "float", true, "token", Value::Null, true),
                Activations::StaticPerTensor => args(8, "float", true, Strategy::Tensor, false),
            },
            Scheme::Int { packed: false, .. } => args_named(8, "int", true, "token", Value::Null, true),
            _ => Value::Null,
        }
    }
}

fn args(bits: u32, ty: &str, symmetric: bool, strategy: Strategy, dynamic: bool) -> Value {
    args_named(bits, ty, symmetric, strategy.name(), strategy.group_size(), dynamic)
}

fn args_named(bits: u32, ty: &str, symmetric: bool, strategy: &str, group_size: Value, dynamic: bool) -> Value {
    json!({
        "num_bits": bits,
        "type": ty,
        "symmetric": symmetric,
        "group_size": group_size,
        "strategy": strategy,
        "dynamic": dynamic,
    })
}

/// The `quantization_config` entry of `config.json` for a model whose modules matching each
/// group's targets (class names such as `"Linear"`, or `"re:..."` patterns) were written with
/// that group's scheme, and whose `ignore` modules were left in high precision; as
/// compressed-tensors 0.20's `ModelCompressor.update_config` writes it (`quant_method:
/// "compressed-tensors"`, `quantization_status: "compressed"`, the format of the scheme, or
/// `"mixed-precision"` when the groups' formats differ).
pub fn quantization_config(groups: &[(Scheme, Vec<String>)], ignore: &[String]) -> Value {
    let mut config_groups = serde_json::Map::new();
    for (i, (scheme, targets)) in groups.iter().enumerate() {
        config_groups.insert(
            format!("group_{i}"),
            json!({
                "targets": targets,
                "weights": scheme.weight_args(),
                "input_activations": scheme.input_args(),
                "output_activations": null,
                "format": scheme.format(),
            }),
        );
    }
    let mut formats: Vec<&str> = groups.iter().map(|(s, _)| s.format()).collect();
    formats.dedup();
    let format = match formats.as_slice() {
        [one] => *one,
        [] => "dense",
        _ => "mixed-precision",
    };
    json!({
        "config_groups": config_groups,
        "format": format,
        "global_compression_ratio": null,
        "ignore": ignore,
        "kv_cache_scheme": null,
        "moe_sparsity_config": null,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
        "sparsity_config": {},
        "transform_config": {},
        "version": VERSION,
    })
}

fn rows_cols(name: &str, shape: &[usize], len: usize) -> Result<(usize, usize), Error> {
    match *shape {
        [rows, cols] if numel(name, shape)? == len => Ok((rows, cols)),
        _ => Err(Error::tensor(
            name,
            format!("expected a 2-D [out, in] weight of {len} values, got shape {shape:?}"),
        )),
    }
}

/// compressed-tensors' `round`: `torch.round`, half to even.
fn rint(x: f32) -> f32 {
    x.round_ties_even()
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_i32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn scale_shape(strategy: Strategy, rows: usize, gpr: usize) -> Vec<usize> {
    match strategy {
        Strategy::Tensor => vec![1],
        Strategy::Channel => vec![rows, 1],
        Strategy::Group(_) => vec![rows, gpr],
    }
}

/// `pack_to_int32` of one row of signed `bits`-bit codes.
fn pack_row(codes: &[i8], bits: u32, out: &mut Vec<u32>) {
    let words = (codes.len() * bits as usize).div_ceil(32);
    let start = out.len();
    out.resize(start + words, 0);
    let offset = 1i32 << (bits - 1);
    for (i, &c) in codes.iter().enumerate() {
        let v = (i32::from(c) + offset) as u64;
        let bit = i * bits as usize;
        let (w, b) = (bit / 32, bit % 32);
        let wide = v << b;
        out[start + w] |= wide as u32;
        if b + bits as usize > 32 {
            out[start + w + 1] |= (wide >> 32) as u32;
        }
    }
}

/// `unpack_from_int32` of one row.
fn unpack_row(words: &[u32], bits: u32, cols: usize) -> Vec<i8> {
    let offset = 1i32 << (bits - 1);
    let mask = (1u64 << bits) - 1;
    (0..cols)
        .map(|i| {
            let bit = i * bits as usize;
            let (w, b) = (bit / 32, bit % 32);
            let lo = u64::from(words[w]);
            let hi = words.get(w + 1).map_or(0, |&x| u64::from(x));
            let v = ((lo | hi << 32) >> b) & mask;
            (v as i32 - offset) as i8
        })
        .collect()
}

/// The tensors of module `prefix` with weight `w` (`[out, in]`, row-major) quantized with
/// `scheme` by compressed-tensors' arithmetic (see the [module docs](self)). For
/// [`Scheme::Mxfp4`] / [`Scheme::Mxfp8`] this quantizes with lowbit's MX quantizer and the
/// `Even` scale rule ([`quantize_mx`] takes a value of your own).
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
                Tensor::raw(name.clone(), vec![rows, cols], Dtype::F8_E4M3, codes.iter().map(|&c| c as u8).collect())?,
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
                    [rows as i64, cols as i64].iter().flat_map(|v| v.to_le_bytes()).collect(),
                )?);
            } else {
                out.push(Tensor::raw(
                    name.clone(),
                    vec![rows, cols],
                    Dtype::I8,
                    codes.iter().map(|&c| c as u8).collect(),
                )?);
            }
            out.push(Tensor::raw(format!("{name}_scale"), sshape.clone(), Dtype::F32, le_f32(&scales))?);
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
                    out.push(Tensor::raw(zname, sshape, Dtype::I8, zps.iter().map(|&z| z as u8).collect())?);
                }
            }
            Ok(out)
        }
        Scheme::Nvfp4 => nvfp4(prefix, rows, cols, w),
        Scheme::Mxfp4 | Scheme::Mxfp8 => {
            let element = if *scheme == Scheme::Mxfp4 {
                MxElement::E2M1
            } else {
                MxElement::E4M3
            };
            let q = crate::quant::mx::MxQuantizer::new(element, crate::quant::mx::ScaleRule::Even)
                .and_then(|q| crate::quant::Quantizer::quantize(&q, w))
                .map_err(Error::quant(&name))?;
            quantize_mx(prefix, shape, &q)
        }
    }
}

/// Codes, scales and zero points of an INT or FP8 weight, by compressed-tensors' arithmetic.
#[allow(clippy::too_many_arguments)]
fn int_or_fp8(
    w: &[f32],
    rows: usize,
    cols: usize,
    strategy: Strategy,
    bits: u32,
    symmetric: bool,
    fp8: bool,
    name: &str,
) -> Result<(Vec<i8>, Vec<f32>, Vec<i8>), Error> {
    let n = rows * cols;
    let ranges: Vec<std::ops::Range<usize>> = match strategy {
        Strategy::Tensor => vec![0..n],
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
    if cols % 16 != 0 {
        return Err(Error::tensor(&name, format!("NVFP4 rows are whole blocks of 16 ({cols} columns)")));
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
        Tensor::raw(format!("{prefix}.weight_packed"), vec![rows, cols / 2], Dtype::U8, packed)?,
        Tensor::raw(
            format!("{prefix}.weight_scale"),
            vec![rows, cols / 16],
            Dtype::F8_E4M3,
            scale_codes,
        )?,
        Tensor::f32(format!("{prefix}.weight_global_scale"), vec![1], vec![g])?,
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
            Tensor::raw(format!("{prefix}.weight_packed"), vec![rows, cols / 2], Dtype::U8, q.codes().to_vec())?,
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

/// The static input scale of an FP8 layer ([`Activations::StaticPerTensor`]): `amax / 448` as
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
        let k = self.scales.len();
        let per_row = k / rows.max(1);
        if k == 0 || (k != 1 && (k % rows.max(1) != 0 || per_row == 0 || cols % per_row != 0)) {
            return Err(Error::tensor(name, "the scales do not fit the shape"));
        }
        let run = if k == 1 { 1 } else { cols / per_row };
        let group_of = |i: usize| if k == 1 { 0 } else { (i / cols) * per_row + (i % cols) / run };
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
            self.codes.chunks(2).map(|p| p[0] | p.get(1).map_or(0, |h| h << 4)).collect()
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
        let q = if bits == 4 { q.with_bit_order(BitOrder::LsbFirst) } else { q };
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
        return Err(Error::tensor(name, format!("expected one F32, found {:?} {:?}", v.dtype, v.shape)));
    }
    Ok(f32s(v.bytes)[0])
}

fn unpack_fp4(b: &[u8]) -> Vec<u8> {
    b.iter().flat_map(|&x| [x & 15, x >> 4]).collect()
}

/// Read the weight of module `prefix` written with `scheme` (the tensors of the
/// [module docs](self)).
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
                    Dtype::I64 => s.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8"))).collect(),
                    Dtype::I32 => s.bytes.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4")))).collect(),
                    _ => Vec::new(),
                };
                match dims[..] {
                    [r, c] if r >= 0 && c >= 0 => (r as usize, c as usize),
                    _ => return Err(Error::tensor(&shape_name, "expected two non-negative integers")),
                }
            } else {
                let w = file.view(&name)?;
                rows_cols(&name, &w.shape, w.numel())?
            };
            let gpr = strategy.per_row(&name, cols)?;
            let sshape = scale_shape(strategy, rows, gpr);
            parts.codes = if packed {
                let wcols = (cols * bits as usize).div_ceil(32);
                let words = u32s(&expect(file, &format!("{prefix}.weight_packed"), Dtype::I32, &[rows, wcols])?);
                (0..rows)
                    .flat_map(|r| unpack_row(&words[r * wcols..(r + 1) * wcols], bits, cols))
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
                    (0..rows).flat_map(|r| (0..gpr).map(move |j| (r, j))).map(|(r, j)| cols_of[j][r]).collect()
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
                (rows, 2 * half, unpack_fp4(&expect(file, &pname, Dtype::U8, &[rows, half])?))
            };
            if cols % block != 0 {
                return Err(Error::tensor(&name, format!("{cols} columns are not whole blocks of {block}")));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_matches_the_documented_order() {
        // INT4: codes -8..7 become 0..15, eight a word, the first in the low nibble.
        let codes: Vec<i8> = (-8..8).collect();
        let mut words = Vec::new();
        pack_row(&codes, 4, &mut words);
        assert_eq!(words, [0x7654_3210, 0xfedc_ba98]);
        assert_eq!(unpack_row(&words, 4, 16), codes);
        // 3 bits straddle words; 5 columns leave padding.
        for bits in 2..=8u32 {
            let half = 1i32 << (bits - 1);
            let codes: Vec<i8> = (0..37).map(|i| ((i * 7) % (2 * half) - half) as i8).collect();
            let mut words = Vec::new();
            pack_row(&codes, bits, &mut words);
            assert_eq!(words.len(), (37 * bits as usize).div_ceil(32));
            assert_eq!(unpack_row(&words, bits, 37), codes, "{bits}");
        }
    }

    #[test]
    fn int4_symmetric_reaches_minus_eight() {
        // amax / 7.5: the largest value clamps to 7, the most negative rounds to -8.
        let w = [7.5f32, -7.5, 2.5, 0.0];
        let (codes, scales, _) = int_or_fp8(&w, 1, 4, Strategy::Channel, 4, true, false, "w").unwrap();
        assert_eq!(scales, [1.0]);
        assert_eq!(codes, [7, -8, 2, 0]);
    }
}
