//! ggml's (llama.cpp's) quantized blocks, bit for bit: `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`,
//! `Q8_0` and the K-quants `Q2_K`, `Q3_K`, `Q4_K`, `Q5_K`, `Q6_K`, `Q8_K`.
//!
//! Quantizing reproduces ggml's reference quantizers `quantize_row_*_ref` from
//! `ggml-quants.c` (what `llama-quantize` runs without an importance matrix), and
//! dequantizing its `dequantize_row_*`, so the blocks can be written into a GGUF file and
//! loaded by llama.cpp. Every block type is a `#[repr(C)]` [`bytemuck::Pod`] struct with
//! ggml's exact layout, and implements [`GgmlBlock`]:
//!
//! | type | elements | bytes | scales | codes |
//! |---|---|---|---|---|
//! | [`BlockQ4_0`] | 32 | 18 | half `d = max / -8` | 4-bit, `(q - 8) × d` |
//! | [`BlockQ4_1`] | 32 | 20 | half `d`, `m = min` | 4-bit, `q × d + m` |
//! | [`BlockQ5_0`] | 32 | 22 | half `d = max / -16` | 5-bit, `(q - 16) × d` |
//! | [`BlockQ5_1`] | 32 | 24 | half `d`, `m = min` | 5-bit, `q × d + m` |
//! | [`BlockQ8_0`] | 32 | 34 | half `d = absmax / 127` | `i8`, `q × d` |
//! | [`BlockQ2_K`] | 256 | 84 | half `d`, `dmin`; 16 × 4-bit scale and min | 2-bit, `d·s·q - dmin·m` |
//! | [`BlockQ3_K`] | 256 | 110 | half `d`; 16 × 6-bit signed scales | 3-bit, `d·(s - 32)·(q - 4)` |
//! | [`BlockQ4_K`] | 256 | 144 | half `d`, `dmin`; 8 × 6-bit scale and min | 4-bit, `d·s·q - dmin·m` |
//! | [`BlockQ5_K`] | 256 | 176 | half `d`, `dmin`; 8 × 6-bit scale and min | 5-bit, `d·s·q - dmin·m` |
//! | [`BlockQ6_K`] | 256 | 210 | half `d`; 16 × `i8` scales | 6-bit, `d·s·(q - 32)` |
//! | [`BlockQ8_K`] | 256 | 292 | `f32` `d`; 16 sums of 16 codes | `i8`, `d·q` |
//!
//! The K-quants search their scales as ggml does (`make_qx_quants`, `make_q3_quants`,
//! `make_qkx2_quants`), with ggml's `nearest_int` (the `1.5 × 2^23` trick: round to nearest
//! even) and the same `f32` operations in the same order, so every block is the same bytes.
//! `Q8_K` is ggml's intermediate type for dot products, not a file type.
//!
//! With an importance matrix, [`quantize_with_imatrix`] reproduces ggml's
//! `quantize_q4_K(src, dst, nrow, n_per_row, quant_weights)` and its siblings (what
//! `llama-quantize --imatrix` runs).
//!
//! Half values are rounded to nearest even, like ggml's `GGML_FP32_TO_FP16`. Where ggml would
//! write garbage this module returns an error instead: a NaN or an infinity in a block
//! ([`Error::NonFinite`]), and a half scale or minimum beyond ±65504, which ggml stores as
//! infinity ([`Error::ScaleOutOfRange`]; for `Q2_K` to `Q6_K` also any block holding a value
//! of magnitude 2^32 or more, whose scale would overflow too and where ggml's `f32` sums
//! overflow from about 10^12 on; for `Q8_K`, whose scale is an `f32`, a block near `f32::MAX`
//! whose `127 × d` overflows). A length that is not a whole number of blocks is an
//! [`Error::NotWholeBlocks`], an output of the wrong size an [`Error::LengthMismatch`]. Nothing
//! panics. The nibble and bit orders are ggml's, not the MSB-first order of
//! [`crate::quant::pack`].
//!
//! One case is defined by the reference platform: a 32-element block whose scale is below
//! 2^-128 in magnitude (values below about 10^-36, not all zero) has an infinite inverse
//! scale, and ggml's conversion of the infinite (or NaN) products to integer codes is
//! undefined in C. On x86-64 every code is then 0, and that is what lowbit writes everywhere.
//! The K-quants round with `nearest_int`, which is defined for every input, and match ggml
//! there too.
//!
//! Checked byte for byte (quantize) and bit for bit (dequantize) against ggml's own C code
//! on edge cases and real weights (`tests/data/ggml_kquants/`).
//!
//! # Examples
//!
//! ```
//! use lowbit::compat::ggml::{self, BlockQ4_K, GgmlBlock};
//!
//! let x: Vec<f32> = (0..512).map(|i| (i as f32 * 0.37).sin()).collect();
//! let blocks = BlockQ4_K::quantize(&x)?;
//! assert_eq!(blocks.len(), 2);
//! let bytes: &[u8] = bytemuck::cast_slice(&blocks); // what llama.cpp reads
//! assert_eq!(bytes.len(), 2 * 144);
//!
//! let y = BlockQ4_K::dequantize(&blocks);
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.1));
//!
//! // The 32-element blocks keep their functions too.
//! let q8 = ggml::quantize_q8_0(&x)?;
//! assert!(ggml::quantize_q4_0(&x[..40]).is_err()); // not whole blocks
//! # let _ = q8;
//! # Ok::<(), lowbit::QuantError>(())
//! ```

