//! Floating-point formats, from FP64 down to FP4, behind one trait.
//!
//! A format is a zero-sized type implementing [`FloatFormat`]; its codes are plain unsigned
//! integers ([`FloatFormat::Code`]: `u8` up to 8 bits, `u16`, `u32` for TF32's 19 bits and
//! FP32, `u64`), right-aligned. Every format is one [`Layout`] run through one generic codec,
//! so all of them round the same way and a layout of your own gets the whole API.
//!
//! | type | bits | exp | man | bias | max | inf | NaN | ml_dtypes / torch name |
//! |---|---|---|---|---|---|---|---|---|
//! | [`Fp64`] | 64 | 11 | 52 | 1023 | 1.8e308 | yes | yes | `float64` |
//! | [`Fp32`] | 32 | 8 | 23 | 127 | 3.4e38 | yes | yes | `float32` |
//! | [`Tf32`] | 19 | 8 | 10 | 127 | 3.4e38 | yes | yes | TF32 |
//! | [`Bf16`] | 16 | 8 | 7 | 127 | 3.39e38 | yes | yes | `bfloat16` |
//! | [`Fp16`] | 16 | 5 | 10 | 15 | 65504 | yes | yes | `float16` |
//! | [`E4M3`] | 8 | 4 | 3 | 7 | 448 | no | `S.1111.111` | `float8_e4m3fn` |
//! | [`E5M2`] | 8 | 5 | 2 | 15 | 57344 | yes | yes | `float8_e5m2` |
//! | [`E4M3Fnuz`] | 8 | 4 | 3 | 8 | 240 | no | `0x80` | `float8_e4m3fnuz` |
//! | [`E5M2Fnuz`] | 8 | 5 | 2 | 16 | 57344 | no | `0x80` | `float8_e5m2fnuz` |
//! | [`E3M4`] | 8 | 3 | 4 | 3 | 15.5 | yes | yes | `float8_e3m4` |
//! | [`E8M0`] | 8 | 8 | 0 | 127 | 2^127 | no | `0xFF` | `float8_e8m0fnu` |
//! | [`E3M2`] | 6 | 3 | 2 | 3 | 28 | no | no | `float6_e3m2fn` |
//! | [`E2M3`] | 6 | 2 | 3 | 1 | 7.5 | no | no | `float6_e2m3fn` |
//! | [`E2M1`] | 4 | 2 | 1 | 1 | 6 | no | no | `float4_e2m1fn` |
//!
//! # Semantics
//!
//! The defaults are ml_dtypes 0.7's (torch 2.11 agrees): round to nearest, ties to even;
//! overflow to infinity where the format has one, to NaN for the `FN`, `FNUZ` and E8M0 formats,
//! and to the largest value for the finite-only formats. Encoding from `f64` rounds once, from
//! the exact input (ml_dtypes goes through `f32` and so rounds some inputs twice).
//!
//! Choices where ml_dtypes is odd, documented and tested:
//! - NaN into a finite-only format (E2M1, E2M3, E3M2) becomes a zero of the NaN's sign
//!   (ml_dtypes gives a zero of the *opposite* sign).
//! - E8M0 has no zero and no sign: zero, negative numbers, infinities and NaN become its NaN
//!   (`0xFF`), as in ml_dtypes (torch takes `|x|` instead). It rounds to the nearest power of
//!   two with ties away from zero (`[2^e, 1.5·2^e)` down, `[1.5·2^e, 2^(e+1))` up) in every
//!   binade, as ml_dtypes 0.7 does; anything below `2^-127` becomes `2^-127`. (ml_dtypes 0.6
//!   sent all of `(2^-127, 2^-126)` up to `2^-126`; lowbit 0.1 followed it.)
//! - A NaN keeps its payload's top bits in [`Fp16`] (NumPy's rule) and [`Tf32`] (quieted);
//!   the other formats give their canonical quiet NaN with the input's sign.
//!
//! # Examples
//!
//! ```
//! use lowbit::{FloatFormat, E4M3, Bf16};
//!
//! let c = E4M3::encode_f32(0.3);
//! assert_eq!(c, 0x2a);
//! assert_eq!(E4M3::decode_f32(c), 0.3125);
//! assert!(E4M3::decode_f32(E4M3::encode_f32(1e6)).is_nan()); // FN: overflow is NaN
//!
//! // One rounding from f64: 1 + 2^-8 + 2^-40 is just above the tie between 1 and 1 + 2^-7.
//! let x = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
//! assert_eq!(Bf16::encode_f64(x), 0x3f81);
//! ```

