//! ggml's (llama.cpp's) `Q8_0`, `Q4_0` and `Q4_1` blocks, bit for bit.
//!
//! The functions reproduce ggml's reference quantizers `quantize_row_q8_0_ref`,
//! `quantize_row_q4_0_ref` and `quantize_row_q4_1_ref` and the matching `dequantize_row_*`
//! from `ggml-quants.c`, so the blocks can be written into a GGUF file and loaded by
//! llama.cpp. Blocks hold [`QK`] = 32 elements and a little-endian IEEE half scale
//! (converted with round-to-nearest-even, like ggml's `GGML_FP32_TO_FP16`).
//!
//! | type | bytes | scale | codes |
//! |---|---|---|---|
//! | [`BlockQ8_0`] | 34 | `d = absmax / 127` | `qs[j] = roundf(x[j] / d)` (ties away from zero), `i8` |
//! | [`BlockQ4_0`] | 18 | `d = max / -8`, `max` the element of largest magnitude | `min(15, trunc(x / d + 8.5))`; element `j` in the low nibble of `qs[j]`, element `j + 16` in the high nibble |
//! | [`BlockQ4_1`] | 20 | `d = (max - min) / 15`, `m = min` | `min(15, trunc((x - min) / d + 0.5))`, nibbles as `Q4_0` |
//!
//! As in ggml, the codes are computed with the `f32` scale *before* it is rounded to half
//! (and with its `f32` inverse); dequantization uses the stored half values: `q × d`,
//! `(q - 8) × d` and `q × d + m` (a multiply then an add, not fused).
//!
//! Where ggml would write garbage this module returns an error instead: a NaN or an infinity
//! in a block ([`Error::NonFinite`]), and a scale (or `Q4_1` minimum) beyond the half range,
//! ±65504, which ggml stores as infinity ([`Error::ScaleOutOfRange`]). The 4-bit nibble
//! order is ggml's, not the MSB-first order of [`crate::quant::pack`].
//!
//! # Examples
//!
//! ```
//! use lowbit::compat::ggml;
//!
//! let x: Vec<f32> = (0..64).map(|i| i as f32 - 31.5).collect();
//! let blocks = ggml::quantize_q8_0(&x)?;
//! assert_eq!(blocks.len(), 2);
//! let bytes: &[u8] = bytemuck::cast_slice(&blocks); // what llama.cpp reads
//! assert_eq!(bytes.len(), 2 * 34);
//!
//! let mut y = vec![0f32; 64];
//! ggml::dequantize_q8_0(&blocks, &mut y)?;
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= 31.5 / 127.0));
//!
//! assert!(ggml::quantize_q4_0(&x[..40]).is_err()); // not whole blocks
//! # Ok::<(), lowbit::QuantError>(())
//! ```

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::quant::Error;
use crate::{FloatFormat, Fp16};

/// Elements per block.
pub const QK: usize = 32;

/// ggml's `block_q8_0`: a half scale and 32 signed 8-bit codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale `d`.
    pub d: f16,
    /// Codes; element `j` is `qs[j] × d`.
    pub qs: [i8; QK],
}

/// ggml's `block_q4_0`: a half scale and 32 4-bit codes offset by 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale `d`.
    pub d: f16,
    /// Codes: element `j` in the low nibble of `qs[j]`, element `j + 16` in its high nibble;
    /// an element is `(nibble - 8) × d`.
    pub qs: [u8; QK / 2],
}

/// ggml's `block_q4_1`: a half scale and minimum and 32 unsigned 4-bit codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale `d`.
    pub d: f16,
    /// Minimum `m`.
    pub m: f16,
    /// Codes, nibbles as in [`BlockQ4_0`]; an element is `nibble × d + m`.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20);

/// `roundf` of `|t| < 2^22`, branch-free: round to nearest even, then fix the ties.
#[inline(always)]
fn roundf(t: f32) -> f32 {
    const M: f32 = 12_582_912.0;
    let r = (t + M) - M;
    let d = t - r;
    let up = if d == 0.5 && t > 0.0 { 1.0 } else { 0.0 };
    let down = if d == -0.5 && t < 0.0 { 1.0 } else { 0.0 };
    r + up - down
}

/// An integral `f32` of magnitude below `2^22` to `i32`, without the saturating conversion.
#[inline(always)]
fn int(r: f32) -> i32 {
    const M: f32 = 12_582_912.0;
    ((r + M).to_bits() as i32).wrapping_sub(0x4B40_0000)
}

