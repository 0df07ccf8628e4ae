//! From a [`Range`] to quantization parameters.

use super::{Error, Range};
use crate::FloatFormat;

pub use crate::quant::QParams;

impl Range {
    fn check(&self) -> Result<(), Error> {
        if !self.min.is_finite() || !self.max.is_finite() || self.min > self.max {
            return Err(Error::InvalidRange {
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }

    /// Symmetric int8 parameters, TensorRT's and modelopt's convention: `scale = amax / 127`
    /// (narrow range `[-127, 127]`), at least `f32::EPSILON` (torch's `eps`) so that an all-zero
    /// tensor still has a usable scale.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] if the range is not finite or `min > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::calib::Range;
    /// let q = Range { min: -2.0, max: 1.0 }.symmetric_int8()?;
    /// assert_eq!(q.scale, 2.0 / 127.0);
    /// # Ok::<(), lowbit::calib::Error>(())
    /// ```
    pub fn symmetric_int8(&self) -> Result<QParams, Error> {
        self.check()?;
        let scale = (self.amax() / 127.0).max(f32::EPSILON);
        Ok(QParams { scale, zero_point: 0 })
    }

    /// Affine uint8 parameters, with torch.ao's formula (`MinMaxObserver._calculate_qparams`,
    /// `quant_min = 0`, `quant_max = 255`): the range is widened to contain 0, `scale =
    /// (max - min) / 255` (at least `f32::EPSILON`) in `f32`, `zero_point = clamp(-round(min /
    /// scale), 0, 255)` with ties to even. A range wider than `f32::MAX`, whose width torch
    /// computes as infinity (an infinite scale), has its scale computed in `f64` instead: the
    /// scale is always finite.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] if the range is not finite or `min > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::calib::Range;
    /// let q = Range { min: -1.0, max: 3.0 }.affine_uint8()?;
    /// assert_eq!(q.scale, 4.0 / 255.0);
    /// assert_eq!(q.zero_point, 64); // round(63.75)
    /// # Ok::<(), lowbit::calib::Error>(())
    /// ```
    pub fn affine_uint8(&self) -> Result<QParams, Error> {
        self.check()?;
        let min_neg = self.min.min(0.0);
        let max_pos = self.max.max(0.0);
        let mut scale = ((max_pos - min_neg) / 255.0).max(f32::EPSILON);
        if scale.is_infinite() {
            scale = ((f64::from(max_pos) - f64::from(min_neg)) / 255.0) as f32;
        }
        let zp = -(min_neg / scale).round_ties_even();
        let zero_point = zp.clamp(0.0, 255.0) as i32;
        Ok(QParams { scale, zero_point })
    }

    /// ONNX Runtime's parameters for this range, as its QDQ quantizer computes them
    /// ([`crate::compat::ort::qparams`]): `qtype` is the activation or weight type,
    /// `symmetric` its `ActivationSymmetric` / `WeightSymmetric` option and `reduce_range`
    /// whether one bit of the codes is dropped. Its formula differs from
    /// [`affine_uint8`](Self::affine_uint8) (torch.ao's): the scale is computed in `f64`, and
    /// a symmetric zero point is the middle code whatever the range.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] if the range is not finite or `min > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::calib::Range;
    /// use lowbit::compat::ort::QuantType;
    /// let r = Range { min: -1.0, max: 3.0 };
    /// let ort = r.ort_qparams(QuantType::QUInt8, false, false)?;
    /// assert_eq!((ort.scale, ort.zero_point), (4.0 / 255.0, 64));
    /// let sym = r.ort_qparams(QuantType::QUInt8, true, false)?;
    /// assert_eq!((sym.scale, sym.zero_point), (6.0 / 255.0, 128));
    /// # Ok::<(), lowbit::calib::Error>(())
    /// ```
    pub fn ort_qparams(
        &self,
        qtype: crate::compat::ort::QuantType,
        symmetric: bool,
        reduce_range: bool,
    ) -> Result<crate::compat::ort::QdqParams, Error> {
        crate::compat::ort::qparams(*self, qtype, symmetric, reduce_range)
    }

    /// Scale for an FP8 (or any float) format `F`: `amax / F::MAX`, so that `amax` maps to the
    /// format's largest finite value (448 for [`crate::E4M3`], 57344 for [`crate::E5M2`]), at
    /// least `f32::EPSILON`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] if the range is not finite or `min > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::{calib::Range, E4M3, E5M2};
    /// let r = Range { min: -8.96, max: 4.0 };
    /// assert_eq!(r.fp8_scale::<E4M3>()?, 0.02);
    /// assert_eq!(r.fp8_scale::<E5M2>()?, (8.96f64 as f32 as f64 / 57344.0) as f32);
    /// # Ok::<(), lowbit::calib::Error>(())
    /// ```
    pub fn fp8_scale<F: FloatFormat>(&self) -> Result<f32, Error> {
        self.check()?;
        let s = (f64::from(self.amax()) / F::MAX) as f32;
        Ok(s.max(f32::EPSILON))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_matches_torch_examples() {
        // torch.ao MinMaxObserver(quint8) on [0, 2, 2, 3, 4, 5, 6] then [2, 5, 5, 6, 7, 10]:
        // min 0, max 10: scale 10/255, zero point 0.
        let q = Range { min: 0.0, max: 10.0 }.affine_uint8().unwrap();
        assert_eq!(q.scale, 10.0 / 255.0);
        assert_eq!(q.zero_point, 0);
        // All positive: the range is widened to contain 0.
        let q = Range { min: 1.0, max: 2.0 }.affine_uint8().unwrap();
        assert_eq!((q.scale, q.zero_point), (2.0 / 255.0, 0));
        // All negative: zero point at the top.
        let q = Range { min: -2.0, max: -1.0 }.affine_uint8().unwrap();
        assert_eq!((q.scale, q.zero_point), (2.0 / 255.0, 255));
        // Zero range: eps.
        let q = Range { min: 0.0, max: 0.0 }.affine_uint8().unwrap();
        assert_eq!((q.scale, q.zero_point), (f32::EPSILON, 0));
    }

    #[test]
    fn bad_ranges_are_errors() {
        for r in [
            Range {
                min: f32::NAN,
                max: 1.0,
            },
            Range {
                min: 0.0,
                max: f32::INFINITY,
            },
            Range { min: 2.0, max: 1.0 },
        ] {
            assert!(r.symmetric_int8().is_err());
            assert!(r.affine_uint8().is_err());
            assert!(r.fp8_scale::<crate::E4M3>().is_err());
        }
    }

    /// A range wider than `f32::MAX` still has a finite scale (and its zero point in the
    /// middle); ranges that fit keep torch's `f32` formula.
    #[test]
    fn widest_ranges_have_finite_scales() {
        let q = Range {
            min: -f32::MAX,
            max: f32::MAX,
        }
        .affine_uint8()
        .unwrap();
        assert!(q.scale.is_finite());
        assert_eq!(q.scale, (2.0 * f64::from(f32::MAX) / 255.0) as f32);
        assert_eq!(q.zero_point, 128); // round(127.5) to even
        let q = Range { min: -3e38, max: 1e38 }.affine_uint8().unwrap();
        assert_eq!(q.scale, (4e38 / 255.0) as f32);
        assert_eq!(q.zero_point, 191); // 3e38 / (4e38 / 255) = 191.25
        let q = Range {
            min: -f32::MAX,
            max: 0.0,
        }
        .affine_uint8()
        .unwrap();
        assert_eq!((q.scale, q.zero_point), (f32::MAX / 255.0, 255));
        let s = Range {
            min: -f32::MAX,
            max: f32::MAX,
        }
        .symmetric_int8()
        .unwrap();
        assert_eq!(s.scale, f32::MAX / 127.0);
    }
}