pub(crate) mod codec;
mod fields;
mod interop;
mod layout;
pub(crate) mod slice;
mod types;

pub use fields::{Class, Fields};
pub use layout::{Layout, NanRule, Options, Overflow, Rounding, Specials};
#[cfg(feature = "rayon")]
pub use slice::par;
pub use slice::{cast, cast_one};
pub use types::{
    Bf16, E4M3Fnuz, E5M2Fnuz, Format, FormatFn, Fp16, Fp32, Fp64, Tf32, E2M1, E2M3, E3M2, E3M4, E4M3, E5M2, E8M0,
};

#[doc(hidden)]
pub use codec::F32Fast;
#[doc(hidden)]
pub use slice::{decode_slice_portable, encode_slice_portable};

/// Errors of the format module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A destination buffer does not have the source's length.
    #[error("length mismatch: expected {expected}, got {actual}")]
    LengthMismatch {
        /// The length needed: the source's.
        expected: usize,
        /// The destination's length.
        actual: usize,
    },
    /// A [`Layout`] the codec cannot handle (see [`Layout::try_new`]).
    #[error("unsupported layout: {0}")]
    InvalidLayout(&'static str),
    /// A code has bits set above the format's width.
    #[error("code {code:#x} does not fit in {bits} bits")]
    CodeOutOfRange {
        /// The offending code.
        code: u64,
        /// The format's width.
        bits: u32,
    },
}

/// The unsigned integer that holds a code, right-aligned.
pub trait Code:
    Copy
    + Clone
    + Default
    + Eq
    + Ord
    + core::hash::Hash
    + core::fmt::Debug
    + core::fmt::LowerHex
    + bytemuck::Pod
    + Send
    + Sync
    + 'static
{
    /// Widen to `u64`.
    fn to_u64(self) -> u64;
    /// Narrow from `u64`, keeping the low bits.
    fn from_u64(v: u64) -> Self;
}

macro_rules! impl_code {
    ($($t:ty),*) => {$(
        impl Code for $t {
            #[inline(always)]
            fn to_u64(self) -> u64 { self as u64 }
            #[inline(always)]
            fn from_u64(v: u64) -> Self { v as $t }
        }
    )*};
}
impl_code!(u8, u16, u32, u64);

