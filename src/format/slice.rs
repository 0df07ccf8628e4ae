//! Slice encode and decode, and casts between formats.

use super::codec;
use super::layout::{Options, Overflow, Rounding};
use super::{Code, Error, FloatFormat};

#[inline]
pub(crate) fn check_len(src: usize, dst: usize) -> Result<(), Error> {
    if src == dst {
        Ok(())
    } else {
        Err(Error::LengthMismatch { src, dst })
    }
}

pub(crate) fn encode_slice<F: FloatFormat>(src: &[f32], dst: &mut [F::Code], opts: Options) -> Result<(), Error> {
    check_len(src.len(), dst.len())?;
    let fast = match (opts.rounding, opts.overflow) {
        (Rounding::NearestEven, Overflow::Native) if F::FAST.fast => Some(F::FAST),
        (Rounding::NearestEven, Overflow::Saturate) if F::FAST_SATURATE.fast => Some(F::FAST_SATURATE),
        _ => None,
    };
    match fast {
        Some(k) => crate::arch::encode_f32_rne::<F>(&k, src, dst),
        None if opts == Options::default() => {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = F::encode_f32(x);
            }
        }
        None => {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = F::encode_f32_with(x, opts);
            }
        }
    }
    Ok(())
}

pub(crate) fn decode_slice<F: FloatFormat>(src: &[F::Code], dst: &mut [f32]) -> Result<(), Error> {
    check_len(src.len(), dst.len())?;
    if F::FAST.fast {
        crate::arch::decode_f32::<F>(src, dst);
    } else {
        for (d, &c) in dst.iter_mut().zip(src) {
            *d = F::decode_f32(c);
        }
    }
    Ok(())
}

/// The portable loops the architecture-specific paths must match bit for bit.
pub(crate) mod portable {
    use super::*;

    #[inline(always)]
    pub(crate) fn encode_f32_rne<F: FloatFormat>(k: &codec::F32Fast, src: &[f32], dst: &mut [F::Code]) {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = F::Code::from_u64(u64::from(codec::encode_f32_rne(k, x)));
        }
    }

    #[inline(always)]
    pub(crate) fn decode_f32<F: FloatFormat>(src: &[F::Code], dst: &mut [f32]) {
        for (d, &c) in dst.iter_mut().zip(src) {
            *d = codec::decode_f32_fast(&F::LAYOUT, &F::FAST, c.to_u64() as u32);
        }
    }
}

/// Cast codes of format `A` into codes of format `B`: decode exactly, then round once.
///
/// # Errors
/// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
///
/// # Examples
///
/// ```
/// use lowbit::format::{cast, FloatFormat, Options, Bf16, E4M3};
/// let src = [Bf16::encode_f32(0.3), Bf16::encode_f32(-500.0)];
/// let mut dst = [0u8; 2];
/// cast::<Bf16, E4M3>(&src, &mut dst, Options::default())?;
/// assert_eq!(dst, [0x29, 0xff]); // 0.3125, and NaN: -500 overflows E4M3
/// # Ok::<(), lowbit::FormatError>(())
/// ```
pub fn cast<A: FloatFormat, B: FloatFormat>(src: &[A::Code], dst: &mut [B::Code], opts: Options) -> Result<(), Error> {
    check_len(src.len(), dst.len())?;
    for (d, &c) in dst.iter_mut().zip(src) {
        *d = cast_one::<A, B>(c, opts);
    }
    Ok(())
}

/// Cast one code of format `A` to format `B`, rounding once.
#[inline]
pub fn cast_one<A: FloatFormat, B: FloatFormat>(code: A::Code, opts: Options) -> B::Code {
    B::encode_f64_with(A::decode_f64(code), opts)
}

/// The portable encode loop, whatever the CPU: for parity tests of the fast paths.
#[doc(hidden)]
pub fn encode_slice_portable<F: FloatFormat>(src: &[f32], dst: &mut [F::Code]) -> Result<(), Error> {
    check_len(src.len(), dst.len())?;
    if F::FAST.fast {
        portable::encode_f32_rne::<F>(&F::FAST, src, dst);
    } else {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = F::encode_f32(x);
        }
    }
    Ok(())
}

/// The portable decode loop, whatever the CPU: for parity tests of the fast paths.
#[doc(hidden)]
pub fn decode_slice_portable<F: FloatFormat>(src: &[F::Code], dst: &mut [f32]) -> Result<(), Error> {
    check_len(src.len(), dst.len())?;
    if F::FAST.fast {
        portable::decode_f32::<F>(src, dst);
    } else {
        for (d, &c) in dst.iter_mut().zip(src) {
            *d = F::decode_f32(c);
        }
    }
    Ok(())
}
