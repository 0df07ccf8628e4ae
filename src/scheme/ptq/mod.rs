//! Post-training quantization: recipes that map layer names to schemes, weight quantization,
//! activation calibration, and a per-layer report.
//!
//! A [`Recipe`] holds two ordered lists of rules, one for weights and one for activations.
//! A rule's [`Pattern`] is an exact layer name or a glob (`*` matches any run of characters,
//! `?` one character); the first matching rule wins, so one model can mix precisions (keep the
//! embeddings in f16, quantize the attention to int8 per channel and the FFN to int4 blocks).
//!
//! - Weights are quantized directly: [`Recipe::quantize_weight`] /
//!   [`Recipe::quantize_weights`]. A [`WeightScheme`] is integer absmax/affine quantization
//!   per tensor, per output channel or per block (through [`crate::quant`]), bitsandbytes'
//!   NF4/FP4 with optional double quantization ([`crate::compat::bnb`]), a cast to a float
//!   format with an optional per-tensor scale (FP8 E4M3/E5M2, f16, bf16), any
//!   [`Quantizer`] of your own, or "keep in f32".
//! - Activations get their ranges from calibration data fed batch by batch:
//!   [`Recipe::calibration`] returns a [`Calibration`] that routes each layer's batches to its
//!   own [`Calibrator`]; [`Calibration::finish`] turns the ranges into integer parameters
//!   ([`ActivationQuant`]) for the rule's bit width, and [`ActivationQuant::evaluate`] measures
//!   the error (and the fraction of values clipped) on data you pass.
//! - Every step yields a [`LayerReport`]; a [`Report`] prints as an aligned table.
//!
//! [`crate::scheme::tflite`] has the TensorFlow Lite converter's presets as recipes.
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, Recipe, WeightGranularity, WeightScheme};
//!
//! let recipe = Recipe::new()
//!     .weights("*.attention.*", WeightScheme::int(8, WeightGranularity::PerChannel)?)
//!     .weights("*", WeightScheme::int(4, WeightGranularity::PerBlock(32))?)
//!     .activations("*", ActivationScheme::new(CalibratorKind::MinMax, 8, false)?);
//!
//! let w: Vec<f32> = (0..64 * 32).map(|i| ((i * 7 % 61) as f32 - 30.0) / 40.0).collect();
//! let (qw, report) = recipe.quantize_weight("layer.0.attention.query.weight", &w, &[64, 32])?;
//! assert_eq!(report.bits_per_element, 8.0 + 32.0 / 32.0); // int8 + one f32 scale per row
//! assert!(report.sqnr_db > 40.0);
//! let y = qw.dequantize()?;
//! assert_eq!(y.len(), w.len());
//!
//! let mut cal = recipe.calibration();
//! cal.observe("layer.0.attention.query", &[0.5, -1.0, 2.0])?;
//! let acts = cal.finish()?;
//! let q = &acts["layer.0.attention.query"];
//! assert_eq!(q.range().max, 2.0);
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::fake_quant::{self, IntParams};
use super::{check_finite, Error};
use crate::calib::{Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, Range};
use crate::compat::bnb::{self, Absmax, QuantState, QuantType};
use crate::format::{FloatFormat, Options, Overflow, Rounding};
use crate::quant::{AbsmaxQuantizer, AffineQuantizer, Granularity, QParams, QRange, Quantized, Quantizer, TORCH_EPS};
use crate::{Bf16, Fp16, E4M3, E5M2};

/// A layer-name pattern: an exact name, or a glob with `*` (any run) and `?` (one character).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Matches this name only.
    Exact(String),
    /// A glob.
    Glob(String),
}

impl Pattern {
    /// A glob when the text holds `*` or `?`, else an exact name.
    pub fn parse(text: &str) -> Pattern {
        if text.contains(['*', '?']) {
            Pattern::Glob(text.to_string())
        } else {
            Pattern::Exact(text.to_string())
        }
    }

