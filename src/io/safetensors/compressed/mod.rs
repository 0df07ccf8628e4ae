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
//! - MX (`generate_mx_scales`): the block amax rounded to a power of two keeping one mantissa
//!   bit (up from `1.75 · 2^e`), E8M0 code `127 + floor(log2) - emax` (`emax` 2 for FP4, 8 for
//!   FP8) clamped to `0..=255`, elements `clamp(x / 2^(code - 127), ±max)` to nearest even.
//!   For MXFP4 this is the `Even` rule of [`ScaleRule`](crate::quant::mx::ScaleRule); for
//!   MXFP8 compressed-tensors rounds the amax with FP4's one mantissa bit too, which no lowbit
//!   rule does. [`quantize_mx`] lays out values of lowbit's own
//!   [`MxQuantizer`](crate::quant::mx::MxQuantizer) instead (E8M0 scale bytes as they are, FP4
//!   two a byte with the first element in the low nibble, as compressed-tensors'
//!   `pack_fp4_to_uint8`): any E8M0 scale loads the same way.
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

use super::{numel, Error};

mod read;
mod write;

pub use read::{read, Parts};
pub use write::{input_scale, quantize, quantize_mx};

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
    pub(super) fn per_row(self, name: &str, cols: usize) -> Result<usize, Error> {
        match self {
            Strategy::Tensor | Strategy::Channel => Ok(1),
            Strategy::Group(g) => {
                if g == 0 || !cols.is_multiple_of(g) {
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
            Scheme::Int { bits, packed, .. } if !(2..=8).contains(&bits) || (!packed && bits != 8) => {
                Err(Error::tensor(
                    name,
                    format!("{bits}-bit integers (pack-quantized: 2..=8, int-quantized: 8)"),
                ))
            }
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

pub(super) fn rows_cols(name: &str, shape: &[usize], len: usize) -> Result<(usize, usize), Error> {
    match *shape {
        [rows, cols] if numel(name, shape)? == len => Ok((rows, cols)),
        _ => Err(Error::tensor(
            name,
            format!("expected a 2-D [out, in] weight of {len} values, got shape {shape:?}"),
        )),
    }
}

/// compressed-tensors' `round`: `torch.round`, half to even.
pub(super) fn rint(x: f32) -> f32 {
    x.round_ties_even()
}

pub(super) fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn le_i32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn scale_shape(strategy: Strategy, rows: usize, gpr: usize) -> Vec<usize> {
    match strategy {
        Strategy::Tensor => vec![1],
        Strategy::Channel => vec![rows, 1],
        Strategy::Group(_) => vec![rows, gpr],
    }
}

/// `pack_to_int32` of one row of signed `bits`-bit codes.
pub(super) fn pack_row(codes: &[i8], bits: u32, out: &mut Vec<u32>) {
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
pub(super) fn unpack_row(words: &[u32], bits: u32, cols: usize) -> Vec<i8> {
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

#[cfg(test)]
mod tests {
    use super::write::int_or_fp8;
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
