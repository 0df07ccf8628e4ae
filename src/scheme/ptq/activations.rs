//! Activations: how a rule calibrates and quantizes them, the calibration in progress
//! ([`Calibration`]) and its result per layer ([`ActivationQuant`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::report::{bits_per, ErrStats, LayerReport, TensorKind};
use super::{Pattern, Recipe};
use crate::calib::{Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, Range};
use crate::compat::ort::QuantType;
use crate::quant::{QParams, QRange, TORCH_EPS};
use crate::scheme::fake_quant::{self, IntParams};
use crate::scheme::Error;

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

/// Whose formulas turn a calibrated range into a scale and a zero point.
///
/// # Examples
///
/// ```
/// use lowbit::calib::Range;
/// use lowbit::compat::ort::QuantType;
/// use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, QParamsFlavour};
///
/// let r = Range { min: -10.68, max: 10.68 };
/// let torch = ActivationScheme::new(CalibratorKind::MinMax, 8, true)?;
/// let ort = torch.clone().with_flavour(QParamsFlavour::Ort {
///     qtype: QuantType::QUInt8,
///     reduce_range: false,
/// })?;
/// // torch.ao: signed codes ±127, zero point 0; ONNX Runtime's ActivationSymmetric on
/// // uint8: codes 0..=255 around 128.
/// assert_eq!(torch.params(r)?.zero_point(), 0);
/// assert_eq!(ort.params(r)?.zero_point(), 128);
/// assert_eq!((ort.params(r)?.qmin(), ort.params(r)?.qmax()), (0, 255));
/// # Ok::<(), lowbit::SchemeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QParamsFlavour {
    /// torch.ao's (`MinMaxObserver`): symmetric codes `±(2^(bits-1) - 1)` with zero point 0,
    /// or unsigned codes `0..2^bits` with a zero point, the scale in `f32` (at least torch's
    /// `eps`).
    #[default]
    Torch,
    /// ONNX Runtime's QDQ quantizer ([`crate::compat::ort::qparams`]) for codes of type
    /// `qtype`, whose width must be the scheme's bits; the scheme's `symmetric` is ONNX
    /// Runtime's `ActivationSymmetric`. The codes span the whole type (as ONNX Runtime's
    /// `QuantizeLinear` saturates), also with `reduce_range`, which narrows only the range the
    /// scale is computed for. The scale and zero point are ONNX Runtime's to the bit; fake
    /// quantization multiplies by `1 / scale` as torch does, where ONNX Runtime divides by
    /// the scale, so a value within an ulp of a rounding tie may land one code apart.
    Ort {
        /// The code type (`activation_type`).
        qtype: QuantType,
        /// `reduce_range` (a per-tensor override in ONNX Runtime; `false` by default).
        reduce_range: bool,
    },
}

/// How an activation is quantized: a calibrator, an integer bit width, and whose formulas
/// give the scale and zero point ([`QParamsFlavour`], torch.ao's unless set).
#[derive(Clone, Debug)]
pub struct ActivationScheme {
    calibrator: CalibratorKind,
    bits: u32,
    symmetric: bool,
    flavour: QParamsFlavour,
}

impl ActivationScheme {
    /// `bits` in `2..=16`; symmetric (zero point 0, codes `±(2^(bits-1) - 1)`) or affine
    /// (unsigned codes `0..2^bits` with a zero point, torch.ao's qparams).
    ///
    /// # Errors
    /// [`Error::Bits`] outside `2..=16`; [`Error::Calib`] for a histogram method that
    /// [`HistogramCalibrator::new`] refuses (a percentile outside `(0, 100]`, a bad bit width).
    pub fn new(calibrator: CalibratorKind, bits: u32, symmetric: bool) -> Result<Self, Error> {
        if !(2..=16).contains(&bits) {
            return Err(Error::Bits { bits, min: 2, max: 16 });
        }
        if let CalibratorKind::Histogram(m) = &calibrator {
            HistogramCalibrator::new(*m)?;
        }
        Ok(ActivationScheme {
            calibrator,
            bits,
            symmetric,
            flavour: QParamsFlavour::Torch,
        })
    }

    /// The same scheme with the scale and zero point computed in another flavour.
    ///
    /// # Errors
    /// [`Error::Parameter`] for [`QParamsFlavour::Ort`] with a type whose width is not the
    /// scheme's bits.
    pub fn with_flavour(mut self, flavour: QParamsFlavour) -> Result<Self, Error> {
        if let QParamsFlavour::Ort { qtype, .. } = flavour {
            if qtype.bits() != self.bits {
                return Err(Error::Parameter {
                    name: "qtype",
                    value: f64::from(qtype.bits()),
                    why: "the ONNX Runtime type must have as many bits as the scheme",
                });
            }
        }
        self.flavour = flavour;
        Ok(self)
    }

    /// Whose formulas give the scale and zero point.
    pub fn flavour(&self) -> QParamsFlavour {
        self.flavour
    }

    /// Bits per activation code.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Whether the codes are symmetric.
    pub fn symmetric(&self) -> bool {
        self.symmetric
    }

    pub(super) fn build(&self) -> Result<LayerCalibrator, Error> {
        Ok(match &self.calibrator {
            CalibratorKind::MinMax => LayerCalibrator::MinMax(MinMaxCalibrator::new()),
            CalibratorKind::Histogram(m) => {
                LayerCalibrator::Histogram(Box::new(HistogramCalibrator::new(*m)?.with_symmetric(self.symmetric)))
            }
            CalibratorKind::Custom(f) => LayerCalibrator::Custom(f()),
        })
    }

