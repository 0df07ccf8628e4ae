//! A whole model's calibration as bytes, and the merge of two calibrations: what a distributed
//! job needs to calibrate shards of the data apart and combine them exactly.

use std::collections::BTreeMap;

use super::activations::{Calibration, Layer, LayerCalibrator};
use super::{Pattern, Recipe};
use crate::calib::bytes::{Reader, Writer};
use crate::calib::{Calibrator, HistogramCalibrator, MinMaxCalibrator};
use crate::scheme::Error;

const MAGIC: &[u8; 4] = b"LBPC";
const VERSION: u8 = 1;

fn decode(why: &'static str) -> Error {
    Error::Calib(crate::calib::Error::Decode(why))
}

impl Recipe {
    /// The activation rules as bytes: what a serialised [`Calibration`] must have been made
    /// with. Weight rules do not take part.
    fn activation_fingerprint(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.activations.len() as u32);
        for (p, s) in &self.activations {
            let kind = match p {
                Pattern::Exact(_) => 0,
                Pattern::Glob(_) => 1,
            };
            w.u8(kind).u32(p.as_str().len() as u32).bytes(p.as_str().as_bytes());
            s.encode(&mut w);
        }
        w.0
    }

    /// Read back a [`Calibration::to_bytes`] state, for this recipe.
    ///
    /// Every field is checked, and memory is allocated in proportion to the input (a
    /// histogram's counts are kept sparse until more data is observed).
    ///
    /// # Errors
    /// [`Error::RecipeMismatch`] when the state was made with other activation rules (other
    /// patterns, calibrators, methods, bit widths, symmetry or flavour);
    /// [`Error::CustomCalibrator`] for a layer of a [`super::CalibratorKind::Custom`] rule;
    /// [`Error::Calib`] with [`crate::calib::Error::Decode`] for bytes that are truncated,
    /// corrupt, of another kind or version, or whose layers are not in strictly increasing
    /// name order.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::calib::Method;
    /// use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, Recipe};
    ///
    /// let recipe = Recipe::new()
    ///     .activations("*.attn", ActivationScheme::new(CalibratorKind::MinMax, 8, false)?)
    ///     .activations("*", ActivationScheme::new(CalibratorKind::Histogram(Method::Mse { bits: 8 }), 8, true)?);
    /// let mut c = recipe.calibration();
    /// c.observe("l0.attn", &[0.5, -1.0])?;
    /// c.observe("l0.ffn", &[3.0, -0.25, 1.0])?;
    /// let bytes = c.to_bytes()?;
    /// let back = recipe.calibration_from_bytes(&bytes)?;
    /// assert_eq!(back.to_bytes()?, bytes);
    /// assert_eq!(back.range("l0.attn")?, c.range("l0.attn")?);
    ///
    /// // Another recipe does not read it.
    /// let other = Recipe::new().activations("*", ActivationScheme::new(CalibratorKind::MinMax, 8, false)?);
    /// assert!(other.calibration_from_bytes(&bytes).is_err());
    /// # Ok::<(), lowbit::SchemeError>(())
    /// ```
    pub fn calibration_from_bytes(&self, bytes: &[u8]) -> Result<Calibration<'_>, Error> {
        let mut r = Reader(bytes);
        r.header(MAGIC, VERSION)?;
        let n = r.u32()? as usize;
        if r.take(n)? != self.activation_fingerprint() {
            return Err(Error::RecipeMismatch);
        }
        let count = r.u32()?;
        let mut layers = BTreeMap::new();
        let mut last: Option<&str> = None;
        for _ in 0..count {
            let len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(len)?).map_err(|_| decode("a layer name is not UTF-8"))?;
            if last.is_some_and(|l| l >= name) {
                return Err(decode("layer names out of order or repeated"));
            }
            last = Some(name);
            let scheme = self
                .activation_scheme(name)
                .map_err(|_| decode("a layer no activation rule matches"))?;
            let len = usize::try_from(r.u64()?).map_err(|_| decode("truncated"))?;
            let state = r.take(len)?;
            let cal = match scheme.build()? {
                LayerCalibrator::MinMax(_) => LayerCalibrator::MinMax(MinMaxCalibrator::from_bytes(state)?),
                LayerCalibrator::Histogram(fresh) => {
                    let h = HistogramCalibrator::from_bytes(state)?;
                    if !fresh.same_config(&h) {
                        return Err(decode("a layer's calibrator is not its rule's"));
                    }
                    LayerCalibrator::Histogram(Box::new(h))
                }
                LayerCalibrator::Custom(_) => return Err(Error::CustomCalibrator { layer: name.into() }),
            };
            layers.insert(name.to_string(), Layer { cal, scheme });
        }
        r.finish()?;
        Ok(Calibration { recipe: self, layers })
    }
}

/// A copy of a built-in calibrator (custom ones cannot be copied).
fn copy(name: &str, c: &LayerCalibrator) -> Result<LayerCalibrator, Error> {
    Ok(match c {
        LayerCalibrator::MinMax(m) => LayerCalibrator::MinMax(m.clone()),
        LayerCalibrator::Histogram(h) => LayerCalibrator::Histogram(h.clone()),
        LayerCalibrator::Custom(_) => return Err(Error::CustomCalibrator { layer: name.into() }),
    })
}

