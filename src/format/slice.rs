//! Slice encode and decode, and casts between formats.

use super::codec;
use super::layout::{Options, Overflow, Rounding};
use super::{Code, Error, FloatFormat};

#[inline]
pub(crate) fn check_len(src: usize, dst: usize) -> Result<(), Error> {
    if src == dst {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected: src,
            actual: dst,
        })
    }
}

pub(crate) fn encode_slice<F: FloatFormat>(src: &[f32], dst: &mut [F::Code], opts: Options) -> Result<(), Error> {
    check_len(src.len(), dst.len())?;
    match (opts.rounding, opts.overflow) {
        (Rounding::NearestEven, Overflow::Native) if F::FAST.fast => encode_fast::<F, false>(src, dst),
        (Rounding::NearestEven, Overflow::Saturate) if F::FAST.fast => encode_fast::<F, true>(src, dst),
        _ if opts == Options::default() => {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = F::encode_f32(x);
            }
        }
        _ => {
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
        if F::LAYOUT == crate::Fp16::LAYOUT {
            if let Ok(s16) = bytemuck::try_cast_slice::<F::Code, u16>(src) {
                if crate::arch::decode_fp16(s16, dst, portable::decode_f32_u16::<F>) {
                    return Ok(());
                }
            }
        }
        if F::LAYOUT == crate::Bf16::LAYOUT {
            if let Ok(s16) = bytemuck::try_cast_slice::<F::Code, u16>(src) {
                if crate::arch::decode_bf16_avx512(s16, dst) {
                    return Ok(());
                }
            }
        }
        crate::arch::run(DecodeJob::<F> { src, dst });
    } else {
        for (d, &c) in dst.iter_mut().zip(src) {
            *d = F::decode_f32(c);
        }
    }
    Ok(())
}

/// The branch-free encode: for `Fp16` the conversion instruction (AVX-512 or F16C) where the
/// CPU has it, for `Bf16` AVX-512 integer code where the CPU has it, else the portable loop
/// compiled for the widest instruction set ([`crate::arch::run`]).
#[inline]
fn encode_fast<F: FloatFormat, const SATURATE: bool>(src: &[f32], dst: &mut [F::Code]) {
    if F::LAYOUT == crate::Fp16::LAYOUT && !SATURATE {
        if let Ok(d16) = bytemuck::try_cast_slice_mut::<F::Code, u16>(dst) {
            if crate::arch::encode_fp16(src, d16, portable::encode_f32_rne::<crate::Fp16, false>) {
                return;
            }
        }
    }
    if F::LAYOUT == crate::Bf16::LAYOUT && !SATURATE {
        if let Ok(d16) = bytemuck::try_cast_slice_mut::<F::Code, u16>(dst) {
            if !crate::arch::encode_bf16_avx512(src, d16) {
                crate::arch::run(Bf16Job { src, dst: d16 });
            }
            return;
        }
    }
    crate::arch::run_wide(EncodeJob::<F, SATURATE> { src, dst });
}

/// BF16 is the top half of an `f32`: round the low half to nearest even by integer addition
/// (an overflow carries into the exponent and gives infinity, as it should), NaN to the
/// canonical quiet NaN with its sign. The same codes as the codec.
struct Bf16Job<'a> {
    src: &'a [f32],
    dst: &'a mut [u16],
}

impl crate::arch::Job for Bf16Job<'_> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        for (d, &x) in self.dst.iter_mut().zip(self.src) {
            let b = x.to_bits();
            let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
            let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
            *d = if nan {
                ((b >> 16) as u16 & 0x8000) | 0x7fc0
            } else {
                rounded
            };
        }
    }
}

struct EncodeJob<'a, F: FloatFormat, const SATURATE: bool> {
    src: &'a [f32],
    dst: &'a mut [F::Code],
}

impl<F: FloatFormat, const SATURATE: bool> crate::arch::Job for EncodeJob<'_, F, SATURATE> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        portable::encode_f32_rne::<F, SATURATE>(self.src, self.dst);
    }
}

struct DecodeJob<'a, F: FloatFormat> {
    src: &'a [F::Code],
    dst: &'a mut [f32],
}

impl<F: FloatFormat> crate::arch::Job for DecodeJob<'_, F> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        portable::decode_f32::<F>(self.src, self.dst);
    }
}

/// The portable loops the architecture-specific paths must match bit for bit.
pub(crate) mod portable {
    use super::*;

    #[inline(always)]
    pub(crate) fn encode_f32_rne<F: FloatFormat, const SATURATE: bool>(src: &[f32], dst: &mut [F::Code]) {
        let k = if SATURATE { &F::FAST_SATURATE } else { &F::FAST };
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = F::Code::from_u64(u64::from(codec::encode_f32_rne(k, x)));
        }
    }

    /// [`decode_f32`] of 16-bit codes given as `u16`.
    #[inline(always)]
    pub(crate) fn decode_f32_u16<F: FloatFormat>(src: &[u16], dst: &mut [f32]) {
        for (d, &c) in dst.iter_mut().zip(src) {
            *d = codec::decode_f32_fast(&F::LAYOUT, &F::FAST, u32::from(c));
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
/// assert_eq!(dst, [0x2a, 0xff]); // 0.3125, and NaN: -500 overflows E4M3
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
        portable::encode_f32_rne::<F, false>(src, dst);
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

/// Parallel slice encode and decode over rayon's pool, for large tensors.
///
/// The slice is cut into fixed chunks, so the output is identical to the serial functions'.
#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod par {
    use super::*;
    use rayon::prelude::*;

    const CHUNK: usize = 1 << 16;

    /// [`FloatFormat::encode_slice_with`] on all cores.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    ///
    /// ```
    /// use lowbit::{format::{par, Options}, FloatFormat, E4M3};
    /// let x = vec![0.3f32; 1 << 20];
    /// let mut codes = vec![0u8; x.len()];
    /// par::encode_slice::<E4M3>(&x, &mut codes, Options::default())?;
    /// assert!(codes.iter().all(|&c| c == E4M3::encode_f32(0.3)));
    /// # Ok::<(), lowbit::FormatError>(())
    /// ```
    pub fn encode_slice<F: FloatFormat>(src: &[f32], dst: &mut [F::Code], opts: Options) -> Result<(), Error> {
        check_len(src.len(), dst.len())?;
        src.par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .try_for_each(|(s, d)| super::encode_slice::<F>(s, d, opts))
    }

    /// [`FloatFormat::decode_slice`] on all cores.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `dst.len() != src.len()`.
    pub fn decode_slice<F: FloatFormat>(src: &[F::Code], dst: &mut [f32]) -> Result<(), Error> {
        check_len(src.len(), dst.len())?;
        src.par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .try_for_each(|(s, d)| super::decode_slice::<F>(s, d))
    }
}

#[cfg(test)]
mod tests;
