//! Block-wise k-bit quantization behind one object-safe trait.
//!
//! A [`Quantizer`] turns a slice of `f32` into a [`Quantized`] value: bit-packed integer codes
//! (see [`pack`] for the bit order), one scale per group and, for the affine scheme, one zero
//! point per group. Groups are set by a [`Granularity`]: the whole tensor, each row or each
//! column of a row-major matrix, or blocks of `B` consecutive elements (the last one may be
//! shorter).
//!
//! | quantizer | codes | formula | bits |
//! |---|---|---|---|
//! | [`AbsmaxQuantizer`] | signed, `±(2^(k-1) - 1)` | `s = absmax / (2^(k-1) - 1)`, `q = round(x / s)`, `x' = q s` | 2..=8 |
//! | [`AffineQuantizer`] | unsigned, `0 ..= 2^k - 1` | `s = (max - min) / (2^k - 1)`, `q = round(x / s) + z`, `x' = (q - z) s` | 1..=8 |
//! | [`CodebookQuantizer`] | index into a [`Codebook`] (NF4, FP4, E2M1, NFk, yours) | `s = absmax`, `q = nearest level to x / s`, `x' = level[q] s` | 1..=8 |
//!
//! [`double`] quantizes the scales again (QLoRA's double quantization) and reports storage;
//! [`crate::compat::bnb`] reproduces bitsandbytes' bytes.
//!
//! Scales are stored as `f32` by default, or rounded through any [`FloatFormat`](crate::FloatFormat) chosen with
//! the quantizer's type parameter (`AbsmaxQuantizer::<Fp16>`, `E8M0` for power-of-two scales,
//! ...). The scale is rounded to its storage format *first*, and the codes are computed with
//! the stored scale, so the error the storage format adds is part of what you get, and
//! [`Quantized::scales`] holds exactly what a reader of the bytes sees.
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer};
//!
//! let x: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
//! let q = AbsmaxQuantizer::new(4, Granularity::PerBlock(32))?;
//! let packed = q.quantize(&x)?;
//! assert_eq!(packed.scales().len(), 4); // 32 + 32 + 32 + 4
//! assert_eq!(packed.codes().len(), 50); // 100 codes of 4 bits
//! assert_eq!(packed.bits_per_element(), 4.0 + 4.0 * 32.0 / 100.0);
//!
//! let y = q.dequantize(&packed)?;
//! for (block, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
//!     let s = packed.scales()[block];
//!     assert!(xs.iter().zip(ys).all(|(a, b)| (a - b).abs() <= s / 2.0 * 1.0001));
//! }
//!
//! // The bytes round-trip.
//! let bytes = packed.to_bytes();
//! assert_eq!(lowbit::quant::Quantized::from_bytes(&bytes)?, packed);
//! # Ok::<(), lowbit::Error>(())
//! ```

mod absmax;
mod affine;
pub mod codebook;
pub mod double;
mod error;
mod granularity;
mod int_codes;
pub mod mx;
#[doc(hidden)]
pub use mx::math as mx_math;
pub mod pack;
mod quantized;
pub(crate) mod walk;

pub use crate::format::Rounding;
pub use crate::NonFinite;
pub use absmax::AbsmaxQuantizer;
pub use affine::{AffineQuantizer, QParams, QRange, TORCH_EPS};
pub use codebook::{Codebook, CodebookQuantizer, ZeroBlock};
pub use error::Error;
pub use granularity::Granularity;
pub use quantized::Quantized;
pub(crate) use quantized::{check_len, check_scale_layout, expect_len, GroupParams, Scale};

/// Which scheme produced a [`Quantized`] value, and so how its codes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Signed codes in `k`-bit two's complement, `x' = q × scale` ([`AbsmaxQuantizer`]).
    Symmetric,
    /// Unsigned codes `0 ..= 2^k - 1`, `x' = (q - zero_point) × scale` ([`AffineQuantizer`]).
    Affine,
    /// Another scheme, identified by its own tag, `0..=253` (codebook quantizers and the
    /// like); codes are unsigned `k`-bit indices.
    Other(u8),
}