/// A binary floating-point format: a [`Layout`] and the integer type of its codes.
///
/// Implementors give three items; everything else is provided, from the one generic codec.
///
/// # Examples
///
/// Declaring a format of your own:
///
/// ```
/// use lowbit::format::{FloatFormat, Layout, NanRule, Specials};
///
/// #[derive(Clone, Copy, Debug, Default)]
/// struct E3M3;
/// impl FloatFormat for E3M3 {
///     type Code = u8;
///     const LAYOUT: Layout = Layout::new(3, 3, 5, Specials::Finite, NanRule::Canonical);
///     const NAME: &'static str = "e3m3";
/// }
///
/// assert_eq!(E3M3::MAX, 7.5);
/// assert_eq!(E3M3::decode_f32(E3M3::encode_f32(1.1)), 1.125);
/// ```
pub trait FloatFormat: Copy + Clone + core::fmt::Debug + Default + Send + Sync + 'static {
    /// The integer holding a code.
    type Code: Code;
    /// The format's layout.
    const LAYOUT: Layout;
    /// A short name, as ml_dtypes or torch spell it where they have the format.
    const NAME: &'static str;

    /// Width of a code in bits.
    const BITS: u32 = Self::LAYOUT.bits();
    /// Largest finite value.
    const MAX: f64 = Self::LAYOUT.max_finite();
    /// Smallest positive normal value.
    const MIN_POSITIVE_NORMAL: f64 = Self::LAYOUT.min_positive_normal();
    /// Smallest positive value.
    const MIN_POSITIVE: f64 = Self::LAYOUT.min_positive();
    /// Gap between 1 and the next value.
    const EPSILON: f64 = Self::LAYOUT.epsilon();

    #[doc(hidden)]
    const FAST: F32Fast = F32Fast::new(&Self::LAYOUT, false);
    #[doc(hidden)]
    const FAST_SATURATE: F32Fast = F32Fast::new(&Self::LAYOUT, true);

    /// Encode an `f32` with the default options (nearest-even, the format's overflow rule).
    ///
    /// ```
    /// use lowbit::{FloatFormat, E2M1};
    /// assert_eq!(E2M1::encode_f32(2.5), 0b0100); // tie between 2 and 3 goes to even: 2
    /// assert_eq!(E2M1::encode_f32(100.0), 0b0111); // finite-only: saturates at 6
    /// ```
    #[inline]
    fn encode_f32(x: f32) -> Self::Code {
        if Self::FAST.fast {
            Self::Code::from_u64(u64::from(codec::encode_f32_rne(&Self::FAST, x)))
        } else {
            Self::encode_f64(codec::widen(x))
        }
    }

    /// Encode an `f64` with the default options, rounding once from the exact value.
    #[inline]
    fn encode_f64(x: f64) -> Self::Code {
        Self::encode_f64_with(x, Options::default())
    }

    /// Encode an `f32` with the given rounding and overflow options.
    ///
    /// ```
    /// use lowbit::format::{FloatFormat, Options, Overflow, Rounding, E4M3};
    /// let sat = Options::default().with_overflow(Overflow::Saturate);
    /// assert_eq!(E4M3::encode_f32_with(1000.0, sat), 0x7e); // 448
    /// let tz = Options::rounding(Rounding::TowardZero);
    /// assert_eq!(E4M3::decode_f32(E4M3::encode_f32_with(0.34, tz)), 0.3125);
    /// ```
    #[inline]
    fn encode_f32_with(x: f32, opts: Options) -> Self::Code {
        Self::encode_f64_with(codec::widen(x), opts)
    }

    /// Encode an `f64` with the given options, rounding once.
    #[inline]
    fn encode_f64_with(x: f64, opts: Options) -> Self::Code {
        Self::Code::from_u64(codec::encode_f64(&Self::LAYOUT, x, opts))
    }

    /// Decode a code to `f32` (exact for every format of this crate but [`Fp64`]).
    #[inline]
    fn decode_f32(code: Self::Code) -> f32 {
        if Self::FAST.fast {
            codec::decode_f32_fast(&Self::LAYOUT, &Self::FAST, code.to_u64() as u32)
        } else {
            codec::decode_f32(&Self::LAYOUT, code.to_u64())
        }
    }

    /// Decode a code to its exact `f64` value.
    #[inline]
    fn decode_f64(code: Self::Code) -> f64 {
        codec::decode_f64(&Self::LAYOUT, code.to_u64())
    }

    /// Encode a slice of `f32` with the default options into `dst`. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    ///
    /// ```
    /// use lowbit::{FloatFormat, E5M2};
    /// let mut codes = [0u8; 3];
    /// E5M2::encode_slice(&[1.0, -2.0, f32::INFINITY], &mut codes)?;
    /// assert_eq!(codes, [0x3c, 0xc0, 0x7c]);
    /// # Ok::<(), lowbit::FormatError>(())
    /// ```
    fn encode_slice(src: &[f32], dst: &mut [Self::Code]) -> Result<(), Error> {
        slice::encode_slice::<Self>(src, dst, Options::default())
    }

    /// Encode a slice of `f32` with the given options. For stochastic rounding use
    /// [`encode_slice_stochastic`](Self::encode_slice_stochastic), which takes a draw per element.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    fn encode_slice_with(src: &[f32], dst: &mut [Self::Code], opts: Options) -> Result<(), Error> {
        slice::encode_slice::<Self>(src, dst, opts)
    }

    /// Encode with stochastic rounding, element `i` using the random draw `random[i]`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst` or `random` is not as long as `src`.
    fn encode_slice_stochastic(
        src: &[f32],
        random: &[u32],
        dst: &mut [Self::Code],
        overflow: Overflow,
    ) -> Result<(), Error> {
        slice::check_len(src.len(), dst.len())?;
        slice::check_len(src.len(), random.len())?;
        for ((d, &x), &r) in dst.iter_mut().zip(src).zip(random) {
            *d = Self::encode_f32_with(
                x,
                Options {
                    rounding: Rounding::Stochastic(r),
                    overflow,
                },
            );
        }
        Ok(())
    }

    /// Encode a slice of `f64`, rounding each value once.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    fn encode_slice_f64(src: &[f64], dst: &mut [Self::Code], opts: Options) -> Result<(), Error> {
        slice::check_len(src.len(), dst.len())?;
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = Self::encode_f64_with(x, opts);
        }
        Ok(())
    }

    /// Decode a slice of codes into `f32`. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    fn decode_slice(src: &[Self::Code], dst: &mut [f32]) -> Result<(), Error> {
        slice::decode_slice::<Self>(src, dst)
    }

    /// Decode a slice of codes into `f64`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    fn decode_slice_f64(src: &[Self::Code], dst: &mut [f64]) -> Result<(), Error> {
        slice::check_len(src.len(), dst.len())?;
        for (d, &c) in dst.iter_mut().zip(src) {
            *d = Self::decode_f64(c);
        }
        Ok(())
    }

    /// The bit fields of a code: sign, biased exponent, mantissa, class and value.
    ///
    /// ```
    /// use lowbit::{FloatFormat, E4M3};
    /// let f = E4M3::decompose(0x2a);
    /// assert_eq!((f.sign, f.exponent, f.mantissa), (0, 5, 2));
    /// assert_eq!(f.to_string(), "0 0101 010 = (-1)^0 × 2^(5-7) × (1 + 2/8) = 0.3125");
    /// ```
    fn decompose(code: Self::Code) -> Fields {
        Fields::of(&Self::LAYOUT, code.to_u64())
    }

    /// Check that a code fits the format's width.
    ///
    /// # Errors
    /// [`Error::CodeOutOfRange`] when bits above the width are set.
    fn try_code(code: u64) -> Result<Self::Code, Error> {
        if Self::BITS < 64 && code >> Self::BITS != 0 {
            Err(Error::CodeOutOfRange { code, bits: Self::BITS })
        } else {
            Ok(Self::Code::from_u64(code))
        }
    }

    /// Whether a code is a NaN.
    fn is_nan(code: Self::Code) -> bool {
        Self::LAYOUT.is_nan_code(code.to_u64())
    }

    /// The canonical quiet NaN, if the format has one.
    fn nan() -> Option<Self::Code> {
        Self::LAYOUT.nan_code().map(Self::Code::from_u64)
    }

    /// Positive infinity, if the format has one.
    fn infinity() -> Option<Self::Code> {
        Self::LAYOUT.inf_magnitude_code().map(Self::Code::from_u64)
    }

    /// The code of the largest finite value.
    fn max_code() -> Self::Code {
        Self::Code::from_u64(Self::LAYOUT.max_magnitude_code())
    }
}