impl Calibration<'_> {
    /// The state of every layer's calibrator, with the recipe's activation rules, as bytes.
    ///
    /// Layout (little endian): `b"LBPC"`, version `1u8`; the length (`u32`) and bytes of the
    /// recipe's activation rules (their number `u32`, then per rule the pattern's kind `u8`, 0
    /// exact or 1 glob, its UTF-8 text after its length `u32`, and the scheme: calibrator `u8`
    /// (0 min-max, 1 histogram followed by its method as in [`HistogramCalibrator`]'s layout,
    /// 2 custom), bits `u8`, symmetric `u8`, flavour `u8` (0 torch, 1 ONNX Runtime followed by
    /// the type's index in [`crate::compat::ort::QuantType::ALL`] `u8` and `reduce_range`
    /// `u8`)); the number of layers `u32`; per layer in increasing name order, the name's
    /// length `u32` and UTF-8 bytes, then the length `u64` and bytes of its calibrator's
    /// [`Calibrator::to_bytes`]. The same calibration state always gives the same bytes.
    ///
    /// # Errors
    /// [`Error::CustomCalibrator`] when a layer uses a [`super::CalibratorKind::Custom`]
    /// calibrator, which cannot be read back.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut w = Writer::default();
        let fp = self.recipe.activation_fingerprint();
        w.bytes(MAGIC).u8(VERSION).u32(fp.len() as u32).bytes(&fp);
        w.u32(self.layers.len() as u32);
        for (name, l) in &self.layers {
            let state = match &l.cal {
                LayerCalibrator::MinMax(c) => c.to_bytes(),
                LayerCalibrator::Histogram(c) => c.to_bytes(),
                LayerCalibrator::Custom(_) => return Err(Error::CustomCalibrator { layer: name.clone() }),
            };
            w.u32(name.len() as u32).bytes(name.as_bytes());
            w.u64(state.len() as u64).bytes(&state);
        }
        Ok(w.0)
    }

    /// Add the state of another calibration of the same activation rules (another shard of
    /// the calibration data, perhaps read with [`Recipe::calibration_from_bytes`]): layers
    /// both saw are merged ([`Calibrator::merge`], exact), layers only `other` saw are copied.
    /// The result is the calibration of both shards' data, bit for bit, in any order and tree
    /// of merges.
    ///
    /// # Errors
    /// [`Error::RecipeMismatch`] when `other` follows other activation rules;
    /// [`Error::CustomCalibrator`] for a layer of `other` with a custom calibrator;
    /// [`Error::Calib`] with [`crate::calib::Error::CountOverflow`] when a layer's count
    /// would pass `u64::MAX`. On error nothing is changed.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::calib::{Method, Range};
    /// use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, Recipe};
    ///
    /// let recipe = Recipe::new()
    ///     .activations("*", ActivationScheme::new(CalibratorKind::Histogram(Method::Percentile(99.0)), 8, false)?);
    /// // Two workers, two shards.
    /// let (mut a, mut b) = (recipe.calibration(), recipe.calibration());
    /// a.observe("l0", &[1.0, -2.0, 0.5])?;
    /// b.observe("l0", &[4.0])?;
    /// b.observe("l1", &[0.25])?;
    /// let shipped = b.to_bytes()?;
    /// a.merge(&recipe.calibration_from_bytes(&shipped)?)?;
    ///
    /// // The same as one worker with all the data.
    /// let mut all = recipe.calibration();
    /// all.observe("l0", &[1.0, -2.0, 0.5, 4.0])?;
    /// all.observe("l1", &[0.25])?;
    /// assert_eq!(a.to_bytes()?, all.to_bytes()?);
    /// assert_eq!(a.range("l1")?, Range { min: 0.0, max: 0.25 });
    /// # Ok::<(), lowbit::SchemeError>(())
    /// ```
    pub fn merge(&mut self, other: &Calibration<'_>) -> Result<(), Error> {
        if !std::ptr::eq(self.recipe, other.recipe)
            && self.recipe.activation_fingerprint() != other.recipe.activation_fingerprint()
        {
            return Err(Error::RecipeMismatch);
        }
        // Check everything first, so that an error leaves `self` as it was.
        let overflow = || Error::Calib(crate::calib::Error::CountOverflow);
        let mut new = Vec::new();
        for (name, o) in &other.layers {
            match (self.layers.get(name).map(|l| &l.cal), &o.cal) {
                (None, c) => new.push((name.clone(), copy(name, c)?)),
                (Some(LayerCalibrator::MinMax(a)), LayerCalibrator::MinMax(b)) => {
                    a.count().checked_add(b.count()).ok_or_else(overflow)?;
                }
                (Some(LayerCalibrator::Histogram(a)), LayerCalibrator::Histogram(b)) => {
                    if !a.same_config(b) {
                        return Err(Error::RecipeMismatch);
                    }
                    a.count().checked_add(b.count()).ok_or_else(overflow)?;
                    a.skipped().checked_add(b.skipped()).ok_or_else(overflow)?;
                }
                (Some(LayerCalibrator::Custom(_)), _) | (_, LayerCalibrator::Custom(_)) => {
                    return Err(Error::CustomCalibrator { layer: name.clone() })
                }
                _ => return Err(Error::RecipeMismatch),
            }
        }
        let mut schemes = Vec::with_capacity(new.len());
        for (name, _) in &new {
            schemes.push(self.recipe.activation_scheme(name)?);
        }
        for (name, o) in &other.layers {
            if let Some(l) = self.layers.get_mut(name) {
                match (&mut l.cal, &o.cal) {
                    (LayerCalibrator::MinMax(a), LayerCalibrator::MinMax(b)) => a.merge(b)?,
                    (LayerCalibrator::Histogram(a), LayerCalibrator::Histogram(b)) => a.merge(b)?,
                    _ => {} // refused above
                }
            }
        }
        for ((name, cal), scheme) in new.into_iter().zip(schemes) {
            self.layers.insert(name, Layer { cal, scheme });
        }
        Ok(())
    }
}
