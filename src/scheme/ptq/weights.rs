//! Weights: the schemes a rule can give a weight, the quantized result, and the quantization
//! itself ([`quantize_weight_with`]).

use std::fmt;
use std::sync::Arc;

use super::report::{bits_per, ErrStats, LayerReport, TensorKind};
use crate::compat::bnb::{self, Absmax, QuantState, QuantType};
use crate::format::{FloatFormat, Format, FormatFn, Options, Overflow, Rounding};
use crate::quant::mx::{self, MxElement, MxQuantizer, Nvfp4Quantizer, ScaleRule, TensorScale};
use crate::quant::{AbsmaxQuantizer, AffineQuantizer, Granularity, Quantized, Quantizer};
use crate::scheme::{check_finite, Error};

/// How a weight's elements are grouped for integer quantization, before its shape is known:
/// a recipe rule applies to weights of many shapes, so "per channel" cannot yet say how long
/// a row is. [`resolve`](Self::resolve) turns it into the quantizers' [`Granularity`] for one
/// weight's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightGranularity {
    /// One scale for the tensor.
    PerTensor,
    /// One scale per output channel: per row of the weight seen as `[shape[0], rest]`
    /// (PyTorch's `[out, in]` layout). A 1-D tensor gets one scale.
    PerChannel,
    /// Blocks of this many consecutive elements.
    PerBlock(usize),
}

/// Encode `x / scale` (saturating, nearest-even) into little-endian code bytes, and the
/// decoded values times `scale` into `y`.
fn cast(format: Format, x: &[f32], scale: f32, y: &mut [f32]) -> Vec<u8> {
    struct Cast<'a>(&'a [f32], f32, &'a mut [f32]);
    impl FormatFn for Cast<'_> {
        type Out = Vec<u8>;
        fn call<F: FloatFormat>(self) -> Vec<u8> {
            let Cast(x, scale, y) = self;
            let opts = Options::rounding(Rounding::NearestEven).with_overflow(Overflow::Saturate);
            let w = F::BITS.div_ceil(8) as usize;
            let mut out = Vec::with_capacity(x.len() * w);
            for (&v, y) in x.iter().zip(y.iter_mut()) {
                let c = F::encode_f32_with(v / scale, opts);
                *y = F::decode_f32(c) * scale;
                out.extend_from_slice(&c.to_u64_le()[..w]);
            }
            out
        }
    }
    format.with(Cast(x, scale, y))
}

/// Decode little-endian code bytes of `format` times `scale` into `y`.
fn decode(format: Format, codes: &[u8], scale: f32, y: &mut [f32]) {
    struct Decode<'a>(&'a [u8], f32, &'a mut [f32]);
    impl FormatFn for Decode<'_> {
        type Out = ();
        fn call<F: FloatFormat>(self) {
            use crate::format::Code;
            let Decode(codes, scale, y) = self;
            let w = F::BITS.div_ceil(8) as usize;
            for (c, y) in codes.chunks_exact(w).zip(y.iter_mut()) {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                *y = F::decode_f32(F::Code::from_u64(u64::from_le_bytes(b))) * scale;
            }
        }
    }
    format.with(Decode(codes, scale, y));
}

trait CodeLe {
    fn to_u64_le(self) -> [u8; 8];
}
impl<C: crate::format::Code> CodeLe for C {
    fn to_u64_le(self) -> [u8; 8] {
        self.to_u64().to_le_bytes()
    }
}

/// What to do with a weight.
#[derive(Clone)]
pub enum WeightScheme {
    /// Leave it in f32.
    Keep,
    /// Integer quantization through [`AbsmaxQuantizer`] (symmetric) or [`AffineQuantizer`].
    Int {
        /// Bits per code: 2..=8 symmetric, 1..=8 affine.
        bits: u32,
        /// Symmetric absmax (`true`) or affine with a zero point.
        symmetric: bool,
        /// Grouping of the scales.
        granularity: WeightGranularity,
    },
    /// A cast to a float format, with a per-tensor scale `amax / F::MAX` when `scaled` (FP8
    /// recipes), or none (f16/bf16 casts).
    Float {
        /// The format.
        format: Format,
        /// Use a per-tensor scale.
        scaled: bool,
    },
    /// bitsandbytes 4-bit (QLoRA): NF4 or FP4 codebook per block of `block` (32, 64, ...,
    /// 4096), with the block scales double-quantized when `double_quant` (bitsandbytes'
    /// `compress_statistics`), through [`crate::compat::bnb::quantize_4bit`].
    Bnb4 {
        /// NF4 or FP4.
        quant_type: QuantType,
        /// Block size.
        block: usize,
        /// Double-quantize the scales.
        double_quant: bool,
    },
    /// OCP MX (MXFP8, MXFP6, MXFP4, MXINT8): blocks of 32 consecutive elements (along each
    /// row of a row-major weight), one E8M0 scale each, through [`MxQuantizer`].
    Mx {
        /// The element format.
        element: MxElement,
        /// How a block's scale comes from its amax.
        rule: ScaleRule,
    },
    /// NVFP4: blocks of 16 E2M1 elements with E4M3 scales, through [`Nvfp4Quantizer`].
    Nvfp4 {
        /// One level, or a second-level tensor scale.
        tensor_scale: TensorScale,
    },
    /// Any quantizer, used as it is (its granularity must suit every tensor the rule matches).
    Custom(Arc<dyn Quantizer + Send + Sync>),
}

