//! ONNX Runtime's `compute_scale_zp`, `get_qmin_qmax_for_qType` and `quantize_nparray`
//! (documented on the parent module).

use crate::calib::{Error, Range};

/// ONNX Runtime's integer quantization types (`onnxruntime.quantization.QuantType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuantType {
    /// `QUInt8`: codes `0..=255`.
    QUInt8,
    /// `QInt8`: codes `-128..=127` (ONNX Runtime's default for activations and weights).
    QInt8,
    /// `QUInt16`: codes `0..=65535`.
    QUInt16,
    /// `QInt16`: codes `-32768..=32767`.
    QInt16,
    /// `QUInt4`: codes `0..=15`.
    QUInt4,
    /// `QInt4`: codes `-8..=7`.
    QInt4,
}

impl QuantType {
    /// Every type, in the order of the enum (`ALL[t as usize] == t`).
    pub const ALL: [QuantType; 6] = [
        QuantType::QUInt8,
        QuantType::QInt8,
        QuantType::QUInt16,
        QuantType::QInt16,
        QuantType::QUInt4,
        QuantType::QInt4,
    ];

    /// Bits per code.
    pub fn bits(self) -> u32 {
        match self {
            QuantType::QUInt8 | QuantType::QInt8 => 8,
            QuantType::QUInt16 | QuantType::QInt16 => 16,
            QuantType::QUInt4 | QuantType::QInt4 => 4,
        }
    }

    /// Whether the codes are signed.
    pub fn is_signed(self) -> bool {
        matches!(self, QuantType::QInt8 | QuantType::QInt16 | QuantType::QInt4)
    }

    /// ONNX Runtime's name (`"QUInt8"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::QUInt8 => "QUInt8",
            QuantType::QInt8 => "QInt8",
            QuantType::QUInt16 => "QUInt16",
            QuantType::QInt16 => "QInt16",
            QuantType::QUInt4 => "QUInt4",
            QuantType::QInt4 => "QInt4",
        }
    }

    /// The type of an ONNX Runtime name (`"QUInt8"`, ...), if it is one of these.
    pub fn from_name(name: &str) -> Option<QuantType> {
        QuantType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Every code of the type: `(qmin, qmax)`.
    pub fn full_range(self) -> (i32, i32) {
        match self {
            QuantType::QUInt8 => (0, 255),
            QuantType::QInt8 => (-128, 127),
            QuantType::QUInt16 => (0, 65535),
            QuantType::QInt16 => (-32768, 32767),
            QuantType::QUInt4 => (0, 15),
            QuantType::QInt4 => (-8, 7),
        }
    }

    /// `get_qmin_qmax_for_qType(qType, reduce_range, symmetric)`: the codes the scale is
    /// computed for. `reduce_range` wins over `symmetric` and gives `QUInt8 0..=127`,
    /// `QInt8 -64..=64`, `QUInt16 0..=32767`, `QInt16 -16384..=16384`, `QUInt4 0..=7`,
    /// `QInt4 -4..=3` (as ONNX Runtime's table, asymmetric `QInt4` included); otherwise
    /// `symmetric` narrows `QInt8` to `-127..=127` and `QInt16` to `-32767..=32767`, and leaves
    /// the other types at their full range.
    ///
    /// ```
    /// use lowbit::compat::ort::QuantType;
    /// assert_eq!(QuantType::QInt8.qmin_qmax(false, true), (-127, 127));
    /// assert_eq!(QuantType::QInt8.qmin_qmax(true, true), (-64, 64));
    /// assert_eq!(QuantType::QUInt8.qmin_qmax(false, true), (0, 255));
    /// ```
    pub fn qmin_qmax(self, reduce_range: bool, symmetric: bool) -> (i32, i32) {
        if reduce_range {
            return match self {
                QuantType::QUInt8 => (0, 127),
                QuantType::QInt8 => (-64, 64),
                QuantType::QUInt16 => (0, 32767),
                QuantType::QInt16 => (-16384, 16384),
                QuantType::QUInt4 => (0, 7),
                QuantType::QInt4 => (-4, 3),
            };
        }
        match (self, symmetric) {
            (QuantType::QInt8, true) => (-127, 127),
            (QuantType::QInt16, true) => (-32767, 32767),
            _ => self.full_range(),
        }
    }
}