/// `trunc` of `0 <= t < 2^22`, branch-free.
#[inline(always)]
fn trunc_pos(t: f32) -> f32 {
    const M: f32 = 12_582_912.0;
    let r = (t + M) - M;
    if r > t {
        r - 1.0
    } else {
        r
    }
}

#[inline(always)]
fn half(x: f32) -> f16 {
    f16::from_bits(Fp16::encode_f32(x))
}

/// Blocks of 32, checked for length.
#[inline(always)]
fn blocks_of(x: &[f32], out_blocks: usize) -> Result<core::slice::ChunksExact<'_, f32>, Error> {
    if !x.len().is_multiple_of(QK) {
        return Err(Error::NotWholeBlocks {
            len: x.len(),
            block: QK,
        });
    }
    if x.len() / QK != out_blocks {
        return Err(Error::LengthMismatch {
            expected: x.len() / QK,
            actual: out_blocks,
        });
    }
    Ok(x.chunks_exact(QK))
}

/// Max of `|x|` over a block and whether every value is finite.
#[inline(always)]
fn absmax(x: &[f32; QK]) -> (f32, bool) {
    let mut m = [0u32; 8];
    for c in x.chunks_exact(8) {
        for j in 0..8 {
            let b = c[j].to_bits() & 0x7fff_ffff;
            m[j] = if b > m[j] { b } else { m[j] };
        }
    }
    let b = m.iter().fold(0, |a, &v| if v > a { v } else { a });
    (f32::from_bits(b), b < 0x7f80_0000)
}

#[inline(always)]
fn minmax(x: &[f32; QK]) -> (f32, f32, bool) {
    let mut lo = [f32::MAX; 8];
    let mut hi = [-f32::MAX; 8];
    let mut bad = [0u32; 8];
    for c in x.chunks_exact(8) {
        for j in 0..8 {
            let v = c[j];
            bad[j] |= u32::from((v.to_bits() & 0x7fff_ffff) >= 0x7f80_0000);
            lo[j] = if v < lo[j] { v } else { lo[j] };
            hi[j] = if v > hi[j] { v } else { hi[j] };
        }
    }
    let l = lo.iter().fold(f32::MAX, |a, &v| if v < a { v } else { a });
    let h = hi.iter().fold(-f32::MAX, |a, &v| if v > a { v } else { a });
    // ggml's scan keeps the first of equal values; only the sign of a zero can tell.
    let first_zero = || x.iter().copied().find(|&v| v == 0.0).unwrap_or(0.0);
    let l = if l == 0.0 { first_zero() } else { l };
    let h = if h == 0.0 { first_zero() } else { h };
    (l, h, bad.iter().all(|&b| b == 0))
}

fn nonfinite(x: &[f32], block: usize) -> Error {
    Error::NonFinite {
        group: block,
        index: block * QK + x.iter().position(|v| !v.is_finite()).unwrap_or(0),
    }
}

fn check_half(h: f16, raw: f32, block: usize) -> Result<(), Error> {
    if h.is_finite() {
        Ok(())
    } else {
        Err(Error::ScaleOutOfRange {
            group: block,
            scale: raw,
        })
    }
}

/// Quantize to `Q8_0` blocks, as `quantize_row_q8_0_ref`.
///
/// # Errors
/// [`Error::NotWholeBlocks`] unless `x.len()` is a multiple of 32, [`Error::NonFinite`] for
/// NaN or infinity, [`Error::ScaleOutOfRange`] when `absmax / 127` overflows half.
pub fn quantize_q8_0(x: &[f32]) -> Result<Vec<BlockQ8_0>, Error> {
    let mut out = vec![BlockQ8_0::zeroed(); x.len() / QK];
    quantize_q8_0_into(x, &mut out)?;
    Ok(out)
}

/// [`quantize_q8_0`] into a caller buffer of `x.len() / 32` blocks.
///
/// # Errors
/// As [`quantize_q8_0`], and [`Error::LengthMismatch`] for a wrong `out` length.
pub fn quantize_q8_0_into(x: &[f32], out: &mut [BlockQ8_0]) -> Result<(), Error> {
    struct Job<'a>(&'a [f32], &'a mut [BlockQ8_0]);
    impl crate::arch::Job for Job<'_> {
        type Out = Result<(), Error>;
        #[inline(always)]
        fn run(self) -> Self::Out {
            quantize_q8_0_portable(self.0, self.1)
        }
    }
    crate::arch::run(Job(x, out))
}