impl fmt::Debug for WeightScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl WeightScheme {
    /// Symmetric integer quantization with `bits` in `2..=8`.
    ///
    /// # Errors
    /// [`Error::Bits`] outside `2..=8`; [`Error::Parameter`] for a block size of 0.
    pub fn int(bits: u32, granularity: WeightGranularity) -> Result<Self, Error> {
        Self::int_with(bits, true, granularity)
    }

    /// Integer quantization, symmetric (`bits` in `2..=8`) or affine (`1..=8`).
    ///
    /// # Errors
    /// [`Error::Bits`] for an impossible width; [`Error::Parameter`] for a block size of 0.
    pub fn int_with(bits: u32, symmetric: bool, granularity: WeightGranularity) -> Result<Self, Error> {
        let min = if symmetric { 2 } else { 1 };
        if bits < min || bits > 8 {
            return Err(Error::Bits { bits, min, max: 8 });
        }
        if granularity == WeightGranularity::PerBlock(0) {
            return Err(Error::Parameter {
                name: "block",
                value: 0.0,
                why: "must be at least 1",
            });
        }
        Ok(WeightScheme::Int {
            bits,
            symmetric,
            granularity,
        })
    }

    /// A one-line description for reports, such as `int8 sym per-channel`.
    pub fn describe(&self) -> String {
        match self {
            WeightScheme::Keep => "f32 (kept)".into(),
            WeightScheme::Int {
                bits,
                symmetric,
                granularity,
            } => {
                let g = match granularity {
                    WeightGranularity::PerTensor => "per-tensor".to_string(),
                    WeightGranularity::PerChannel => "per-channel".to_string(),
                    WeightGranularity::PerBlock(b) => format!("block {b}"),
                };
                format!("int{bits} {} {g}", if *symmetric { "sym" } else { "affine" })
            }
            WeightScheme::Float { format, scaled } => {
                format!("{}{}", format.name(), if *scaled { " scaled" } else { "" })
            }
            WeightScheme::Bnb4 {
                quant_type,
                block,
                double_quant,
            } => format!(
                "{} block {block}{}",
                quant_type.name(),
                if *double_quant { " double-quant" } else { "" }
            ),
            WeightScheme::Mx { element, rule } => {
                let name = match element {
                    MxElement::E4M3 => "mxfp8 e4m3",
                    MxElement::E5M2 => "mxfp8 e5m2",
                    MxElement::E2M3 => "mxfp6 e2m3",
                    MxElement::E3M2 => "mxfp6 e3m2",
                    MxElement::E2M1 => "mxfp4",
                    MxElement::Int8 => "mxint8",
                };
                format!("{name} {rule:?}").to_lowercase()
            }
            WeightScheme::Nvfp4 { tensor_scale } => match tensor_scale {
                TensorScale::None => "nvfp4".to_string(),
                _ => "nvfp4 tensor-scaled".to_string(),
            },
            WeightScheme::Custom(q) => format!("custom {}-bit {:?}", q.bits(), q.granularity()),
        }
    }

    fn granularity(g: WeightGranularity, len: usize, shape: &[usize]) -> Result<Granularity, Error> {
        g.resolve_len(len, shape)
    }
}

