//! Activations: how a rule calibrates and quantizes them, the calibration in progress
//! ([`Calibration`]) and its result per layer ([`ActivationQuant`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::report::{bits_per, ErrStats, LayerReport, TensorKind};
use super::{Pattern, Recipe};
use crate::calib::{Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, Range};
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

    fn build(&self) -> Result<Box<dyn Calibrator + Send>, Error> {
        Ok(match &self.calibrator {
            CalibratorKind::MinMax => Box::new(MinMaxCalibrator::new()),
            CalibratorKind::Histogram(m) => Box::new(HistogramCalibrator::new(*m)?.with_symmetric(self.symmetric)),
            CalibratorKind::Custom(f) => f(),
        })
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

/// Activation calibration in progress: one calibrator per layer, created on the layer's first
/// batch from the rule that matches it.
pub struct Calibration<'r> {
    pub(super) recipe: &'r Recipe,
    pub(super) layers: BTreeMap<String, (Box<dyn Calibrator + Send>, &'r ActivationScheme)>,
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
            self.layers.insert(layer.to_string(), (s.build()?, s));
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