    /// The configuration as bytes (calibrator, method, bits, symmetry, flavour), for the
    /// recipe fingerprint of a serialised [`Calibration`].
    pub(super) fn encode(&self, w: &mut crate::calib::bytes::Writer) {
        match &self.calibrator {
            CalibratorKind::MinMax => {
                w.u8(0);
            }
            CalibratorKind::Histogram(m) => {
                let (tag, bits, p) = m.encode();
                w.u8(1).u8(tag).u8(bits).f64(p);
            }
            CalibratorKind::Custom(_) => {
                w.u8(2);
            }
        }
        w.u8(self.bits as u8).u8(u8::from(self.symmetric));
        match self.flavour {
            QParamsFlavour::Torch => {
                w.u8(0);
            }
            QParamsFlavour::Ort { qtype, reduce_range } => {
                // The declaration order, which is `QuantType::ALL`'s.
                w.u8(1).u8(qtype as u8).u8(u8::from(reduce_range));
            }
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
        if let QParamsFlavour::Ort { qtype, reduce_range } = self.flavour {
            let q = crate::compat::ort::qparams(range, qtype, self.symmetric, reduce_range)?;
            let (lo, hi) = qtype.full_range();
            return IntParams::new(q.scale, q.zero_point, lo, hi);
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
        let flavour = match self.flavour {
            QParamsFlavour::Torch => String::new(),
            QParamsFlavour::Ort { qtype, reduce_range } => {
                format!(" ort {}{}", qtype.name(), if reduce_range { " reduced" } else { "" })
            }
        };
        format!(
            "a{} {} {:?}{flavour}",
            self.bits,
            if self.symmetric { "sym" } else { "affine" },
            self.calibrator
        )
    }
}

/// A layer's calibrator: the kinds of [`CalibratorKind`], with the concrete types of the
/// built-in ones so that they can be merged and read back from bytes.
pub(super) enum LayerCalibrator {
    MinMax(MinMaxCalibrator),
    Histogram(Box<HistogramCalibrator>),
    Custom(Box<dyn Calibrator + Send>),
}

impl LayerCalibrator {
    pub(super) fn observe(&mut self, batch: &[f32]) -> Result<(), crate::calib::Error> {
        match self {
            LayerCalibrator::MinMax(c) => c.observe(batch),
            LayerCalibrator::Histogram(c) => c.observe(batch),
            LayerCalibrator::Custom(c) => c.observe(batch),
        }
    }

    pub(super) fn range(&self) -> Result<Range, crate::calib::Error> {
        match self {
            LayerCalibrator::MinMax(c) => c.range(),
            LayerCalibrator::Histogram(c) => c.range(),
            LayerCalibrator::Custom(c) => c.range(),
        }
    }
}

/// One calibrated layer: its calibrator and the rule's scheme.
pub(super) struct Layer<'r> {
    pub(super) cal: LayerCalibrator,
    pub(super) scheme: &'r ActivationScheme,
}

/// Activation calibration in progress: one calibrator per layer, created on the layer's first
/// batch from the rule that matches it, in layer-name order.
///
/// A calibration whose calibrators are the built-in ones ([`CalibratorKind::MinMax`],
/// [`CalibratorKind::Histogram`]) can be written to bytes ([`to_bytes`](Self::to_bytes)),
/// read back for the same recipe ([`Recipe::calibration_from_bytes`]) and merged with the
/// calibration of another shard of the data ([`merge`](Self::merge)): calibrating shards
/// apart and merging gives the same ranges, and the same bytes, as calibrating all the data
/// in one `Calibration`, whatever the order.
pub struct Calibration<'r> {
    pub(super) recipe: &'r Recipe,
    pub(super) layers: BTreeMap<String, Layer<'r>>,
}

impl fmt::Debug for Calibration<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calibration")
            .field("layers", &self.layers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'r> Calibration<'r> {
    /// Feed one batch of a layer's input activations.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] when no activation rule matches the name; the calibrator's
    /// errors ([`Error::Calib`], e.g. a NaN in the batch).
    pub fn observe(&mut self, layer: &str, batch: &[f32]) -> Result<(), Error> {
        if !self.layers.contains_key(layer) {
            let scheme = self.recipe.activation_scheme(layer)?;
            let cal = scheme.build()?;
            self.layers.insert(layer.to_string(), Layer { cal, scheme });
        }
        let l = self.layers.get_mut(layer).expect("inserted above");
        l.cal.observe(batch)?;
        Ok(())
    }

    /// The recipe this calibration follows.
    pub fn recipe(&self) -> &'r Recipe {
        self.recipe
    }

    /// The layers that have seen a batch (possibly empty), in name order.
    pub fn layers(&self) -> impl Iterator<Item = &str> + '_ {
        self.layers.keys().map(String::as_str)
    }

    /// A layer's range so far.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] for a layer that has seen no batch, [`Error::EmptyCalibration`]
    /// for one that has seen only empty batches; the calibrator's other errors.
    pub fn range(&self, layer: &str) -> Result<Range, Error> {
        let l = self
            .layers
            .get(layer)
            .ok_or_else(|| Error::UnknownLayer { name: layer.into() })?;
        match l.cal.range() {
            Ok(r) => Ok(r),
            Err(crate::calib::Error::NoData) => Err(Error::EmptyCalibration { layer: layer.into() }),
            Err(e) => Err(e.into()),
        }
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
        for (name, Layer { cal, scheme: s }) in self.layers {
            let range = match cal.range() {
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
        let n = self.stats.metrics.count();
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
            max_abs_error: self.stats.metrics.max_abs_error(),
            range: Some(self.range),
            clipped_fraction: Some(if n == 0 {
                0.0
            } else {
                self.stats.clipped as f64 / n as f64
            }),
        }
    }
}
