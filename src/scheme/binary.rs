//! Binary weights (XNOR-Net, Rastegari et al., 2016): `x' = sign(x) · α` with `α = mean|x|`
//! per channel, one bit per element.
//!
//! `α` is the mean of `|x|` over the channel (computed in f64, stored as f32), which is the
//! scale minimising `‖x - α·sign(x)‖²`. `sign(0) = +1`. The tensor is split into `channels`
//! equal contiguous rows (the output channels of a row-major `[out, in]` weight; 1 for a
//! per-tensor scale). Bits are packed most significant bit first, as everywhere in the crate
//! ([`crate::quant::pack`]); a set bit is a negative sign.
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

use super::{channel_rows, check_finite, check_len, pack_codes, Error};

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
        let alphas = if row == 0 {
            vec![0.0; channels]
        } else {
            x.chunks_exact(row)
                .map(|r| (r.iter().map(|v| f64::from(v.abs())).sum::<f64>() / row as f64) as f32)
                .collect()
        };
        let bits: Vec<u8> = x.iter().map(|&v| u8::from(v < 0.0)).collect();
        Ok(Binary {
            packed: pack_codes(&bits, 1),
            alphas,
            len: x.len(),
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The per-channel scales `α`.
    pub fn alphas(&self) -> &[f32] {
        &self.alphas
    }
    /// The sign bits, 8 per byte, most significant first; 1 means negative.
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }
    /// Storage in bytes: the bits and one f32 per channel.
    pub fn size_bytes(&self) -> usize {
        self.packed.len() + 4 * self.alphas.len()
    }
    /// Bits per element including the scales.
    pub fn bits_per_element(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        8.0 * self.size_bytes() as f64 / self.len as f64
    }

    /// Dequantize into `out`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `out.len() != self.len()`.
    pub fn dequantize(&self, out: &mut [f32]) -> Result<(), Error> {
        check_len("out", self.len, out.len())?;
        if self.len == 0 {
            return Ok(());
        }
        let row = self.len / self.alphas.len();
        for (i, (o, a)) in out.chunks_exact_mut(row).zip(&self.alphas).enumerate() {
            for (j, o) in o.iter_mut().enumerate() {
                let k = i * row + j;
                let neg = (self.packed[k / 8] >> (7 - k % 8)) & 1 == 1;
                *o = if neg { -a } else { *a };
            }
        }
        Ok(())
    }
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
}