    /// Whether `name` matches.
    ///
    /// ```
    /// use lowbit::scheme::ptq::Pattern;
    /// assert!(Pattern::parse("encoder.layer.*.attention.*").matches("encoder.layer.3.attention.self.query"));
    /// assert!(!Pattern::parse("encoder.layer.?.output").matches("encoder.layer.10.output"));
    /// assert!(Pattern::parse("pooler").matches("pooler"));
    /// ```
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(e) => e == name,
            Pattern::Glob(g) => glob(g.as_bytes(), name.as_bytes()),
        }
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Exact(s) | Pattern::Glob(s) => s,
        }
    }
}

/// Iterative glob match with backtracking to the last `*` (linear in practice).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// How a weight's elements are grouped for integer quantization.
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

/// A float format a weight can be cast to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatCast {
    /// IEEE half precision.
    Fp16,
    /// bfloat16.
    Bf16,
    /// OCP FP8 E4M3 (`float8_e4m3fn`).
    E4M3,
    /// OCP FP8 E5M2.
    E5M2,
}

impl FloatCast {
    /// Largest finite value of the format.
    pub fn max(self) -> f64 {
        match self {
            FloatCast::Fp16 => Fp16::MAX,
            FloatCast::Bf16 => Bf16::MAX,
            FloatCast::E4M3 => E4M3::MAX,
            FloatCast::E5M2 => E5M2::MAX,
        }
    }
    /// Bits per code.
    pub fn bits(self) -> u32 {
        match self {
            FloatCast::Fp16 | FloatCast::Bf16 => 16,
            FloatCast::E4M3 | FloatCast::E5M2 => 8,
        }
    }
    /// The ml_dtypes / torch name.
    pub fn name(self) -> &'static str {
        match self {
            FloatCast::Fp16 => Fp16::NAME,
            FloatCast::Bf16 => Bf16::NAME,
            FloatCast::E4M3 => E4M3::NAME,
            FloatCast::E5M2 => E5M2::NAME,
        }
    }

    /// Encode `x / scale` (saturating, nearest-even) into little-endian code bytes, and the
    /// decoded values times `scale` into `y`.
    fn cast(self, x: &[f32], scale: f32, y: &mut [f32]) -> Vec<u8> {
        fn run<F: FloatFormat>(x: &[f32], scale: f32, y: &mut [f32]) -> Vec<u8> {
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
        match self {
            FloatCast::Fp16 => run::<Fp16>(x, scale, y),
            FloatCast::Bf16 => run::<Bf16>(x, scale, y),
            FloatCast::E4M3 => run::<E4M3>(x, scale, y),
            FloatCast::E5M2 => run::<E5M2>(x, scale, y),
        }
    }

    fn decode(self, codes: &[u8], scale: f32, y: &mut [f32]) {
        fn run<F: FloatFormat>(codes: &[u8], scale: f32, y: &mut [f32]) {
            use crate::format::Code;
            let w = F::BITS.div_ceil(8) as usize;
            for (c, y) in codes.chunks_exact(w).zip(y.iter_mut()) {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                *y = F::decode_f32(F::Code::from_u64(u64::from_le_bytes(b))) * scale;
            }
        }
        match self {
            FloatCast::Fp16 => run::<Fp16>(codes, scale, y),
            FloatCast::Bf16 => run::<Bf16>(codes, scale, y),
            FloatCast::E4M3 => run::<E4M3>(codes, scale, y),
            FloatCast::E5M2 => run::<E5M2>(codes, scale, y),
        }
    }
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
        format: FloatCast,
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
            WeightScheme::Custom(q) => format!("custom {}-bit {:?}", q.bits(), q.granularity()),
        }
    }

    fn granularity(g: WeightGranularity, len: usize, shape: &[usize]) -> Result<Granularity, Error> {
        let numel: usize = shape.iter().product();
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
        format: FloatCast,
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
            QuantizedWeight::Bnb4 { state, .. } => state.len,
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
                    + match &state.absmax {
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
            } => format.decode(codes, *scale, &mut y),
        }
        Ok(y)
    }
}