impl WeightGranularity {
    /// The quantizers' [`Granularity`] for a weight of `shape`: per channel is per row of
    /// `shape[0]` rows (one scale for a 1-D or empty tensor).
    ///
    /// # Errors
    /// [`Error::Shape`] when the shape's element count overflows.
    ///
    /// ```
    /// use lowbit::quant::Granularity;
    /// use lowbit::scheme::ptq::WeightGranularity;
    /// assert_eq!(WeightGranularity::PerChannel.resolve(&[4, 3, 2])?, Granularity::PerRow { cols: 6 });
    /// assert_eq!(WeightGranularity::PerChannel.resolve(&[5])?, Granularity::PerTensor);
    /// # Ok::<(), lowbit::SchemeError>(())
    /// ```
    pub fn resolve(self, shape: &[usize]) -> Result<Granularity, Error> {
        let len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or(Error::Shape {
                what: "shape",
                expected: usize::MAX,
                got: usize::MAX,
            })?;
        self.resolve_len(len, shape)
    }

    fn resolve_len(self, len: usize, shape: &[usize]) -> Result<Granularity, Error> {
        let g = self;
        // A product that overflows is no length at all.
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if numel != len {
            return Err(Error::Shape {
                what: "shape",
                expected: len,
                got: numel,
            });
        }
        Ok(match g {
            WeightGranularity::PerTensor => Granularity::PerTensor,
            WeightGranularity::PerBlock(b) => Granularity::PerBlock(b),
            WeightGranularity::PerChannel => match shape {
                [] | [_] => Granularity::PerTensor,
                [rows, ..] if *rows > 0 && len > 0 => Granularity::PerRow { cols: len / rows },
                _ => Granularity::PerTensor,
            },
        })
    }
}

/// A quantized weight: what is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantizedWeight {
    /// Kept in f32.
    Kept(Vec<f32>),
    /// Integer codes with scales (and zero points), from [`crate::quant`].
    Int(Quantized),
    /// bitsandbytes 4-bit codes (two a byte, first element in the high nibble) and their state.
    Bnb4 {
        /// The packed codes.
        packed: Vec<u8>,
        /// Block size, type and the (possibly double-quantized) scales.
        state: QuantState,
    },
    /// Float-format codes (little-endian, one or two bytes each) and a per-tensor scale
    /// (1 when unscaled).
    Float {
        /// The format.
        format: Format,
        /// The codes' bytes.
        codes: Vec<u8>,
        /// The per-tensor scale.
        scale: f32,
        /// Whether the scale is stored.
        scaled: bool,
    },
}

impl QuantizedWeight {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            QuantizedWeight::Kept(v) => v.len(),
            QuantizedWeight::Int(q) => q.len(),
            QuantizedWeight::Bnb4 { state, .. } => state.len(),
            QuantizedWeight::Float { format, codes, .. } => codes.len() / format.bits().div_ceil(8) as usize,
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes stored: codes, scales at their format's width, zero points.
    pub fn size_bytes(&self) -> usize {
        match self {
            QuantizedWeight::Kept(v) => 4 * v.len(),
            QuantizedWeight::Int(q) => {
                q.codes().len()
                    + q.scales().len() * q.scale_layout().bits().div_ceil(8) as usize
                    + q.zero_points().len()
            }
            QuantizedWeight::Float { codes, scaled, .. } => codes.len() + if *scaled { 4 } else { 0 },
            QuantizedWeight::Bnb4 { packed, state } => {
                packed.len()
                    + match state.scales() {
                        Absmax::Plain(a) => 4 * a.len(),
                        Absmax::Double(dq) => dq.bytes(),
                    }
            }
        }
    }

    /// The dequantized values.
    ///
    /// # Errors
    /// [`Error::Quant`] if the codes are inconsistent (they are not, when made by a recipe).
    pub fn dequantize(&self) -> Result<Vec<f32>, Error> {
        let mut y = vec![0f32; self.len()];
        match self {
            QuantizedWeight::Kept(v) => y.copy_from_slice(v),
            QuantizedWeight::Int(q) => dequantize_int(q, &mut y)?,
            QuantizedWeight::Bnb4 { packed, state } => bnb::dequantize_4bit_into(packed, state, &mut y)?,
            QuantizedWeight::Float {
                format, codes, scale, ..
            } => decode(*format, codes, *scale, &mut y),
        }
        Ok(y)
    }
}

fn dequantize_int(q: &Quantized, y: &mut [f32]) -> Result<(), Error> {
    use crate::quant::Scheme;
    match q.scheme() {
        Scheme::Affine => AffineQuantizer::new(q.bits(), q.granularity())?.dequantize_into(q, y)?,
        Scheme::Symmetric => AbsmaxQuantizer::new(q.bits(), q.granularity())?.dequantize_into(q, y)?,
        _ => mx::dequantize_into(q, y)?,
    }
    Ok(())
}