use half::f16;

use crate::quant::Error;
use crate::{FloatFormat, Fp16};

mod ggml_type;
mod imatrix;
mod k_quants;
mod k_search;
mod k_small;
mod legacy;
#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod par;

pub use ggml_type::GgmlType;
pub use imatrix::quantize_with_imatrix;
pub use k_quants::{BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K};
pub use k_small::{BlockQ2_K, BlockQ3_K};
pub use legacy::{
    dequantize_q4_0, dequantize_q4_1, dequantize_q8_0, quantize_q4_0, quantize_q4_0_into, quantize_q4_1,
    quantize_q4_1_into, quantize_q8_0, quantize_q8_0_into, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0,
};

/// Elements per block of the 32-element types (`QK4_0`, `QK8_0`, ...).
pub const QK: usize = 32;

/// Elements per super-block of the K-quants (`QK_K`).
pub const QK_K: usize = 256;

pub(crate) mod sealed {
    use crate::quant::Error;

    /// One block at a time; the public trait adds the slice checks.
    pub trait Sealed: Sized {
        /// Quantize one block of finite values (`x.len()` is the block size). `group` is
        /// the block's index, for errors.
        fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error>;
        /// Dequantize into `out` (the block size).
        fn dequantize_block(&self, out: &mut [f32]);
    }
}

/// A ggml block type: its [`GgmlType`], its size in elements, and ggml's reference quantizer
/// and dequantizer over slices of blocks.
///
/// Implemented by every block struct of this module (and by no other type). The provided
/// methods check the lengths and the input values once for all types.
///
/// # Examples
///
/// A function generic over the block type:
///
/// ```
/// use lowbit::compat::ggml::{BlockQ5_0, BlockQ6_K, BlockQ8_0, GgmlBlock, GgmlType};
///
/// /// Bytes and round-trip error of one block type on `x`.
/// fn roundtrip<B: GgmlBlock>(x: &[f32]) -> Result<(usize, f32), lowbit::QuantError> {
///     let blocks = B::quantize(x)?;
///     let mut y = vec![0f32; x.len()];
///     B::dequantize_into(&blocks, &mut y)?;
///     let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
///     Ok((bytemuck::cast_slice::<B, u8>(&blocks).len(), err))
/// }
///
/// let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.05).cos()).collect();
/// let (bytes, err) = roundtrip::<BlockQ6_K>(&x)?;
/// assert_eq!((BlockQ6_K::TYPE, BlockQ6_K::BLOCK, bytes), (GgmlType::Q6_K, 256, 210));
/// assert!(err < 0.02);
/// let (bytes, _) = roundtrip::<BlockQ5_0>(&x)?;
/// assert_eq!(bytes, 8 * 22);
///
/// // Typed errors, never a panic.
/// assert!(BlockQ6_K::quantize(&x[..100]).is_err()); // not a whole super-block
/// assert!(BlockQ8_0::quantize(&[f32::NAN; 32]).is_err());
/// assert!(BlockQ6_K::dequantize_into(&BlockQ6_K::quantize(&x)?, &mut [0.0; 10]).is_err());
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub trait GgmlBlock: bytemuck::Pod + sealed::Sealed {
    /// The ggml type of these blocks.
    const TYPE: GgmlType;
    /// Elements per block (32, or 256 for the K-quants).
    const BLOCK: usize;

    /// Quantize `x` into `out` (`x.len() / BLOCK` blocks), as ggml's `quantize_row_*_ref`.
    ///
    /// # Errors
    /// [`Error::NotWholeBlocks`] unless `x.len()` is a multiple of [`Self::BLOCK`],
    /// [`Error::LengthMismatch`] for a wrong `out` length, [`Error::NonFinite`] for a NaN or
    /// an infinity, [`Error::ScaleOutOfRange`] when a half scale or minimum overflows.
    /// Blocks before the failing one are written.
    fn quantize_into(x: &[f32], out: &mut [Self]) -> Result<(), Error> {
        let chunks = whole_blocks(x, Self::BLOCK, out.len())?;
        for (i, (xs, b)) in chunks.zip(out.iter_mut()).enumerate() {
            check_finite(xs, i)?;
            *b = Self::quantize_block(xs, i)?;
        }
        Ok(())
    }

    /// [`Self::quantize_into`] a new vector.
    ///
    /// # Errors
    /// As [`Self::quantize_into`].
    fn quantize(x: &[f32]) -> Result<Vec<Self>, Error> {
        let mut out = vec![Self::zeroed(); x.len() / Self::BLOCK];
        Self::quantize_into(x, &mut out)?;
        Ok(out)
    }

    /// Dequantize into `out` (`BLOCK × blocks.len()` values), as ggml's `dequantize_row_*`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] for a wrong `out` length.
    fn dequantize_into(blocks: &[Self], out: &mut [f32]) -> Result<(), Error> {
        check_out(blocks.len(), Self::BLOCK, out)?;
        dequantize_portable(blocks, out);
        Ok(())
    }

    /// [`Self::dequantize_into`] a new vector.
    fn dequantize(blocks: &[Self]) -> Vec<f32> {
        let mut out = vec![0.0; blocks.len() * Self::BLOCK];
        // The lengths agree by construction.
        let _ = Self::dequantize_into(blocks, &mut out);
        out
    }
}

