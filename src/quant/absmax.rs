//! Symmetric absmax quantization, `k = 2..=8` bits.

use core::marker::PhantomData;

use super::int_codes::{self, IntDec, IntEnc, Mode};
use super::walk::{self, Kernel, Stats};
use super::{Error, Granularity, NonFinite, Rounding, Scale, Scheme};
use crate::format::{FloatFormat, Layout};
use crate::Fp32;

/// Symmetric ("absmax") quantization with signed `k`-bit codes.
///
/// Per group, with `qmax = 2^(k-1) - 1`:
///
/// - `s = store(absmax / qmax)`: the scale, rounded to the scale format `S` (nearest-even);
/// - `q = clamp(round(x × (1/s)), -qmax, qmax)`: codes from the *stored* scale, multiplying by
///   its `f32` inverse as torch and ggml do; ties to even by default
///   ([`Rounding::NearestAway`] for C's `roundf`);
/// - `x' = q × s`.
///
/// This is the seed's `c = qmax / absmax`, `q = round(x c)`, `x' = q / c` with `c` kept as
/// its inverse `s`, which is what gets stored. Codes are `k`-bit two's complement; the code
/// `-2^(k-1)` is never produced. With an `f32` scale the element holding the absmax gets the
/// code `±qmax` and comes back as `qmax × s`, within one ulp of itself (exactly for most
/// blocks; for about 0.6% of 8-bit and 8% of 4-bit blocks of normal data no `f32` scale `s`
/// has `qmax × s == absmax`, so no stored-scale scheme can do better); with a
/// narrower scale format the scale's own rounding error adds to that (a scale rounded down
/// makes the absmax clamp to `±qmax`).
///
/// An all-zero group gets codes 0 and a zero scale (the smallest positive scale for formats
/// without a zero, such as [`E8M0`](crate::E8M0)), and dequantizes to exactly 0. NaN and
/// infinity follow [`NonFinite`]: an error naming the group by default.
///
/// # Examples
///
/// ```
/// use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer, Rounding};
/// use lowbit::E8M0;
///
/// let q = AbsmaxQuantizer::new(8, Granularity::PerBlock(4))?;
/// let z = q.quantize(&[1.0, -0.5, 0.25, 0.0, 0.0, 0.0])?;
/// assert_eq!(z.scales(), &[1.0 / 127.0, 0.0]);
/// assert_eq!(z.unpacked_codes(), [127, 192, 32, 0, 0, 0]); // 192 = -64 as u8 (-63.5 to even)
///
/// // Power-of-two scales: 1/127 rounds to 2^-7, and 1.0 clamps to 127 × 2^-7.
/// let p = AbsmaxQuantizer::<E8M0>::with_scale_format(8, Granularity::PerTensor)?;
/// let z = p.quantize(&[1.0, -0.5])?;
/// assert_eq!(z.scales(), &[0.0078125]);
/// assert_eq!(p.dequantize(&z)?, [0.9921875, -0.5]);
///
/// // Bad parameters are errors.
/// assert!(AbsmaxQuantizer::new(1, Granularity::PerTensor).is_err());
/// assert!(AbsmaxQuantizer::new(4, Granularity::PerBlock(0)).is_err());
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AbsmaxQuantizer<S: FloatFormat = Fp32> {
    bits: u32,
    granularity: Granularity,
    mode: Mode,
    non_finite: NonFinite,
    _scale: PhantomData<S>,
}

impl AbsmaxQuantizer<Fp32> {
    /// A quantizer with `f32` scales, rounding half to even, erroring on NaN and infinity.
    ///
    /// # Errors
    /// [`Error::InvalidBits`] unless `2 <= bits <= 8`, [`Error::ZeroGroupSize`] for a block
    /// size or column count of zero.
    pub fn new(bits: u32, granularity: Granularity) -> Result<Self, Error> {
        Self::with_scale_format(bits, granularity)
    }
}