fn dequantize_int(q: &Quantized, y: &mut [f32]) -> Result<(), Error> {
    use crate::quant::Scheme;
    match q.scheme() {
        Scheme::Affine => AffineQuantizer::new(q.bits(), q.granularity())?.dequantize_into(q, y)?,
        _ => AbsmaxQuantizer::new(q.bits(), q.granularity())?.dequantize_into(q, y)?,
    }
    Ok(())
}

/// Which calibrator an activation rule uses.
#[derive(Clone)]
pub enum CalibratorKind {
    /// [`MinMaxCalibrator`]: the observed minimum and maximum.
    MinMax,
    /// [`HistogramCalibrator`] with this method (symmetric or not as the rule says).
    Histogram(Method),
    /// Any calibrator, built fresh for each layer.
    Custom(Arc<dyn Fn() -> Box<dyn Calibrator + Send> + Send + Sync>),
}

impl fmt::Debug for CalibratorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalibratorKind::MinMax => f.write_str("minmax"),
            CalibratorKind::Histogram(m) => write!(f, "histogram {m:?}"),
            CalibratorKind::Custom(_) => f.write_str("custom"),
        }
    }
}

/// How an activation is quantized: a calibrator and an integer bit width.
#[derive(Clone, Debug)]
pub struct ActivationScheme {
    calibrator: CalibratorKind,
    bits: u32,
    symmetric: bool,
}

impl ActivationScheme {
    /// `bits` in `2..=16`; symmetric (zero point 0, codes `±(2^(bits-1) - 1)`) or affine
    /// (unsigned codes `0..2^bits` with a zero point, torch.ao's qparams).
    ///
    /// # Errors
    /// [`Error::Bits`] outside `2..=16`.
    pub fn new(calibrator: CalibratorKind, bits: u32, symmetric: bool) -> Result<Self, Error> {
        if !(2..=16).contains(&bits) {
            return Err(Error::Bits { bits, min: 2, max: 16 });
        }
        Ok(ActivationScheme {
            calibrator,
            bits,
            symmetric,
        })
    }

    /// Bits per activation code.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Whether the codes are symmetric.
    pub fn symmetric(&self) -> bool {
        self.symmetric
    }

    fn build(&self) -> Box<dyn Calibrator + Send> {
        match &self.calibrator {
            CalibratorKind::MinMax => Box::new(MinMaxCalibrator::new()),
            CalibratorKind::Histogram(m) => Box::new(HistogramCalibrator::new(*m).with_symmetric(self.symmetric)),
            CalibratorKind::Custom(f) => f(),
        }
    }

    /// Integer parameters for a calibrated range.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a range that is not finite.
    pub fn params(&self, range: Range) -> Result<IntParams, Error> {
        if !(range.min.is_finite() && range.max.is_finite()) || range.min > range.max {
            return Err(Error::Parameter {
                name: "range",
                value: f64::from(range.max),
                why: "must be finite with min <= max",
            });
        }
        if self.symmetric {
            let q = (1i32 << (self.bits - 1)) - 1;
            let p = QParams::torch_symmetric(range.min, range.max, QRange::new(-q, q)?, TORCH_EPS);
            IntParams::symmetric(self.bits, p.scale)
        } else {
            let r = QRange::new(0, (1i32 << self.bits) - 1)?;
            let p = QParams::torch_affine(range.min, range.max, r, TORCH_EPS);
            IntParams::affine(self.bits, p.scale, p.zero_point)
        }
    }

    fn describe(&self) -> String {
        format!(
            "a{} {} {:?}",
            self.bits,
            if self.symmetric { "sym" } else { "affine" },
            self.calibrator
        )
    }
}

/// Layer names to schemes, first matching rule first.
#[derive(Clone, Debug, Default)]
pub struct Recipe {
    weights: Vec<(Pattern, WeightScheme)>,
    activations: Vec<(Pattern, ActivationScheme)>,
}

