//! Ternary weights (TWN, Li et al., 2016): `x' ∈ {-α, 0, +α}` per channel, two bits per
//! element.
//!
//! Per channel: the threshold `Δ = 0.7 · mean|x|` (TWN's approximation of the optimal
//! threshold for Gaussian weights; the factor is configurable), the set `I = {i : |x_i| > Δ}`,
//! and `α = mean_{i∈I} |x_i|` (0 when `I` is empty). Element codes, packed two bits each most
//! significant first (as everywhere in the crate, [`crate::quant::pack`]): `0` is 0, `1` is `+α`, `2` is `-α`.
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::ternary::Ternary;
//!
//! let t = Ternary::quantize(&[0.9, -1.1, 0.1, 0.0], 1)?;
//! // mean|x| = 0.525, Δ = 0.3675: I = {0.9, -1.1}, α = 1.0
//! assert_eq!(t.alphas(), &[1.0]);
//! let mut y = [0.0; 4];
//! t.dequantize(&mut y)?;
//! assert_eq!(y, [1.0, -1.0, 0.0, 0.0]);
//! assert_eq!(t.packed(), &[0b01_10_00_00]);
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::binary::{contiguous, mean_abs};
use super::{channel_rows, check_finite, check_len, Error};
use crate::format::{FloatFormat, Layout};
use crate::quant::walk::{self, Kernel, Stats};
use crate::quant::{Error as QuantError, Granularity, NonFinite, Quantizer, Scale, Scheme};
use crate::Fp32;

/// TWN's threshold factor: `Δ = 0.7 · mean|x|`.
pub const TWN_THRESHOLD: f32 = 0.7;

/// The [`Scheme`] tag of ternary quantization in a [`Quantized`](crate::quant::Quantized).
pub const TERNARY_SCHEME: Scheme = Scheme::Other(12);

/// A group's threshold `Δ = factor · mean|x|` (in `f64`, rounded once) and scale `α`, the
/// mean of the magnitudes above it (0 when none is).
fn threshold_and_alpha(x: &[f32], factor: f32) -> (f32, f32) {
    let delta = (f64::from(factor) * mean_abs(x)) as f32;
    let (mut sum, mut n) = (0f64, 0usize);
    for v in x {
        if v.abs() > delta {
            sum += f64::from(v.abs());
            n += 1;
        }
    }
    (delta, if n == 0 { 0.0 } else { (sum / n as f64) as f32 })
}

/// Ternary quantization as a [`Quantizer`]: per group the threshold `Δ = factor · mean|x|`,
/// `α` the mean of the magnitudes above it, 2-bit codes (`0`: 0, `1`: `+α`, `2`: `-α`), `f32`
/// scales, codes MSB first, scheme [`TERNARY_SCHEME`]. The thresholds are not stored (they are
/// not needed to dequantize; [`Ternary`] keeps them).
///
/// ```
/// use lowbit::quant::{Granularity, Quantizer};
/// use lowbit::scheme::ternary::TernaryQuantizer;
///
/// let q = TernaryQuantizer::new(Granularity::PerTensor)?;
/// let z = q.quantize(&[0.9, -1.1, 0.1, 0.0])?;
/// assert_eq!(z.scales(), [1.0]);
/// assert_eq!(q.dequantize(&z)?, [1.0, -1.0, 0.0, 0.0]);
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TernaryQuantizer {
    granularity: Granularity,
    factor: f32,
}

impl TernaryQuantizer {
    /// Groups of the tensor, rows or blocks, with TWN's threshold factor 0.7.
    ///
    /// # Errors
    /// [`QuantError::ZeroGroupSize`] for empty groups, [`QuantError::Incompatible`] per column.
    pub fn new(granularity: Granularity) -> Result<Self, QuantError> {
        Ok(Self {
            granularity: contiguous(granularity)?,
            factor: TWN_THRESHOLD,
        })
    }

    /// The same with threshold `factor · mean|x|`.
    ///
    /// # Errors
    /// [`QuantError::Parameter`] when `factor` is negative or not finite.
    pub fn with_factor(self, factor: f32) -> Result<Self, QuantError> {
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(QuantError::Parameter {
                name: "factor",
                value: f64::from(factor),
                why: "must be a finite number >= 0",
            });
        }
        Ok(Self { factor, ..self })
    }
}

impl Kernel for TernaryQuantizer {
    fn scheme(&self) -> Scheme {
        TERNARY_SCHEME
    }
    const ABSMAX_ONLY: bool = true;
    /// The group's threshold.
    type Enc = f32;
    type Dec = f32;
    fn non_finite(&self) -> NonFinite {
        NonFinite::Error
    }
    fn layout(&self) -> Layout {
        Fp32::LAYOUT
    }
    fn params(&self, _group: usize, _st: Stats) -> Result<(Scale, u8), QuantError> {
        Err(QuantError::Incompatible("ternary quantization needs contiguous groups"))
    }
    fn group(&self, _g: usize, x: &[f32], _st: Stats) -> Result<(Scale, u8, f32), QuantError> {
        let (delta, alpha) = threshold_and_alpha(x, self.factor);
        Ok((Scale::store::<Fp32>(alpha), 0, delta))
    }
    fn enc(&self, _scale: f32, _zp: u8) -> f32 {
        // Only the per-column path builds a map from a stored scale, and it is refused.
        f32::INFINITY
    }
    #[inline(always)]
    fn encode(&self, delta: &f32, x: &[f32], out: &mut [u8]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = if v.abs() > *delta { 1 + u8::from(*v < 0.0) } else { 0 };
        }
    }
    fn dec(&self, scale: f32, _zp: u8) -> f32 {
        scale
    }
    #[inline(always)]
    fn decode(&self, a: &f32, codes: &[u8], out: &mut [f32]) {
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = match c & 3 {
                1 => *a,
                2 => -a,
                _ => 0.0,
            };
        }
    }
}

