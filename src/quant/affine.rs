//! Asymmetric (zero-point) quantization, `k = 1..=8` bits, with torch.ao's qparams.

use core::marker::PhantomData;

use super::absmax::nan_scale;
use super::int_codes::{self, IntDec, IntEnc, Mode};
use super::walk::{self, Kernel, Stats};
use super::{Error, Granularity, NonFinite, Rounding, Scale, Scheme};
use crate::format::{FloatFormat, Layout};
use crate::Fp32;

/// torch's default `eps`: `torch.finfo(torch.float32).eps`, the smallest scale it returns.
pub const TORCH_EPS: f32 = f32::EPSILON;

/// An integer code range `[min, max]`, as torch's `quant_min` / `quant_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QRange {
    min: i32,
    max: i32,
}

impl QRange {
    /// `torch.quint8`: `0 ..= 255`.
    pub const QUINT8: QRange = QRange { min: 0, max: 255 };
    /// `torch.qint8`: `-128 ..= 127`.
    pub const QINT8: QRange = QRange { min: -128, max: 127 };
    /// The narrow signed range `-127 ..= 127` (torch's `weight_observer_range_neg_127_to_127`).
    pub const QINT8_NARROW: QRange = QRange { min: -127, max: 127 };

    /// A custom range; it must hold 0 and have `min < max` (torch's `_validate_qmin_qmax`),
    /// and `max - min` must fit an `i32`.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] otherwise.
    pub fn new(min: i32, max: i32) -> Result<Self, Error> {
        if min <= 0 && 0 <= max && min < max && max.checked_sub(min).is_some() {
            Ok(Self { min, max })
        } else {
            Err(Error::InvalidRange { min, max })
        }
    }

    /// Unsigned `k`-bit codes, `0 ..= 2^k - 1`.
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `1 <= k <= 8`.
    pub fn unsigned(bits: u32) -> Result<Self, Error> {
        super::pack::check_bits(bits)?;
        Ok(Self {
            min: 0,
            max: (1 << bits) - 1,
        })
    }

    /// Smallest code.
    pub const fn min(self) -> i32 {
        self.min
    }

    /// Largest code.
    pub const fn max(self) -> i32 {
        self.max
    }

    /// torch's `reduce_range=True` for the default ranges: one bit less, `0 ..= 127` for
    /// quint8 and `-64 ..= 63` for qint8 (floor division of both ends by 2).
    pub const fn reduce_range(self) -> Self {
        Self {
            min: self.min.div_euclid(2),
            max: self.max.div_euclid(2),
        }
    }
}

/// A scale and zero point, as torch.ao's `calculate_qparams` returns them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// The scale.
    pub scale: f32,
    /// The zero point (an integer code).
    pub zero_point: i32,
}

