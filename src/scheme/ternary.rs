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

use super::{channel_rows, check_finite, check_len, pack_codes, Error};

/// TWN's threshold factor: `Δ = 0.7 · mean|x|`.
pub const TWN_THRESHOLD: f32 = 0.7;

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
        let mut alphas = vec![0f32; channels];
        let mut deltas = vec![0f32; channels];
        let mut codes = vec![0u8; x.len()];
        if row > 0 {
            for (((r, c), a), d) in x
                .chunks_exact(row)
                .zip(codes.chunks_exact_mut(row))
                .zip(&mut alphas)
                .zip(&mut deltas)
            {
                let mean = r.iter().map(|v| f64::from(v.abs())).sum::<f64>() / row as f64;
                let delta = (f64::from(factor) * mean) as f32;
                let (mut sum, mut n) = (0f64, 0usize);
                for (&v, c) in r.iter().zip(c.iter_mut()) {
                    if v.abs() > delta {
                        sum += f64::from(v.abs());
                        n += 1;
                        *c = if v < 0.0 { 2 } else { 1 };
                    }
                }
                *d = delta;
                *a = if n == 0 { 0.0 } else { (sum / n as f64) as f32 };
            }
        }
        Ok(Ternary {
            packed: pack_codes(&codes, 2),
            alphas,
            deltas,
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
    /// The per-channel thresholds `Δ` used.
    pub fn deltas(&self) -> &[f32] {
        &self.deltas
    }
    /// The 2-bit codes, four per byte, most significant first.
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }
    /// Storage in bytes: the codes and one f32 scale per channel.
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
        for (i, (o, &a)) in out.chunks_exact_mut(row).zip(&self.alphas).enumerate() {
            for (j, o) in o.iter_mut().enumerate() {
                let k = i * row + j;
                *o = match (self.packed[k / 4] >> (6 - 2 * (k % 4))) & 3 {
                    1 => a,
                    2 => -a,
                    _ => 0.0,
                };
            }
        }
        Ok(())
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
}