#[inline(always)]
fn quantize_q8_0_portable(x: &[f32], out: &mut [BlockQ8_0]) -> Result<(), Error> {
    for (i, (xs, b)) in blocks_of(x, out.len())?.zip(out.iter_mut()).enumerate() {
        let xs: &[f32; QK] = xs.try_into().map_err(|_| Error::InvalidHeader("block"))?;
        let (amax, finite) = absmax(xs);
        if !finite {
            return Err(nonfinite(xs, i));
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = half(d);
        check_half(b.d, d, i)?;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = int(roundf(v * id)) as i8;
        }
    }
    Ok(())
}

/// Dequantize `Q8_0` blocks into `out` (`32 × blocks.len()` values), as `dequantize_row_q8_0`.
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) -> Result<(), Error> {
    check_out(blocks.len(), out.len())?;
    for (b, ys) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (y, &q) in ys.iter_mut().zip(&b.qs) {
            *y = f32::from(q) * d;
        }
    }
    Ok(())
}

/// Quantize to `Q4_0` blocks, as `quantize_row_q4_0_ref`.
///
/// # Errors
/// [`Error::NotWholeBlocks`] unless `x.len()` is a multiple of 32, [`Error::NonFinite`] for
/// NaN or infinity, [`Error::ScaleOutOfRange`] when `max / -8` overflows half.
pub fn quantize_q4_0(x: &[f32]) -> Result<Vec<BlockQ4_0>, Error> {
    let mut out = vec![BlockQ4_0::zeroed(); x.len() / QK];
    quantize_q4_0_into(x, &mut out)?;
    Ok(out)
}

/// [`quantize_q4_0`] into a caller buffer of `x.len() / 32` blocks.
///
/// # Errors
/// As [`quantize_q4_0`], and [`Error::LengthMismatch`] for a wrong `out` length.
pub fn quantize_q4_0_into(x: &[f32], out: &mut [BlockQ4_0]) -> Result<(), Error> {
    struct Job<'a>(&'a [f32], &'a mut [BlockQ4_0]);
    impl crate::arch::Job for Job<'_> {
        type Out = Result<(), Error>;
        #[inline(always)]
        fn run(self) -> Self::Out {
            quantize_q4_0_portable(self.0, self.1)
        }
    }
    crate::arch::run(Job(x, out))
}

#[inline(always)]
fn quantize_q4_0_portable(x: &[f32], out: &mut [BlockQ4_0]) -> Result<(), Error> {
    for (i, (xs, b)) in blocks_of(x, out.len())?.zip(out.iter_mut()).enumerate() {
        let xs: &[f32; QK] = xs.try_into().map_err(|_| Error::InvalidHeader("block"))?;
        let (amax, finite) = absmax(xs);
        if !finite {
            return Err(nonfinite(xs, i));
        }
        // The first element of largest magnitude, with its sign (ggml's strict `<` scan).
        // An all-zero block keeps ggml's initial `max = 0.0`, so `d` is -0.0.
        let max = if amax == 0.0 {
            0.0
        } else {
            xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0)
        };
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = half(d);
        check_half(b.d, d, i)?;
        let mut q = [0u8; QK];
        for (c, &v) in q.iter_mut().zip(xs) {
            let t = v * id + 8.5;
            let t = if t > 15.0 { 15.0 } else { t };
            let t = if t > 0.0 { t } else { 0.0 };
            *c = int(trunc_pos(t)) as u8;
        }
        for j in 0..QK / 2 {
            b.qs[j] = q[j] | (q[j + QK / 2] << 4);
        }
    }
    Ok(())
}

/// Dequantize `Q4_0` blocks, as `dequantize_row_q4_0`.
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) -> Result<(), Error> {
    check_out(blocks.len(), out.len())?;
    for (b, ys) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        let (lo, hi) = ys.split_at_mut(QK / 2);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b.qs) {
            *l = (f32::from(q & 0xf) - 8.0) * d;
            *h = (f32::from(q >> 4) - 8.0) * d;
        }
    }
    Ok(())
}

