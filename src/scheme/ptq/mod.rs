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
//!   ([`ActivationQuant`]) for the rule's bit width, in torch.ao's or ONNX Runtime's formulas
//!   ([`QParamsFlavour`]), and [`ActivationQuant::evaluate`] measures the error (and the
//!   fraction of values clipped) on data you pass. A [`Calibration`] is written to bytes
//!   ([`Calibration::to_bytes`]), read back ([`Recipe::calibration_from_bytes`]) and merged
//!   with another shard's ([`Calibration::merge`]), exactly, so that calibration can be
//!   spread over workers.
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
//!
//! [`Quantizer`]: crate::quant::Quantizer
//! [`Calibrator`]: crate::calib::Calibrator

// The pieces: `patterns` (layer-name matching), `weights` (weight schemes and quantization),
// `activations` (activation schemes and calibration), `state` (a calibration as bytes, and
// merging calibrations), `report` (the per-layer report and its table); this file holds the `Recipe` that ties them together.
mod activations;
mod patterns;
mod report;
mod state;
mod weights;

pub use activations::{ActivationQuant, ActivationScheme, Calibration, CalibratorKind, QParamsFlavour};
pub use patterns::Pattern;
pub use report::{LayerReport, Report, TensorKind};
pub use weights::{quantize_weight_with, QuantizedWeight, WeightGranularity, WeightScheme};

use std::collections::BTreeMap;

use super::Error;

/// Layer names to schemes, first matching rule first.
#[derive(Clone, Debug, Default)]
pub struct Recipe {
    weights: Vec<(Pattern, WeightScheme)>,
    activations: Vec<(Pattern, ActivationScheme)>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