/// A scale and zero point of one of ONNX Runtime's types, as its QDQ quantizer stores them
/// in a `QuantizeLinear` / `DequantizeLinear` pair: the crate's one affine-parameters type,
/// [`QParams`](crate::quant::QParams) ([`params`](Self::params)), with the ONNX type of the
/// codes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QdqParams {
    /// The `f32` scale of `QuantizeLinear`.
    pub scale: f32,
    /// The zero point, a code of `qtype`.
    pub zero_point: i32,
    /// The type of the codes.
    pub qtype: QuantType,
}

impl QdqParams {
    /// The scale and zero point.
    pub fn params(&self) -> crate::quant::QParams {
        crate::quant::QParams {
            scale: self.scale,
            zero_point: self.zero_point,
        }
    }

    /// The codes of `x`, by [`quantize_nparray`].
    ///
    /// # Errors
    ///
    /// As [`quantize_nparray`].
    pub fn quantize(&self, x: &[f32]) -> Result<Vec<i32>, Error> {
        quantize_nparray(self.qtype, x, self.scale, self.zero_point)
    }

    /// The value of a code: `(q - zero_point) * scale` (`DequantizeLinear`, in `f32`).
    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}

/// The parameters ONNX Runtime's QDQ quantizer gives a tensor of calibrated range `range`:
/// `compute_scale_zp(rmin, rmax, *get_qmin_qmax_for_qType(qtype, reduce_range, symmetric),
/// symmetric)`. For activations, `symmetric` is its `ActivationSymmetric` option (default
/// `False`) and `reduce_range` is `False` unless a tensor override sets it.
///
/// # Errors
///
/// [`Error::InvalidRange`] for a range that is not finite or has `min > max`.
///
/// # Examples
///
/// ```
/// use lowbit::calib::Range;
/// use lowbit::compat::ort::{qparams, QuantType};
/// let q = qparams(Range { min: -3.5, max: 251.5 }, QuantType::QUInt8, false, false)?;
/// assert_eq!((q.scale, q.zero_point), (1.0, 4)); // round(3.5) to even
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
pub fn qparams(range: Range, qtype: QuantType, symmetric: bool, reduce_range: bool) -> Result<QdqParams, Error> {
    let (qmin, qmax) = qtype.qmin_qmax(reduce_range, symmetric);
    let (zero_point, scale) = compute_scale_zp(range.min, range.max, qmin, qmax, symmetric, None)?;
    Ok(QdqParams {
        scale,
        zero_point,
        qtype,
    })
}