impl QParams {
    /// torch.ao `MinMaxObserver` qparams for `per_tensor_affine` (and `per_channel_affine`):
    /// `scale = max((max⁺ - min⁻) / (qmax - qmin), eps)`, `zero_point = clamp(qmin -
    /// round(min⁻ / scale), qmin, qmax)`, where `min⁻ = min(min, 0)` and `max⁺ = max(max, 0)`,
    /// computed in `f32` with `round` half to even, as torch does. When `min > max` (nothing
    /// observed: torch's `min = +inf, max = -inf`) the result is torch's `(1.0, 0)`.
    ///
    /// ```
    /// use lowbit::quant::{QParams, QRange, TORCH_EPS};
    /// let p = QParams::torch_affine(-1.0, 3.0, QRange::QUINT8, TORCH_EPS);
    /// assert_eq!(p, QParams { scale: 4.0 / 255.0, zero_point: 64 });
    /// ```
    pub fn torch_affine(min: f32, max: f32, range: QRange, eps: f32) -> QParams {
        if min > max || min.is_nan() || max.is_nan() {
            return QParams {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let scale = ((hi - lo) / (range.max - range.min) as f32).max(eps);
        QParams {
            scale,
            zero_point: affine_zero_point(lo, scale, range),
        }
    }

    /// torch.ao `MinMaxObserver` qparams for `per_tensor_symmetric`:
    /// `scale = max(max(-min⁻, max⁺) / ((qmax - qmin) / 2), eps)`; the zero point is 0 for a
    /// signed range, 128 for the default unsigned range (`0 ..= 255`) and
    /// `(qmin + qmax) / 2` (rounded down) for another unsigned range, as in torch.
    ///
    /// ```
    /// use lowbit::quant::{QParams, QRange, TORCH_EPS};
    /// let p = QParams::torch_symmetric(-1.0, 3.0, QRange::QINT8, TORCH_EPS);
    /// assert_eq!(p, QParams { scale: 3.0 / 127.5, zero_point: 0 });
    /// let n = QParams::torch_symmetric(-1.0, 3.0, QRange::QINT8_NARROW, TORCH_EPS);
    /// assert_eq!(n.scale, 3.0 / 127.0);
    /// ```
    pub fn torch_symmetric(min: f32, max: f32, range: QRange, eps: f32) -> QParams {
        if min > max || min.is_nan() || max.is_nan() {
            return QParams {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let amax = (-lo).max(hi);
        let scale = (amax / ((range.max - range.min) as f32 / 2.0)).max(eps);
        let zero_point = if range.min < 0 {
            0
        } else if range == QRange::QUINT8 {
            128
        } else {
            (range.min + range.max).div_euclid(2)
        };
        QParams { scale, zero_point }
    }
}

impl QParams {
    /// One value as `torch.quantize_per_tensor` does it: `clamp(round(x × (1/scale)) +
    /// zero_point, qmin, qmax)`, the product in `f32`, rounding half to even. NaN gives the
    /// zero point.
    ///
    /// ```
    /// use lowbit::quant::{QParams, QRange};
    /// let p = QParams { scale: 1.0, zero_point: 0 };
    /// let q: Vec<i32> = [0.5, 1.5, 2.5, -2.5, 200.0].iter().map(|&x| p.quantize(x, QRange::QINT8)).collect();
    /// assert_eq!(q, [0, 2, 2, -2, 127]);
    /// ```
    pub fn quantize(&self, x: f32, range: QRange) -> i32 {
        let t = x * (1.0 / self.scale);
        let r = if t.is_nan() { 0.0 } else { t.round_ties_even() };
        let q = (r as f64 + f64::from(self.zero_point)).clamp(f64::from(range.min), f64::from(range.max));
        q as i32
    }

    /// `(q - zero_point) × scale`, as `torch.dequantize`.
    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}

/// `clamp(qmin - round_half_even(lo / scale), qmin, qmax)`.
fn affine_zero_point(lo: f32, scale: f32, range: QRange) -> i32 {
    let r = (lo / scale).round_ties_even();
    let z = range.min as f32 - r;
    z.clamp(range.min as f32, range.max as f32) as i32
}

/// Asymmetric quantization with unsigned `k`-bit codes and a zero point per group.
///
/// Per group, with `qmax = 2^k - 1` and the group's range widened to include 0
/// (`min⁻ = min(min, 0)`, `max⁺ = max(max, 0)`):
///
/// - `s = store(max((max⁺ - min⁻) / qmax, eps))`, rounded to the scale format `S`;
/// - `z = clamp(-round(min⁻ / s), 0, qmax)`;
/// - `q = clamp(round(x × (1/s)) + z, 0, qmax)`, ties to even by default;
/// - `x' = (q - z) × s`.
///
/// For `k = 8` and an `f32` scale these are exactly torch.ao's `MinMaxObserver`
/// `per_tensor_affine` quint8 qparams and `torch.quantize_per_tensor` codes ([`QParams`]
/// has the formulas for other ranges). 0.0 is always exact. `eps` defaults to
/// [`TORCH_EPS`], so an all-zero group has scale `eps`, zero point 0 and dequantizes to 0.
///
/// # Examples
///
/// ```
/// use lowbit::quant::{AffineQuantizer, Granularity, Quantizer};
///
/// let q = AffineQuantizer::new(8, Granularity::PerTensor)?;
/// let z = q.quantize(&[-1.0, 0.0, 3.0])?;
/// assert_eq!(z.scales(), &[4.0 / 255.0]);
/// assert_eq!(z.zero_points(), &[64]);
/// assert_eq!(z.unpacked_codes(), [0, 64, 255]);
/// let y = q.dequantize(&z)?;
/// assert_eq!(y[1], 0.0);
///
/// // One bit: codes 0 and 1, zero exact.
/// let b = AffineQuantizer::new(1, Granularity::PerBlock(2))?;
/// assert_eq!(b.dequantize(&b.quantize(&[0.0, 2.0, -1.0, 0.0])?)?, [0.0, 2.0, -1.0, 0.0]);
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AffineQuantizer<S: FloatFormat = Fp32> {
    bits: u32,
    granularity: Granularity,
    mode: Mode,
    non_finite: NonFinite,
    eps: f32,
    _scale: PhantomData<S>,
}

impl AffineQuantizer<Fp32> {
    /// A quantizer with `f32` scales, rounding half to even, torch's `eps`, erroring on NaN
    /// and infinity.
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `1 <= bits <= 8`, [`Error::ZeroGroupSize`] for a block
    /// size or column count of zero.
    pub fn new(bits: u32, granularity: Granularity) -> Result<Self, Error> {
        Self::with_scale_format(bits, granularity)
    }
}

impl<S: FloatFormat> AffineQuantizer<S> {
    /// A quantizer whose scales are stored in the format `S`.
    ///
    /// # Errors
    /// As [`AffineQuantizer::new`], and [`Error::UnsupportedScaleFormat`] for a scale format
    /// wider than 32 bits.
    pub fn with_scale_format(bits: u32, granularity: Granularity) -> Result<Self, Error> {
        super::pack::check_bits(bits)?;
        granularity.validate()?;
        super::check_scale_layout(&S::LAYOUT)?;
        Ok(Self {
            bits,
            granularity,
            mode: Mode::Even,
            non_finite: NonFinite::Error,
            eps: TORCH_EPS,
            _scale: PhantomData,
        })
    }

    /// The same quantizer with another rounding of `x / s`: [`Rounding::NearestEven`] (the
    /// default), [`Rounding::NearestAway`] (C's `roundf`, as ggml) or [`Rounding::TowardZero`].
    ///
    /// # Errors
    /// [`Error::UnsupportedRounding`] for [`Rounding::Stochastic`].
    pub fn with_rounding(self, rounding: Rounding) -> Result<Self, Error> {
        Ok(Self {
            mode: Mode::of(rounding)?,
            ..self
        })
    }

    /// The same quantizer with another policy for NaN and infinity.
    pub fn with_non_finite(self, non_finite: NonFinite) -> Self {
        Self { non_finite, ..self }
    }

    /// The same quantizer with another smallest scale (torch's `eps`).
    ///
    /// `eps × qmax` must be finite: codes span `qmax` steps of the scale, so a larger smallest
    /// scale would dequantize finite data to infinity (`(code - zero_point) × scale`). Such an
    /// `eps` is refused rather than clamped, so that the scale is never other than asked.
    ///
    /// # Errors
    /// [`Error::ScaleOutOfRange`] unless `eps` is positive, finite and at most
    /// `f32::MAX / qmax`.
    pub fn with_eps(self, eps: f32) -> Result<Self, Error> {
        if eps.is_finite() && eps > 0.0 && (eps * self.qmax() as f32).is_finite() {
            Ok(Self { eps, ..self })
        } else {
            Err(Error::ScaleOutOfRange { group: 0, scale: eps })
        }
    }

    /// The largest code, `2^k - 1`.
    pub fn qmax(&self) -> i32 {
        (1 << self.bits) - 1
    }
}

impl<S: FloatFormat> Kernel for AffineQuantizer<S> {
    fn scheme(&self) -> Scheme {
        Scheme::Affine
    }
    const ABSMAX_ONLY: bool = false;
    type Enc = IntEnc;
    type Dec = IntDec;
    fn non_finite(&self) -> NonFinite {
        self.non_finite
    }
    fn layout(&self) -> Layout {
        S::LAYOUT
    }
    #[inline(always)]
    fn params(&self, group: usize, st: Stats) -> Result<(Scale, u8), Error> {
        if st.nonfinite && self.non_finite == NonFinite::Propagate {
            return Ok((nan_scale::<S>(group)?, 0));
        }
        let range = QRange {
            min: 0,
            max: self.qmax(),
        };
        let raw = QParams::torch_affine(st.min, st.max, range, self.eps).scale;
        let s = Scale::store_bounded::<S>(raw, self.qmax() as f32);
        if !(s.value.is_finite() && s.value > 0.0) {
            return Err(Error::ScaleOutOfRange { group, scale: raw });
        }
        Ok((s, affine_zero_point(st.min, s.value, range) as u8))
    }
    #[inline(always)]
    fn enc(&self, scale: f32, zp: u8) -> IntEnc {
        let z = f32::from(zp);
        IntEnc {
            inv: int_codes::inverse(scale),
            scale,
            lo: -z,
            hi: self.qmax() as f32 - z,
            offset: i32::from(zp),
            mode: self.mode,
        }
    }
    #[inline(always)]
    fn dec(&self, scale: f32, zp: u8) -> IntDec {
        IntDec {
            scale,
            xor: 0,
            sub: f32::from(zp),
        }
    }
    #[inline(always)]
    fn encode(&self, e: &IntEnc, x: &[f32], out: &mut [u8]) {
        int_codes::encode(e, x, out);
    }
    #[inline(always)]
    fn decode(&self, d: &IntDec, codes: &[u8], out: &mut [f32]) {
        int_codes::decode(d, codes, out);
    }
}

walk::walker_quantizer!(impl[S: FloatFormat] AffineQuantizer<S>, |q| q.bits);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Quantizer;

    #[test]
    fn reduce_range_matches_torch() {
        assert_eq!(QRange::QUINT8.reduce_range(), QRange { min: 0, max: 127 });
        assert_eq!(QRange::QINT8.reduce_range(), QRange { min: -64, max: 63 });
    }

    #[test]
    fn positive_only_range_includes_zero() {
        let q = AffineQuantizer::new(8, Granularity::PerTensor).unwrap();
        let z = q.quantize(&[2.0, 4.0]).unwrap();
        assert_eq!(z.zero_points(), &[0]);
        assert_eq!(z.scales(), &[4.0 / 255.0]);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(QRange::new(5, -5).is_err());
        assert_eq!(
            QRange::new(i32::MIN, 1),
            Err(Error::InvalidRange { min: i32::MIN, max: 1 })
        );
        let r = QRange::new(i32::MIN + 1, 0).unwrap();
        let p = QParams::torch_affine(-1.0, 1.0, r, TORCH_EPS);
        assert!(p.scale.is_finite());
        assert_eq!((r.min(), r.max()), (i32::MIN + 1, 0));
    }

    #[test]
    fn bad_eps_is_an_error() {
        let q = AffineQuantizer::new(8, Granularity::PerTensor).unwrap();
        assert!(q.with_eps(0.0).is_err());
        assert!(q.with_eps(f32::NAN).is_err());
        assert!(q.with_eps(1e-3).is_ok());
    }
}