/// Whether a report row is about a weight or an activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A weight, quantized directly.
    Weight,
    /// An activation, quantized with a calibrated range.
    Activation,
}

/// One row of a [`Report`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    /// Layer (tensor) name.
    pub name: String,
    /// Weight or activation.
    pub kind: TensorKind,
    /// The scheme, as [`WeightScheme::describe`] prints it.
    pub scheme: String,
    /// Elements measured.
    pub elements: usize,
    /// Bytes in f32.
    pub bytes_before: usize,
    /// Bytes stored after quantization (codes, scales, zero points).
    pub bytes_after: usize,
    /// `8 · bytes_after / elements`.
    pub bits_per_element: f64,
    /// Mean squared error, `Σ(x - x')² / n`.
    pub mse: f64,
    /// Mean signal power, `Σx² / n` (so `sqnr_db = 10 log10(signal_power / mse)`).
    pub signal_power: f64,
    /// Signal-to-quantization-noise ratio, `10 log10(Σx² / Σ(x - x')²)` dB (infinite when exact).
    pub sqnr_db: f64,
    /// Largest `|x - x'|`.
    pub max_abs_error: f32,
    /// The calibrated range (activations).
    pub range: Option<Range>,
    /// Fraction of the values outside the range, clipped (activations).
    pub clipped_fraction: Option<f64>,
}

/// Running error sums.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ErrStats {
    n: usize,
    signal: f64,
    noise: f64,
    max: f32,
    clipped: usize,
}

impl ErrStats {
    fn add(&mut self, x: &[f32], y: &[f32]) {
        for (&a, &b) in x.iter().zip(y) {
            let e = f64::from(a) - f64::from(b);
            self.signal += f64::from(a) * f64::from(a);
            self.noise += e * e;
            self.max = self.max.max((a - b).abs());
        }
        self.n += x.len();
    }
    fn mse(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.noise / self.n as f64
        }
    }
    fn power(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.signal / self.n as f64
        }
    }
    fn sqnr(&self) -> f64 {
        sqnr_db(self.signal, self.noise)
    }
}

fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

impl Recipe {
    /// An empty recipe (every lookup is an unknown layer until rules are added).
    pub fn new() -> Self {
        Recipe::default()
    }

    /// Add a weight rule (after the existing ones). `pattern` is parsed by [`Pattern::parse`].
    pub fn weights(mut self, pattern: &str, scheme: WeightScheme) -> Self {
        self.weights.push((Pattern::parse(pattern), scheme));
        self
    }

    /// Add an activation rule.
    pub fn activations(mut self, pattern: &str, scheme: ActivationScheme) -> Self {
        self.activations.push((Pattern::parse(pattern), scheme));
        self
    }

    /// The weight rules, in order.
    pub fn weight_rules(&self) -> &[(Pattern, WeightScheme)] {
        &self.weights
    }

    /// The activation rules, in order.
    pub fn activation_rules(&self) -> &[(Pattern, ActivationScheme)] {
        &self.activations
    }

    /// The scheme of a weight.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] when no rule matches.
    pub fn weight_scheme(&self, name: &str) -> Result<&WeightScheme, Error> {
        self.weights
            .iter()
            .find(|(p, _)| p.matches(name))
            .map(|(_, s)| s)
            .ok_or_else(|| Error::UnknownLayer { name: name.into() })
    }

    /// The scheme of an activation.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] when no rule matches.
    pub fn activation_scheme(&self, name: &str) -> Result<&ActivationScheme, Error> {
        self.activations
            .iter()
            .find(|(p, _)| p.matches(name))
            .map(|(_, s)| s)
            .ok_or_else(|| Error::UnknownLayer { name: name.into() })
    }

