//! Binary weights (XNOR-Net, Rastegari et al., 2016): `x' = sign(x) · α` with `α = mean|x|`
//! per channel, one bit per element.
//!
//! `α` is the mean of `|x|` over the channel (computed in f64, stored as f32), which is the
//! scale minimising `‖x - α·sign(x)‖²`. `sign(0) = +1`. The tensor is split into `channels`
//! equal contiguous rows (the output channels of a row-major `[out, in]` weight; 1 for a
//! per-tensor scale). Bits are packed most significant bit first, as everywhere in the crate
//! ([`crate::quant::pack`]); a set bit is a negative sign.
//!
//! [`BinaryQuantizer`] is the same on the crate's block walker, as a
//! [`Quantizer`] over any contiguous groups (tensor, rows, blocks);
//! [`Binary`] is its per-channel form.
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::binary::Binary;
//!
//! let b = Binary::quantize(&[0.5, -1.5, 1.0, 0.0, 2.0, -2.0], 2)?;
//! assert_eq!(b.alphas(), &[1.0, 4.0 / 3.0]);
//! assert_eq!(b.packed(), &[0b0100_0100]);
//! let mut y = [0.0; 6];
//! b.dequantize(&mut y)?;
//! assert_eq!(y, [1.0, -1.0, 1.0, 4.0 / 3.0, 4.0 / 3.0, -4.0 / 3.0]);
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::{channel_rows, check_finite, check_len, Error};
use crate::format::{FloatFormat, Layout};
use crate::quant::walk::{self, Kernel, Stats};
use crate::quant::{Error as QuantError, Granularity, NonFinite, Quantizer, Scale, Scheme};
use crate::Fp32;

/// The [`Scheme`] tag of binary quantization in a [`Quantized`](crate::quant::Quantized).
pub const BINARY_SCHEME: Scheme = Scheme::Other(11);

/// `mean |x|` in `f64`, rounded once to `f32`: binary's `α` and ternary's threshold base.
pub(crate) fn mean_abs(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|v| f64::from(v.abs())).sum::<f64>() / x.len() as f64
}

/// Refuse per-column groups: the schemes' statistics are over contiguous runs.
pub(crate) fn contiguous(granularity: Granularity) -> Result<Granularity, QuantError> {
    granularity.validate()?;
    if matches!(granularity, Granularity::PerColumn { .. }) {
        return Err(QuantError::Incompatible(
            "binary and ternary quantization group contiguous runs: per tensor, per row or per block",
        ));
    }
    Ok(granularity)
}

/// Binary quantization as a [`Quantizer`]: per group `α = mean|x|`, one bit per element (1:
/// negative), `x' = ±α`; `f32` scales, codes MSB first, scheme [`BINARY_SCHEME`].
///
/// ```
/// use lowbit::quant::{Granularity, Quantizer};
/// use lowbit::scheme::binary::BinaryQuantizer;
///
/// let q = BinaryQuantizer::new(Granularity::PerBlock(4))?;
/// let z = q.quantize(&[0.5, -1.5, 1.0, 0.0, 2.0, -2.0, 1.0, 1.0])?;
/// assert_eq!(z.scales(), [0.75, 1.5]);
/// assert_eq!(z.codes(), [0b0100_0100]);
/// assert_eq!(q.dequantize(&z)?, [0.75, -0.75, 0.75, 0.75, 1.5, -1.5, 1.5, 1.5]);
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinaryQuantizer {
    granularity: Granularity,
}

impl BinaryQuantizer {
    /// Groups of the tensor, rows or blocks.
    ///
    /// # Errors
    /// [`QuantError::ZeroGroupSize`] for empty groups, [`QuantError::Incompatible`] per column.
    pub fn new(granularity: Granularity) -> Result<Self, QuantError> {
        Ok(Self {
            granularity: contiguous(granularity)?,
        })
    }
}

impl Kernel for BinaryQuantizer {
    fn scheme(&self) -> Scheme {
        BINARY_SCHEME
    }
    const ABSMAX_ONLY: bool = true;
    type Enc = ();
    type Dec = f32;
    fn non_finite(&self) -> NonFinite {
        NonFinite::Error
    }
    fn layout(&self) -> Layout {
        Fp32::LAYOUT
    }
    fn params(&self, _group: usize, _st: Stats) -> Result<(Scale, u8), QuantError> {
        Err(QuantError::Incompatible("binary quantization needs contiguous groups"))
    }
    fn group(&self, _g: usize, x: &[f32], _st: Stats) -> Result<(Scale, u8, ()), QuantError> {
        Ok((Scale::store::<Fp32>(mean_abs(x) as f32), 0, ()))
    }
    fn enc(&self, _scale: f32, _zp: u8) {}
    #[inline(always)]
    fn encode(&self, _e: &(), x: &[f32], out: &mut [u8]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = u8::from(*v < 0.0);
        }
    }
    fn dec(&self, scale: f32, _zp: u8) -> f32 {
        scale
    }
    #[inline(always)]
    fn decode(&self, a: &f32, codes: &[u8], out: &mut [f32]) {
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = if c & 1 == 1 { -a } else { *a };
        }
    }
}