/// The block-by-block dequantize loop (compiled for AVX2 where the CPU has it), which the
/// hand-written kernels must match bit for bit; `out` holds `BLOCK × blocks.len()` values.
pub(crate) fn dequantize_portable<B: GgmlBlock>(blocks: &[B], out: &mut [f32]) {
    struct Job<'a, B>(&'a [B], &'a mut [f32]);
    impl<B: GgmlBlock> crate::arch::Job for Job<'_, B> {
        type Out = ();
        #[inline(always)]
        fn run(self) {
            for (b, ys) in self.0.iter().zip(self.1.chunks_exact_mut(B::BLOCK)) {
                b.dequantize_block(ys);
            }
        }
    }
    crate::arch::run(Job(blocks, out));
}

/// `Error::LengthMismatch` unless `out` holds `block × blocks` values.
#[inline]
pub(crate) fn check_out(blocks: usize, block: usize, out: &[f32]) -> Result<(), Error> {
    if blocks * block == out.len() {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected: blocks * block,
            actual: out.len(),
        })
    }
}

/// `x` in blocks of `block`, checked against the output's block count.
#[inline(always)]
pub(crate) fn whole_blocks(
    x: &[f32],
    block: usize,
    out_blocks: usize,
) -> Result<core::slice::ChunksExact<'_, f32>, Error> {
    if !x.len().is_multiple_of(block) {
        return Err(Error::NotWholeBlocks { len: x.len(), block });
    }
    if x.len() / block != out_blocks {
        return Err(Error::LengthMismatch {
            expected: x.len() / block,
            actual: out_blocks,
        });
    }
    Ok(x.chunks_exact(block))
}

/// [`Error::NonFinite`] for the first NaN or infinity of block `group`.
#[inline(always)]
pub(crate) fn check_finite(xs: &[f32], group: usize) -> Result<(), Error> {
    match xs.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(p) => Err(Error::NonFinite {
            group,
            index: group * xs.len() + p,
        }),
    }
}

/// `GGML_FP32_TO_FP16`: round to nearest even.
#[inline(always)]
pub(crate) fn half(x: f32) -> f16 {
    f16::from_bits(Fp16::encode_f32(x))
}

/// A half's value, by the crate's branch-free codec (the same value as `f16::to_f32`, which
/// checks the CPU on every call): the dequantizers read one or two a block.
#[inline(always)]
pub(crate) fn value(h: f16) -> f32 {
    use crate::FloatFormat;
    crate::format::codec::decode_f32_fast(&Fp16::LAYOUT, &<Fp16 as FloatFormat>::FAST, u32::from(h.to_bits()))
}

/// `x` as a half, or [`Error::ScaleOutOfRange`] where ggml would store an infinity or NaN.
#[inline(always)]
pub(crate) fn half_checked(x: f32, group: usize) -> Result<f16, Error> {
    let h = half(x);
    if h.is_finite() {
        Ok(h)
    } else {
        Err(Error::ScaleOutOfRange { group, scale: x })
    }
}