    /// Quantize one weight of the given shape with its rule.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] when no rule matches, [`Error::Shape`] when the shape does not
    /// hold `data.len()` elements, [`Error::NonFinite`] for a NaN or infinity, and the
    /// quantizer's errors ([`Error::Quant`]).
    pub fn quantize_weight(
        &self,
        name: &str,
        data: &[f32],
        shape: &[usize],
    ) -> Result<(QuantizedWeight, LayerReport), Error> {
        let scheme = self.weight_scheme(name)?;
        quantize_weight_with(scheme, name, data, shape)
    }

    /// Quantize many weights (`(name, data, shape)`), in order. Every exact-name rule must
    /// match one of them, so a typo in a recipe is an error rather than a silent no-op.
    ///
    /// # Errors
    /// As [`quantize_weight`](Self::quantize_weight); [`Error::UnknownLayer`] naming an exact
    /// rule that matched no tensor.
    pub fn quantize_weights<'a, I>(&self, tensors: I) -> Result<(Vec<(String, QuantizedWeight)>, Report), Error>
    where
        I: IntoIterator<Item = (&'a str, &'a [f32], &'a [usize])>,
    {
        let mut out = Vec::new();
        let mut report = Report::default();
        let mut seen = vec![false; self.weights.len()];
        for (name, data, shape) in tensors {
            for ((p, _), seen) in self.weights.iter().zip(seen.iter_mut()) {
                *seen |= p.matches(name);
            }
            let (q, r) = self.quantize_weight(name, data, shape)?;
            out.push((name.to_string(), q));
            report.layers.push(r);
        }
        for ((p, _), s) in self.weights.iter().zip(&seen) {
            if let (Pattern::Exact(e), false) = (p, s) {
                return Err(Error::UnknownLayer { name: e.clone() });
            }
        }
        Ok((out, report))
    }

    /// Start calibrating activations.
    pub fn calibration(&self) -> Calibration<'_> {
        Calibration {
            recipe: self,
            layers: BTreeMap::new(),
        }
    }
}

/// Quantize one weight with a given scheme (what [`Recipe::quantize_weight`] does after the
/// lookup).
///
/// # Errors
/// As [`Recipe::quantize_weight`], without the lookup.
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
            let codes = format.cast(data, scale, &mut y);
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
            let q = z.quantize(data)?;
            z.dequantize_into(&q, &mut y)?;
            QuantizedWeight::Int(q)
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
            max_abs_error: e.max,
            range: None,
            clipped_fraction: None,
        },
    ))
}

fn bits_per(bytes: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        8.0 * bytes as f64 / n as f64
    }
}

/// Activation calibration in progress: one calibrator per layer, created on the layer's first
/// batch from the rule that matches it.
pub struct Calibration<'r> {
    recipe: &'r Recipe,
    layers: BTreeMap<String, (Box<dyn Calibrator + Send>, &'r ActivationScheme)>,
}

impl fmt::Debug for Calibration<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calibration")
            .field("layers", &self.layers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Calibration<'_> {
    /// Feed one batch of a layer's input activations.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] when no activation rule matches the name; the calibrator's
    /// errors ([`Error::Calib`], e.g. a NaN in the batch).
    pub fn observe(&mut self, layer: &str, batch: &[f32]) -> Result<(), Error> {
        if !self.layers.contains_key(layer) {
            let s = self.recipe.activation_scheme(layer)?;
            self.layers.insert(layer.to_string(), (s.build(), s));
        }
        let (c, _) = self.layers.get_mut(layer).expect("inserted above");
        c.observe(batch)?;
        Ok(())
    }

    /// Compute every observed layer's range and integer parameters.
    ///
    /// # Errors
    /// [`Error::EmptyCalibration`] for a layer that saw only empty batches, or for an
    /// exact-name activation rule that never saw a batch; [`Error::Calib`] for the
    /// calibrator's other errors.
    pub fn finish(self) -> Result<BTreeMap<String, ActivationQuant>, Error> {
        for (p, _) in &self.recipe.activations {
            if let Pattern::Exact(e) = p {
                if !self.layers.contains_key(e) {
                    return Err(Error::EmptyCalibration { layer: e.clone() });
                }
            }
        }
        let mut out = BTreeMap::new();
        for (name, (c, s)) in self.layers {
            let range = match c.range() {
                Ok(r) => r,
                Err(crate::calib::Error::NoData) => return Err(Error::EmptyCalibration { layer: name }),
                Err(e) => return Err(e.into()),
            };
            let params = s.params(range)?;
            out.insert(
                name.clone(),
                ActivationQuant {
                    name,
                    scheme: s.describe(),
                    bits: s.bits,
                    range,
                    params,
                    stats: ErrStats::default(),
                },
            );
        }
        Ok(out)
    }
}