walk::walker_quantizer!(impl[] BinaryQuantizer, |_q| 1);

/// A binarized tensor: one sign bit per element and one scale per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Binary {
    packed: Vec<u8>,
    alphas: Vec<f32>,
    len: usize,
}

impl Binary {
    /// Binarize `x`, split into `channels` equal rows.
    ///
    /// # Errors
    /// [`Error::NotDivisible`] when `x.len()` is not a multiple of `channels` (or `channels` is
    /// 0); [`Error::Parameter`] for an empty `x` split into more than
    /// [`MAX_EMPTY_CHANNELS`](super::MAX_EMPTY_CHANNELS) channels; [`Error::NonFinite`] for a
    /// NaN or infinity.
    pub fn quantize(x: &[f32], channels: usize) -> Result<Self, Error> {
        let row = channel_rows(x.len(), channels)?;
        check_finite(x, "x")?;
        if row == 0 {
            return Ok(Binary {
                packed: Vec::new(),
                alphas: vec![0.0; channels],
                len: 0,
            });
        }
        let q = BinaryQuantizer::new(Granularity::PerRow { cols: row })?.quantize(x)?;
        let (packed, alphas, _) = q.into_parts();
        Ok(Binary {
            packed,
            alphas,
            len: x.len(),
        })
    }

    per_channel_tensor!(
        BinaryQuantizer,
        "The sign bits, 8 per byte, most significant first; 1 means negative."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_channels() {
        assert!(matches!(
            Binary::quantize(&[1.0; 5], 2),
            Err(Error::NotDivisible { .. })
        ));
        assert!(matches!(
            Binary::quantize(&[1.0; 4], 0),
            Err(Error::NotDivisible { .. })
        ));
        assert!(matches!(Binary::quantize(&[f32::NAN], 1), Err(Error::NonFinite { .. })));
        let b = Binary::quantize(&[], 3).unwrap();
        assert_eq!(b.alphas(), &[0.0; 3]);
        assert!(b.dequantize(&mut []).is_ok());
        assert!(matches!(
            Binary::quantize(&[1.0], 1).unwrap().dequantize(&mut [0.0; 2]),
            Err(Error::Shape { .. })
        ));
    }

    /// An empty tensor's channel count is bounded: `usize::MAX` channels overflowed the
    /// allocation of their scales.
    #[test]
    fn empty_tensor_with_absurd_channels() {
        for channels in [usize::MAX, u32::MAX as usize, super::super::MAX_EMPTY_CHANNELS + 1] {
            assert!(matches!(
                Binary::quantize(&[], channels),
                Err(Error::Parameter { name: "channels", .. })
            ));
        }
        let b = Binary::quantize(&[], super::super::MAX_EMPTY_CHANNELS).unwrap();
        assert_eq!(b.alphas().len(), super::super::MAX_EMPTY_CHANNELS);
        assert!(b.is_empty());
    }

    /// The walker's result equals the scheme's definition, element by element: `α = mean|x|`
    /// per row (f64, rounded once), a set bit for a negative value, MSB first; on sizes that
    /// take the walker's fixed-block, staged and whole-tensor paths.
    #[test]
    fn walker_equals_definition() {
        let mut rng = crate::testing::XorShift(0x9e37_79b9_7f4a_7c15);
        for (rows, cols) in [(1, 1), (3, 7), (2, 64), (5, 100), (4, 256), (1, 1000)] {
            let x: Vec<f32> = (0..rows * cols).map(|_| rng.centered() * 3.0).collect();
            let b = Binary::quantize(&x, rows).unwrap();
            let want_alpha: Vec<f32> = x.chunks(cols).map(|r| mean_abs(r) as f32).collect();
            assert_eq!(b.alphas(), want_alpha);
            for (i, v) in x.iter().enumerate() {
                assert_eq!((b.packed()[i / 8] >> (7 - i % 8)) & 1 == 1, *v < 0.0);
            }
            let mut y = vec![0f32; x.len()];
            b.dequantize(&mut y).unwrap();
            for (i, (v, y)) in x.iter().zip(&y).enumerate() {
                let a = want_alpha[i / cols];
                assert_eq!(*y, if *v < 0.0 { -a } else { a });
            }
        }
        assert!(BinaryQuantizer::new(Granularity::PerColumn { cols: 2 }).is_err());
    }
}