impl<S: FloatFormat> AbsmaxQuantizer<S> {
    /// A quantizer whose scales are stored in the format `S`.
    ///
    /// # Errors
    /// As [`AbsmaxQuantizer::new`], and [`Error::UnsupportedScaleFormat`] for a scale format
    /// wider than 32 bits.
    pub fn with_scale_format(bits: u32, granularity: Granularity) -> Result<Self, Error> {
        if !(2..=8).contains(&bits) {
            return Err(Error::InvalidBits { bits, min: 2, max: 8 });
        }
        granularity.validate()?;
        super::check_scale_layout(&S::LAYOUT)?;
        Ok(Self {
            bits,
            granularity,
            mode: Mode::Even,
            non_finite: NonFinite::Error,
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

    /// The largest code magnitude, `2^(k-1) - 1`.
    pub fn qmax(&self) -> i32 {
        (1 << (self.bits - 1)) - 1
    }
}

/// The stored scale of an all-zero group: 0, or the smallest positive value without a zero.
pub(crate) fn zero_scale<S: FloatFormat>() -> Scale {
    let z = Scale::store::<S>(0.0);
    if z.value == 0.0 {
        z
    } else {
        Scale::store::<S>(S::MIN_POSITIVE as f32)
    }
}

/// The NaN scale of the [`NonFinite::Propagate`] policy, if `S` has a NaN.
pub(crate) fn nan_scale<S: FloatFormat>(group: usize) -> Result<Scale, Error> {
    if S::LAYOUT.has_nan() {
        Ok(Scale::store::<S>(f32::NAN))
    } else {
        Err(Error::ScaleOutOfRange { group, scale: f32::NAN })
    }
}

impl<S: FloatFormat> Kernel for AbsmaxQuantizer<S> {
    fn scheme(&self) -> Scheme {
        Scheme::Symmetric
    }
    const ABSMAX_ONLY: bool = true;
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
        let amax = st.absmax();
        if amax == 0.0 {
            return Ok((zero_scale::<S>(), 0));
        }
        let raw = amax / self.qmax() as f32;
        let mut s = Scale::store_bounded::<S>(raw, self.qmax() as f32);
        // A subnormal scale is coarse (up to half its step off `amax / qmax`, 10 % at five
        // ulps): rounded down, the group's largest values would clip past half a step. Take
        // the next code up then, so that `s × qmax >= amax` (normal scales are within 2^-24).
        if s.value > 0.0 && s.value < f32::MIN_POSITIVE && f64::from(s.value) * (self.qmax() as f64) < f64::from(amax) {
            s = s.step::<S>(1);
        }
        if !(s.value.is_finite() && s.value > 0.0) {
            return Err(Error::ScaleOutOfRange { group, scale: raw });
        }
        Ok((s, 0))
    }
    #[inline(always)]
    fn enc(&self, scale: f32, _zp: u8) -> IntEnc {
        let q = self.qmax() as f32;
        IntEnc {
            inv: int_codes::inverse(scale),
            scale,
            lo: -q,
            hi: q,
            offset: 0,
            mode: self.mode,
        }
    }
    #[inline(always)]
    fn dec(&self, scale: f32, _zp: u8) -> IntDec {
        let half = 1u8 << (self.bits - 1);
        IntDec {
            scale,
            xor: half,
            sub: f32::from(half),
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

walk::walker_quantizer!(impl[S: FloatFormat] AbsmaxQuantizer<S>, |q| q.bits);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::AffineQuantizer;
    use crate::quant::Quantizer;

    /// F31: a subnormal `f32` scale rounded down made the group's largest values clip past
    /// half a step; it is taken one code up instead.
    #[test]
    fn subnormal_scale_keeps_the_error_bound() {
        let x = [2.26e-43f32, -1.0e-44, 0.0];
        for bits in 2..=8 {
            let q = AbsmaxQuantizer::new(bits, Granularity::PerTensor).unwrap();
            let z = q.quantize(&x).unwrap();
            let s = z.scales()[0];
            let y = q.dequantize(&z).unwrap();
            for (a, b) in x.iter().zip(&y) {
                assert!(
                    (f64::from(*a) - f64::from(*b)).abs() <= f64::from(s) / 2.0,
                    "{bits}: {a:e} {b:e} {s:e}"
                );
            }
        }
    }

    #[test]
    fn all_zero_block_is_exact_zero() {
        let q = AbsmaxQuantizer::<crate::E8M0>::with_scale_format(4, Granularity::PerBlock(3)).unwrap();
        let z = q.quantize(&[0.0, -0.0, 0.0, 1.0]).unwrap();
        assert_eq!(q.dequantize(&z).unwrap()[..3], [0.0; 3]);
    }

    #[test]
    fn non_finite_policies() {
        let x = [1.0, 2.0, 3.0, f32::NAN, 0.5, f32::INFINITY];
        let q = AbsmaxQuantizer::new(8, Granularity::PerBlock(3)).unwrap();
        assert_eq!(q.quantize(&x), Err(Error::NonFinite { group: 1, index: 3 }));
        let p = q.with_non_finite(NonFinite::Propagate);
        let y = p.dequantize(&p.quantize(&x).unwrap()).unwrap();
        assert!(y[3..].iter().all(|v| v.is_nan()));
        assert_eq!(y[2], 3.0);
        let i = q.with_non_finite(NonFinite::Skip);
        let y = i.dequantize(&i.quantize(&x).unwrap()).unwrap();
        assert_eq!(y[3..], [0.0, 0.5, 0.5]);
    }

    #[test]
    fn half_away() {
        let q = AbsmaxQuantizer::new(8, Granularity::PerTensor).unwrap();
        // scale 1: 127 / 127
        let x = [127.0, 0.5, 1.5, 2.5, -0.5, -2.5];
        assert_eq!(q.quantize(&x).unwrap().unpacked_codes(), [127, 0, 2, 2, 0, 254]);
        let a = q.with_rounding(Rounding::NearestAway).unwrap();
        assert_eq!(a.quantize(&x).unwrap().unpacked_codes(), [127, 1, 2, 3, 255, 253]);
    }

    #[test]
    fn toward_zero_and_stochastic() {
        let q = AbsmaxQuantizer::new(8, Granularity::PerTensor).unwrap();
        let x = [127.0, 0.9, 1.5, 2.99, -0.9, -2.5];
        let t = q.with_rounding(Rounding::TowardZero).unwrap();
        assert_eq!(t.quantize(&x).unwrap().unpacked_codes(), [127, 0, 1, 2, 0, 254]);
        assert_eq!(
            q.with_rounding(Rounding::Stochastic(7)).unwrap_err(),
            Error::UnsupportedRounding
        );
        let a = AffineQuantizer::new(8, Granularity::PerTensor).unwrap();
        assert_eq!(
            a.with_rounding(Rounding::Stochastic(0)).unwrap_err(),
            Error::UnsupportedRounding
        );
    }
}