/// A calibrated activation: its range, integer parameters and the error measured so far.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationQuant {
    name: String,
    scheme: String,
    bits: u32,
    range: Range,
    params: IntParams,
    stats: ErrStats,
}

impl ActivationQuant {
    /// The calibrated range.
    pub fn range(&self) -> Range {
        self.range
    }
    /// The integer parameters (scale, zero point, code range) for that range.
    pub fn params(&self) -> &IntParams {
        &self.params
    }
    /// Bits per code.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Fake-quantize `x` into `y` with these parameters.
    ///
    /// # Errors
    /// As [`fake_quant::forward`].
    pub fn fake_quantize(&self, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        fake_quant::forward(x, &self.params, y)
    }

    /// Quantize a batch of this layer's activations and add its error to the layer's statistics
    /// (for the report). Evaluate on the calibration data, or better on held-out data.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinity.
    pub fn evaluate(&mut self, batch: &[f32]) -> Result<(), Error> {
        let mut y = vec![0f32; batch.len()];
        let clipped = fake_quant::forward_counting_clipped(batch, &self.params, &mut y)?;
        self.stats.add(batch, &y);
        self.stats.clipped += clipped;
        Ok(())
    }

    /// The report row for the data evaluated so far.
    pub fn report(&self) -> LayerReport {
        let n = self.stats.n;
        let bytes_after = (n * self.bits as usize).div_ceil(8);
        LayerReport {
            name: self.name.clone(),
            kind: TensorKind::Activation,
            scheme: self.scheme.clone(),
            elements: n,
            bytes_before: 4 * n,
            bytes_after,
            bits_per_element: bits_per(bytes_after, n),
            mse: self.stats.mse(),
            signal_power: self.stats.power(),
            sqnr_db: self.stats.sqnr(),
            max_abs_error: self.stats.max,
            range: Some(self.range),
            clipped_fraction: Some(if n == 0 {
                0.0
            } else {
                self.stats.clipped as f64 / n as f64
            }),
        }
    }
}

/// A per-layer report, as data ([`Report::layers`]) or an aligned table (`Display`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One row per layer, in the order they were quantized.
    pub layers: Vec<LayerReport>,
}