/// `compute_scale_zp(rmin, rmax, qmin, qmax, symmetric, min_real_range)` on `float32` ends:
/// `(zero_point, scale)`, in ONNX Runtime's order. The steps are in the [module
/// documentation](super#quantization-parameters); `min_real_range` (the `MinimumRealRange` option) raises `rmax` to
/// at least `rmin + min_real_range` (in `f32`) after 0 is included and before the range is
/// made symmetric.
///
/// # Errors
///
/// [`Error::InvalidRange`] for ends that are not finite or `rmin > rmax`;
/// [`Error::InvalidParameter`] for `qmin > 0`, `qmax < 0` or `qmin == qmax` (ONNX Runtime
/// raises or divides by zero), for a `min_real_range` that is not finite, and for a scale
/// that overflows `f32` (only possible with a code range narrower than any of
/// [`QuantType`]'s).
///
/// # Examples
///
/// ```
/// use lowbit::compat::ort::compute_scale_zp;
/// // All-zero tensor: scale 1, zero point 0 (ONNX Runtime's fallback below float32's tiny).
/// assert_eq!(compute_scale_zp(0.0, 0.0, 0, 255, false, None)?, (0, 1.0));
/// // With MinimumRealRange = 1e-4 the range becomes [0, 1e-4].
/// let (zp, scale) = compute_scale_zp(0.0, 0.0, 0, 255, false, Some(1e-4))?;
/// assert_eq!((zp, scale), (0, (f64::from(1e-4f32) / 255.0) as f32));
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
pub fn compute_scale_zp(
    rmin: f32,
    rmax: f32,
    qmin: i32,
    qmax: i32,
    symmetric: bool,
    min_real_range: Option<f32>,
) -> Result<(i32, f32), Error> {
    if !rmin.is_finite() || !rmax.is_finite() || rmin > rmax {
        return Err(Error::InvalidRange { min: rmin, max: rmax });
    }
    if qmin > 0 || qmax < 0 || qmin == qmax {
        return Err(Error::InvalidParameter("qmin <= 0 <= qmax with qmin < qmax"));
    }
    let mut rmin = rmin.min(0.0);
    let mut rmax = rmax.max(0.0);
    if let Some(m) = min_real_range {
        if !m.is_finite() {
            return Err(Error::InvalidParameter("min_real_range"));
        }
        // `rmin <= 0`, so `rmin + m` is at most `m`: finite, or `-inf` (no effect).
        let floor = rmin + m;
        if floor > rmax {
            rmax = floor;
        }
    }
    if symmetric {
        let amax = rmin.abs().max(rmax.abs());
        rmin = -amax;
        rmax = amax;
    }
    // numpy: the ends promoted to float64 before subtracting, the scale a float64 until stored.
    let dr = f64::from(rmax) - f64::from(rmin);
    let dq = f64::from(qmax) - f64::from(qmin);
    let scale = dr / dq;
    if scale < f64::from(f32::MIN_POSITIVE) {
        return Ok((0, 1.0));
    }
    let zp = if symmetric {
        (f64::from(qmin + qmax) / 2.0).round_ties_even()
    } else {
        (f64::from(qmin) - f64::from(rmin) / scale).round_ties_even()
    };
    // In [qmin, qmax] already (rmin / scale lies in [-(qmax - qmin), 0] up to rounding, and
    // rounding to an integer cannot leave it); the clamp only documents the cast.
    let zero_point = zp.clamp(f64::from(qmin), f64::from(qmax)) as i32;
    let stored = scale as f32;
    if !stored.is_finite() {
        return Err(Error::InvalidParameter("scale overflows f32 (qmax - qmin too small)"));
    }
    Ok((zero_point, stored))
}