walk::walker_quantizer!(impl[] TernaryQuantizer, |_q| 2);

/// A ternarized tensor: 2-bit codes and one scale (and threshold) per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternary {
    packed: Vec<u8>,
    alphas: Vec<f32>,
    deltas: Vec<f32>,
    len: usize,
}

impl Ternary {
    /// Ternarize `x`, split into `channels` equal rows, with TWN's threshold `0.7 · mean|x|`.
    ///
    /// # Errors
    /// [`Error::NotDivisible`] when `x.len()` is not a multiple of `channels` (or `channels` is
    /// 0); [`Error::Parameter`] for an empty `x` split into more than
    /// [`MAX_EMPTY_CHANNELS`](super::MAX_EMPTY_CHANNELS) channels; [`Error::NonFinite`] for a
    /// NaN or infinity.
    pub fn quantize(x: &[f32], channels: usize) -> Result<Self, Error> {
        Self::quantize_with(x, channels, TWN_THRESHOLD)
    }

    /// As [`quantize`](Self::quantize) with threshold `factor · mean|x|`.
    ///
    /// # Errors
    /// As [`quantize`](Self::quantize); [`Error::Parameter`] when `factor` is negative or not
    /// finite.
    pub fn quantize_with(x: &[f32], channels: usize, factor: f32) -> Result<Self, Error> {
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(Error::Parameter {
                name: "factor",
                value: f64::from(factor),
                why: "must be a finite number >= 0",
            });
        }
        let row = channel_rows(x.len(), channels)?;
        check_finite(x, "x")?;
        if row == 0 {
            return Ok(Ternary {
                packed: Vec::new(),
                alphas: vec![0.0; channels],
                deltas: vec![0.0; channels],
                len: 0,
            });
        }
        let q = TernaryQuantizer::new(Granularity::PerRow { cols: row })?
            .with_factor(factor)?
            .quantize(x)?;
        let deltas = x.chunks_exact(row).map(|r| threshold_and_alpha(r, factor).0).collect();
        let (packed, alphas, _) = q.into_parts();
        Ok(Ternary {
            packed,
            alphas,
            deltas,
            len: x.len(),
        })
    }

    per_channel_tensor!(
        TernaryQuantizer,
        "The 2-bit codes, four per byte, most significant first."
    );
    /// The per-channel thresholds `Δ` used.
    pub fn deltas(&self) -> &[f32] {
        &self.deltas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_and_errors() {
        let t = Ternary::quantize(&[0.0; 8], 2).unwrap();
        assert_eq!(t.alphas(), &[0.0, 0.0]);
        let mut y = [1.0; 8];
        t.dequantize(&mut y).unwrap();
        assert_eq!(y, [0.0; 8]);
        assert!(matches!(
            Ternary::quantize(&[1.0; 3], 2),
            Err(Error::NotDivisible { .. })
        ));
        assert!(matches!(
            Ternary::quantize_with(&[1.0], 1, -1.0),
            Err(Error::Parameter { .. })
        ));
        assert_eq!(Ternary::quantize(&[1.0; 16], 1).unwrap().bits_per_element(), 4.0);
    }

    /// An empty tensor's channel count is bounded: `usize::MAX` channels overflowed the
    /// allocation of their scales and thresholds.
    #[test]
    fn empty_tensor_with_absurd_channels() {
        for channels in [usize::MAX, u32::MAX as usize, super::super::MAX_EMPTY_CHANNELS + 1] {
            assert!(matches!(
                Ternary::quantize(&[], channels),
                Err(Error::Parameter { name: "channels", .. })
            ));
            assert!(Ternary::quantize_with(&[], channels, 0.5).is_err());
        }
        let t = Ternary::quantize(&[], 3).unwrap();
        assert_eq!((t.alphas(), t.deltas()), (&[0.0; 3][..], &[0.0; 3][..]));
    }

    /// The walker's result equals TWN's definition element by element, on sizes that take
    /// the walker's fixed-block, staged and whole-tensor paths.
    #[test]
    fn walker_equals_definition() {
        let mut rng = crate::testing::XorShift(0x2545_f491_4f6c_dd1d);
        for (rows, cols) in [(1, 1), (3, 7), (2, 64), (5, 100), (4, 256), (1, 1000)] {
            let x: Vec<f32> = (0..rows * cols).map(|_| rng.centered() * 3.0).collect();
            let t = Ternary::quantize(&x, rows).unwrap();
            let mut y = vec![0f32; x.len()];
            t.dequantize(&mut y).unwrap();
            for (r, ((xr, yr), (&a, &d))) in x
                .chunks(cols)
                .zip(y.chunks(cols))
                .zip(t.alphas().iter().zip(t.deltas()))
                .enumerate()
            {
                let mean = xr.iter().map(|v| f64::from(v.abs())).sum::<f64>() / cols as f64;
                assert_eq!(d, (f64::from(TWN_THRESHOLD) * mean) as f32, "row {r}");
                let kept: Vec<f64> = xr.iter().filter(|v| v.abs() > d).map(|v| f64::from(v.abs())).collect();
                let alpha = if kept.is_empty() {
                    0.0
                } else {
                    (kept.iter().sum::<f64>() / kept.len() as f64) as f32
                };
                assert_eq!(a, alpha);
                for (v, y) in xr.iter().zip(yr) {
                    let want = if v.abs() > d {
                        if *v < 0.0 {
                            -a
                        } else {
                            a
                        }
                    } else {
                        0.0
                    };
                    assert_eq!(*y, want);
                }
            }
        }
        assert!(TernaryQuantizer::new(Granularity::PerColumn { cols: 2 }).is_err());
    }
}