impl Report {
    /// Total f32 bytes over the weight rows.
    pub fn weight_bytes_before(&self) -> usize {
        self.weights().map(|l| l.bytes_before).sum()
    }
    /// Total stored bytes over the weight rows.
    pub fn weight_bytes_after(&self) -> usize {
        self.weights().map(|l| l.bytes_after).sum()
    }
    /// SQNR over all weight elements together (total signal over total noise), dB.
    pub fn weight_sqnr_db(&self) -> f64 {
        let n = |l: &LayerReport| l.elements as f64;
        let signal: f64 = self.weights().map(|l| l.signal_power * n(l)).sum();
        let noise: f64 = self.weights().map(|l| l.mse * n(l)).sum();
        sqnr_db(signal, noise)
    }
    fn weights(&self) -> impl Iterator<Item = &LayerReport> {
        self.layers.iter().filter(|l| l.kind == TensorKind::Weight)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = [
            "layer",
            "kind",
            "scheme",
            "elements",
            "bytes f32",
            "bytes q",
            "bits/el",
            "MSE",
            "SQNR dB",
            "max |err|",
            "range",
            "clipped",
        ];
        let mut rows: Vec<[String; 12]> = Vec::new();
        for l in &self.layers {
            rows.push([
                l.name.clone(),
                match l.kind {
                    TensorKind::Weight => "weight".into(),
                    TensorKind::Activation => "act".into(),
                },
                l.scheme.clone(),
                l.elements.to_string(),
                l.bytes_before.to_string(),
                l.bytes_after.to_string(),
                format!("{:.3}", l.bits_per_element),
                format!("{:.3e}", l.mse),
                format!("{:.2}", l.sqnr_db),
                format!("{:.3e}", l.max_abs_error),
                l.range.map_or("-".into(), |r| format!("[{:.4}, {:.4}]", r.min, r.max)),
                l.clipped_fraction.map_or("-".into(), |c| format!("{:.4}%", 100.0 * c)),
            ]);
        }
        let wb = self.weight_bytes_before();
        if wb > 0 {
            let wa = self.weight_bytes_after();
            let n: usize = self.weights().map(|l| l.elements).sum();
            let maxe = self.weights().map(|l| l.max_abs_error).fold(0f32, f32::max);
            let mse = self.weights().map(|l| l.mse * l.elements as f64).sum::<f64>() / n.max(1) as f64;
            rows.push([
                "total (weights)".into(),
                "".into(),
                format!("{:.2}x smaller", wb as f64 / wa.max(1) as f64),
                n.to_string(),
                wb.to_string(),
                wa.to_string(),
                format!("{:.3}", bits_per(wa, n)),
                format!("{:.3e}", mse),
                format!("{:.2}", self.weight_sqnr_db()),
                format!("{:.3e}", maxe),
                "-".into(),
                "-".into(),
            ]);
        }
        let mut w = head.map(str::len);
        for r in &rows {
            for (w, c) in w.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            for (i, (c, w)) in cells.iter().zip(&w).enumerate() {
                let sep = if i == 0 { "" } else { "  " };
                // Text columns left-aligned, numbers right-aligned.
                if i < 3 {
                    write!(f, "{sep}{c:<w$}")?;
                } else {
                    write!(f, "{sep}{c:>w$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &head)?;
        let rule: Vec<String> = w.iter().map(|&n| "-".repeat(n)).collect();
        line(f, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
        for r in &rows {
            line(f, &r.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| Pattern::parse(p).matches(s);
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*.weight", "encoder.layer.0.attention.self.query.weight"));
        assert!(!m("*.weight", "x.bias"));
        assert!(m("l?.w", "l1.w"));
        assert!(!m("l?.w", "l12.w"));
        assert!(m("**x", "abx"));
    }

    #[test]
    fn impossible_widths_and_unknown_layers() {
        assert!(matches!(
            WeightScheme::int(1, WeightGranularity::PerTensor),
            Err(Error::Bits { .. })
        ));
        assert!(matches!(
            WeightScheme::int(9, WeightGranularity::PerTensor),
            Err(Error::Bits { .. })
        ));
        assert!(WeightScheme::int_with(1, false, WeightGranularity::PerTensor).is_ok());
        assert!(matches!(
            WeightScheme::int(4, WeightGranularity::PerBlock(0)),
            Err(Error::Parameter { .. })
        ));
        assert!(matches!(
            ActivationScheme::new(CalibratorKind::MinMax, 17, true),
            Err(Error::Bits { .. })
        ));
        assert!(matches!(
            ActivationScheme::new(CalibratorKind::MinMax, 1, true),
            Err(Error::Bits { .. })
        ));
        let r = Recipe::new().weights("a.weight", WeightScheme::Keep);
        assert!(matches!(
            r.quantize_weight("b.weight", &[1.0], &[1]),
            Err(Error::UnknownLayer { .. })
        ));
        assert!(matches!(
            r.quantize_weight("a.weight", &[1.0], &[2]),
            Err(Error::Shape { .. })
        ));
        let mut c = r.calibration();
        assert!(matches!(c.observe("a", &[1.0]), Err(Error::UnknownLayer { .. })));
    }
}