/// `quantize_nparray(qType, x, scale, zero_point)`: `clip(round(x / scale) + zero_point, qmin,
/// qmax)` over the type's full range, with ONNX Runtime's `float32` operations (`x / scale`
/// rounded to `f32`, ties to even, the zero point added in `f32`). Infinities saturate to the
/// ends of the range, as in ONNX Runtime.
///
/// # Errors
///
/// [`Error::NonFinite`] for a NaN (which ONNX Runtime casts to an unspecified integer);
/// [`Error::InvalidParameter`] for a scale that is not a positive finite number or a zero
/// point outside the type's codes.
///
/// # Examples
///
/// ```
/// use lowbit::compat::ort::{quantize_nparray, QuantType};
/// let q = quantize_nparray(QuantType::QUInt4, &[-1.0, 0.25, 0.75, 9.0, f32::INFINITY], 0.5, 2)?;
/// assert_eq!(q, [0, 2, 4, 15, 15]); // 0.5 and 1.5 round to even
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
pub fn quantize_nparray(qtype: QuantType, x: &[f32], scale: f32, zero_point: i32) -> Result<Vec<i32>, Error> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::InvalidParameter("scale must be positive and finite"));
    }
    let (qmin, qmax) = qtype.full_range();
    if !(qmin..=qmax).contains(&zero_point) {
        return Err(Error::InvalidParameter("zero_point outside the type's codes"));
    }
    if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| v.is_nan()) {
        return Err(Error::NonFinite { index, value });
    }
    let z = zero_point as f32;
    let (lo, hi) = (qmin as f32, qmax as f32);
    Ok(x.iter()
        .map(|&v| ((v / scale).round_ties_even() + z).clamp(lo, hi) as i32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases spelled out in the module documentation, and where ONNX Runtime and torch.ao
    /// part.
    #[test]
    fn documented_cases() {
        let r = Range {
            min: -10.68,
            max: 10.68,
        };
        assert_eq!(qparams(r, QuantType::QUInt8, true, false).unwrap().zero_point, 128);
        assert_eq!(qparams(r, QuantType::QUInt8, false, false).unwrap().zero_point, 127);
        // torch.ao's formula: 10.68 / scale is exactly the tie 127.5 in f32, rounded to even.
        assert_eq!(r.affine_uint8().unwrap().zero_point, 128);
        // ONNX Runtime's: 10.68 / scale in f64, just below the tie.
        let scale = (f64::from(10.68f32) * 2.0) / 255.0;
        assert!(f64::from(10.68f32) / scale < 127.5);
        for (t, zp) in [
            (QuantType::QUInt8, 128),
            (QuantType::QInt8, 0),
            (QuantType::QUInt16, 32768),
            (QuantType::QInt16, 0),
            (QuantType::QUInt4, 8),
            (QuantType::QInt4, 0),
        ] {
            let q = qparams(Range { min: -1.0, max: 5.0 }, t, true, false).unwrap();
            assert_eq!(q.zero_point, zp, "{t:?}");
            assert_eq!(QuantType::from_name(t.name()), Some(t));
            assert_eq!(QuantType::ALL[t as usize], t);
        }
        let q = qparams(Range { min: -2.5, max: 252.5 }, QuantType::QUInt8, false, false).unwrap();
        assert_eq!((q.scale, q.zero_point), (1.0, 2));
        // Degenerate: scale 1, zero point 0 even where the symmetric zero point would be 128.
        let q = qparams(Range { min: 0.0, max: 0.0 }, QuantType::QUInt8, true, false).unwrap();
        assert_eq!((q.scale, q.zero_point), (1.0, 0));
    }

    #[test]
    fn bad_inputs_are_errors() {
        for (lo, hi) in [
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
            (f32::NEG_INFINITY, 0.0),
            (2.0, 1.0),
        ] {
            assert!(matches!(
                qparams(Range { min: lo, max: hi }, QuantType::QInt8, false, false),
                Err(Error::InvalidRange { .. })
            ));
        }
        assert!(compute_scale_zp(0.0, 1.0, 1, 255, false, None).is_err());
        assert!(compute_scale_zp(0.0, 1.0, -5, -1, false, None).is_err());
        assert!(compute_scale_zp(0.0, 1.0, 0, 0, false, None).is_err());
        assert!(compute_scale_zp(0.0, 1.0, 0, 255, false, Some(f32::NAN)).is_err());
        assert!(compute_scale_zp(0.0, 1.0, 0, 255, false, Some(f32::INFINITY)).is_err());
        // The largest floor is finite; a negative one that overflows changes nothing.
        let top = compute_scale_zp(f32::MAX, f32::MAX, 0, 255, false, Some(f32::MAX)).unwrap();
        assert_eq!(top, compute_scale_zp(0.0, f32::MAX, 0, 255, false, None).unwrap());
        let low = compute_scale_zp(-f32::MAX, 1.0, 0, 255, false, Some(-f32::MAX)).unwrap();
        assert_eq!(low, compute_scale_zp(-f32::MAX, 1.0, 0, 255, false, None).unwrap());
        assert!(compute_scale_zp(-f32::MAX, f32::MAX, 0, 1, false, None).is_err());
        assert!(quantize_nparray(QuantType::QInt8, &[1.0, f32::NAN], 1.0, 0).is_err());
        assert!(quantize_nparray(QuantType::QInt8, &[1.0], 0.0, 0).is_err());
        assert!(quantize_nparray(QuantType::QInt8, &[1.0], f32::INFINITY, 0).is_err());
        assert!(quantize_nparray(QuantType::QUInt8, &[1.0], 1.0, -1).is_err());
        assert!(quantize_nparray(QuantType::QInt4, &[1.0], 1.0, 8).is_err());
    }
}