/// Quantize to `Q4_1` blocks, as `quantize_row_q4_1_ref`.
///
/// # Errors
/// [`Error::NotWholeBlocks`] unless `x.len()` is a multiple of 32, [`Error::NonFinite`] for
/// NaN or infinity, [`Error::ScaleOutOfRange`] when the scale or the minimum overflows half.
pub fn quantize_q4_1(x: &[f32]) -> Result<Vec<BlockQ4_1>, Error> {
    let mut out = vec![BlockQ4_1::zeroed(); x.len() / QK];
    quantize_q4_1_into(x, &mut out)?;
    Ok(out)
}

/// [`quantize_q4_1`] into a caller buffer of `x.len() / 32` blocks.
///
/// # Errors
/// As [`quantize_q4_1`], and [`Error::LengthMismatch`] for a wrong `out` length.
pub fn quantize_q4_1_into(x: &[f32], out: &mut [BlockQ4_1]) -> Result<(), Error> {
    struct Job<'a>(&'a [f32], &'a mut [BlockQ4_1]);
    impl crate::arch::Job for Job<'_> {
        type Out = Result<(), Error>;
        #[inline(always)]
        fn run(self) -> Self::Out {
            quantize_q4_1_portable(self.0, self.1)
        }
    }
    crate::arch::run(Job(x, out))
}

#[inline(always)]
fn quantize_q4_1_portable(x: &[f32], out: &mut [BlockQ4_1]) -> Result<(), Error> {
    for (i, (xs, b)) in blocks_of(x, out.len())?.zip(out.iter_mut()).enumerate() {
        let xs: &[f32; QK] = xs.try_into().map_err(|_| Error::InvalidHeader("block"))?;
        let (min, max, finite) = minmax(xs);
        if !finite {
            return Err(nonfinite(xs, i));
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = half(d);
        b.m = half(min);
        check_half(b.d, d, i)?;
        check_half(b.m, min, i)?;
        let mut q = [0u8; QK];
        for (c, &v) in q.iter_mut().zip(xs) {
            let t = (v - min) * id + 0.5;
            let t = if t > 15.0 { 15.0 } else { t };
            let t = if t > 0.0 { t } else { 0.0 };
            *c = int(trunc_pos(t)) as u8;
        }
        for j in 0..QK / 2 {
            b.qs[j] = q[j] | (q[j + QK / 2] << 4);
        }
    }
    Ok(())
}

/// Dequantize `Q4_1` blocks, as `dequantize_row_q4_1`.
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_q4_1(blocks: &[BlockQ4_1], out: &mut [f32]) -> Result<(), Error> {
    check_out(blocks.len(), out.len())?;
    for (b, ys) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        let m = b.m.to_f32();
        let (lo, hi) = ys.split_at_mut(QK / 2);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b.qs) {
            *l = f32::from(q & 0xf) * d + m;
            *h = f32::from(q >> 4) * d + m;
        }
    }
    Ok(())
}

fn check_out(blocks: usize, out: usize) -> Result<(), Error> {
    if blocks * QK == out {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected: blocks * QK,
            actual: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundf_ties_away() {
        for (t, r) in [
            (0.5, 1.0),
            (1.5, 2.0),
            (2.5, 3.0),
            (-0.5, -1.0),
            (-2.5, -3.0),
            (0.49999997, 0.0),
            (126.6, 127.0),
        ] {
            assert_eq!(roundf(t), r, "{t}");
        }
    }

    #[test]
    fn trunc_and_int() {
        for t in [0.0f32, 0.25, 0.5, 0.99999994, 1.0, 1.5, 2.5, 14.999999, 15.0] {
            assert_eq!(trunc_pos(t), t.trunc(), "{t}");
            assert_eq!(int(t.trunc()), t as i32);
        }
        assert_eq!(int(-127.0), -127);
    }

    #[test]
    fn errors() {
        assert_eq!(
            quantize_q8_0(&[0.0; 33]),
            Err(Error::NotWholeBlocks { len: 33, block: 32 })
        );
        let mut x = [0.0f32; 64];
        x[40] = f32::NAN;
        assert_eq!(quantize_q4_1(&x), Err(Error::NonFinite { group: 1, index: 40 }));
        x[40] = 1e10;
        assert!(matches!(
            quantize_q4_0(&x),
            Err(Error::ScaleOutOfRange { group: 1, .. })
        ));
        assert!(dequantize_q8_0(&[BlockQ8_0::zeroed()], &mut [0.0; 31]).is_err());
        assert_eq!(quantize_q8_0(&[]), Ok(vec![]));
    }
}