impl Scheme {
    fn tag(self) -> u8 {
        match self {
            Scheme::Symmetric => 0,
            Scheme::Affine => 1,
            Scheme::Other(t) => t.saturating_add(2),
        }
    }
    /// [`Error::UnsupportedScheme`] for an [`Other`](Scheme::Other) tag that does not fit the
    /// byte layout's one byte.
    fn check_tag(self) -> Result<(), Error> {
        match self {
            Scheme::Other(t) if t > 253 => Err(Error::UnsupportedScheme(t)),
            _ => Ok(()),
        }
    }
    fn from_tag(t: u8) -> Scheme {
        match t {
            0 => Scheme::Symmetric,
            1 => Scheme::Affine,
            t => Scheme::Other(t - 2),
        }
    }
}

/// Quantize slices of `f32` and dequantize them back.
///
/// Object safe: `Box<dyn Quantizer>` works. The `_into` methods allocate nothing once the
/// destination has the capacity.
///
/// # Examples
///
/// ```
/// use lowbit::quant::{AbsmaxQuantizer, AffineQuantizer, Granularity, Quantized, Quantizer};
///
/// let qs: Vec<Box<dyn Quantizer>> = vec![
///     Box::new(AbsmaxQuantizer::new(8, Granularity::PerBlock(64))?),
///     Box::new(AffineQuantizer::new(4, Granularity::PerTensor)?),
/// ];
/// let x = [0.0, 0.25, -1.0, 0.5];
/// let mut q = Quantized::empty();
/// let mut y = [0f32; 4];
/// for quantizer in &qs {
///     quantizer.quantize_into(&x, &mut q)?;
///     quantizer.dequantize_into(&q, &mut y)?;
///     assert_eq!(y[0], 0.0); // zero is exact in both schemes
///     assert_eq!(y[2], -1.0);
/// }
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub trait Quantizer {
    /// Bits per code.
    fn bits(&self) -> u32;

    /// How elements are grouped.
    fn granularity(&self) -> Granularity;

    /// Quantize `x` into a new [`Quantized`].
    ///
    /// # Errors
    /// As [`quantize_into`](Self::quantize_into).
    fn quantize(&self, x: &[f32]) -> Result<Quantized, Error> {
        let mut q = Quantized::empty();
        self.quantize_into(x, &mut q)?;
        Ok(q)
    }

    /// Quantize `x` into `out`, reusing its buffers.
    ///
    /// # Errors
    /// [`Error::NotAMultiple`] when a per-row or per-column length does not divide `x.len()`,
    /// [`Error::NonFinite`] for NaN or infinity under the default policy, and
    /// [`Error::ScaleOutOfRange`] when a scale does not fit its storage format.
    fn quantize_into(&self, x: &[f32], out: &mut Quantized) -> Result<(), Error>;

    /// Dequantize into a new vector.
    ///
    /// # Errors
    /// As [`dequantize_into`](Self::dequantize_into).
    fn dequantize(&self, q: &Quantized) -> Result<Vec<f32>, Error> {
        let mut out = vec![0f32; q.len()];
        self.dequantize_into(q, &mut out)?;
        Ok(out)
    }

    /// Dequantize into `out`, which must hold exactly `q.len()` elements.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `out.len() != q.len()`, [`Error::Incompatible`] when `q`
    /// was made by another scheme or bit width.
    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error>;
}

/// Check that a [`Quantized`] matches a quantizer before decoding it.
pub(crate) fn check_compatible(q: &Quantized, scheme: Scheme, bits: u32, out_len: usize) -> Result<(), Error> {
    if q.scheme() != scheme {
        return Err(Error::Incompatible("scheme"));
    }
    if q.bits() != bits {
        return Err(Error::Incompatible("bit width"));
    }
    expect_len(q.len(), out_len)
}