/// Quantize `data` with `z`, writing the dequantized values into `y`.
fn quantize_with_quantizer(z: &dyn Quantizer, data: &[f32], y: &mut [f32]) -> Result<Quantized, Error> {
    let q = z.quantize(data)?;
    z.dequantize_into(&q, y)?;
    Ok(q)
}

/// Quantize one weight with a given scheme (what [`Recipe::quantize_weight`] does after the
/// lookup).
///
/// # Errors
/// As [`Recipe::quantize_weight`], without the lookup.
///
/// [`Recipe::quantize_weight`]: super::Recipe::quantize_weight
pub fn quantize_weight_with(
    scheme: &WeightScheme,
    name: &str,
    data: &[f32],
    shape: &[usize],
) -> Result<(QuantizedWeight, LayerReport), Error> {
    check_finite(data, "weight")?;
    let mut y = vec![0f32; data.len()];
    let q = match scheme {
        WeightScheme::Keep => {
            WeightScheme::granularity(WeightGranularity::PerTensor, data.len(), shape)?;
            y.copy_from_slice(data);
            QuantizedWeight::Kept(data.to_vec())
        }
        WeightScheme::Int {
            bits,
            symmetric,
            granularity,
        } => {
            let g = WeightScheme::granularity(*granularity, data.len(), shape)?;
            let q = if *symmetric {
                let z = AbsmaxQuantizer::new(*bits, g)?;
                let q = z.quantize(data)?;
                z.dequantize_into(&q, &mut y)?;
                q
            } else {
                let z = AffineQuantizer::new(*bits, g)?;
                let q = z.quantize(data)?;
                z.dequantize_into(&q, &mut y)?;
                q
            };
            QuantizedWeight::Int(q)
        }
        WeightScheme::Float { format, scaled } => {
            WeightScheme::granularity(WeightGranularity::PerTensor, data.len(), shape)?;
            let amax = data.iter().fold(0f32, |m, v| m.max(v.abs()));
            // A scale that underflows f32 (amax below ~1e-36 for FP8) falls back to 1.
            let s = (f64::from(amax) / format.max()) as f32;
            let scale = if *scaled && s > 0.0 && s.is_normal() { s } else { 1.0 };
            let codes = cast(*format, data, scale, &mut y);
            QuantizedWeight::Float {
                format: *format,
                codes,
                scale,
                scaled: *scaled,
            }
        }
        WeightScheme::Bnb4 {
            quant_type,
            block,
            double_quant,
        } => {
            WeightScheme::granularity(WeightGranularity::PerTensor, data.len(), shape)?;
            let (packed, state) = bnb::quantize_4bit(data, *block, *quant_type, *double_quant)?;
            bnb::dequantize_4bit_into(&packed, &state, &mut y)?;
            QuantizedWeight::Bnb4 { packed, state }
        }
        WeightScheme::Custom(z) => {
            WeightScheme::granularity(WeightGranularity::PerTensor, data.len(), shape)?;
            QuantizedWeight::Int(quantize_with_quantizer(z.as_ref(), data, &mut y)?)
        }
        WeightScheme::Mx { element, rule } => {
            WeightScheme::granularity(WeightGranularity::PerTensor, data.len(), shape)?;
            let z = MxQuantizer::new(*element, *rule)?;
            QuantizedWeight::Int(quantize_with_quantizer(&z, data, &mut y)?)
        }
        WeightScheme::Nvfp4 { tensor_scale } => {
            WeightScheme::granularity(WeightGranularity::PerTensor, data.len(), shape)?;
            let z = Nvfp4Quantizer::new(*tensor_scale)?;
            QuantizedWeight::Int(quantize_with_quantizer(&z, data, &mut y)?)
        }
    };
    let mut e = ErrStats::default();
    e.add(data, &y);
    let bytes_after = q.size_bytes();
    Ok((
        q,
        LayerReport {
            name: name.to_string(),
            kind: TensorKind::Weight,
            scheme: scheme.describe(),
            elements: data.len(),
            bytes_before: 4 * data.len(),
            bytes_after,
            bits_per_element: bits_per(bytes_after, data.len()),
            mse: e.mse(),
            signal_power: e.power(),
            sqnr_db: e.sqnr(),
            max_abs_error: e.metrics.max_abs_error(),
            range: None,
            clipped_fraction: None,
        },
    ))
}
