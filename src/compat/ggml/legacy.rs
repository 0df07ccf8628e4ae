//! The 32-element blocks: `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`.
//!
//! | type | scale | codes |
//! |---|---|---|
//! | [`BlockQ8_0`] | `d = absmax / 127` | `qs[j] = roundf(x[j] / d)` (ties away from zero), `i8` |
//! | [`BlockQ4_0`] | `d = max / -8`, `max` the element of largest magnitude | `min(15, trunc(x / d + 8.5))`; element `j` in the low nibble of `qs[j]`, element `j + 16` in the high nibble |
//! | [`BlockQ4_1`] | `d = (max - min) / 15`, `m = min` | `min(15, trunc((x - min) / d + 0.5))`, nibbles as `Q4_0` |
//! | [`BlockQ5_0`] | `d = max / -16` | `min(31, trunc(x / d + 16.5))`; low 4 bits as `Q4_0`, bit 4 of element `j` in bit `j` of `qh` |
//! | [`BlockQ5_1`] | `d = (max - min) / 31`, `m = min` | `trunc((x - min) / d + 0.5)`, bits as `Q5_0` |
//!
//! As in ggml, the codes are computed with the `f32` scale *before* it is rounded to half
//! (and with its `f32` inverse); dequantization uses the stored half values: `q × d`,
//! `(q - 8) × d` and `q × d + m` (a multiply then an add, not fused).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{
    check_finite, check_out, dequantize_portable, half, sealed::Sealed, value, whole_blocks, GgmlBlock, GgmlType, QK,
};
use crate::quant::Error;

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

/// ggml's `block_q5_0`: a half scale and 32 5-bit codes offset by 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale `d`.
    pub d: f16,
    /// Bit 4 of the codes: element `j`'s in bit `j` of this little-endian `u32`.
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, nibbles as in [`BlockQ4_0`]; an element is `(code - 16) × d`.
    pub qs: [u8; QK / 2],
}

/// ggml's `block_q5_1`: a half scale and minimum and 32 unsigned 5-bit codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale `d`.
    pub d: f16,
    /// Minimum `m`.
    pub m: f16,
    /// Bit 4 of the codes, as in [`BlockQ5_0`].
    pub qh: [u8; 4],
    /// Low 4 bits of the codes, as in [`BlockQ5_0`]; an element is `code × d + m`.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(core::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(core::mem::size_of::<BlockQ5_1>() == 24);

mod arith;
use arith::{absmax, check_half, int, minmax, nonfinite, roundf, trunc_pos};

/// The half scale of a symmetric block and the inverse its codes use: `d = num / den`,
/// `id = 1 / d` (0 for `d == 0`), `None` for `id` when it is infinite (all codes 0, see
/// `tiny_scale`); an error when `d` overflows half.
#[inline(always)]
fn scale_half(num: f32, den: f32, i: usize) -> Result<(f16, Option<f32>), Error> {
    let d = num / den;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let h = half(d);
    check_half(h, d, i)?;
    Ok((h, (!id.is_infinite()).then_some(id)))
}

/// The symmetric scale of `Q4_0` and `Q5_0`: the signed value of largest magnitude over
/// `-levels`, after the finiteness check.
#[inline(always)]
fn signed_scale(xs: &[f32; QK], levels: f32, i: usize) -> Result<(f16, Option<f32>), Error> {
    let (amax, finite) = absmax(xs);
    if !finite {
        return Err(nonfinite(xs, i));
    }
    // For an all-zero block `d` is -0.0, as in ggml.
    scale_half(signed_max(xs, amax), -levels, i)
}

/// The scale and minimum of `Q4_1` and `Q5_1` (`d = (max - min) / levels`), after the
/// finiteness check, both halves checked.
#[inline(always)]
fn affine_scale(xs: &[f32; QK], levels: f32, i: usize) -> Result<(f16, f16, f32, Option<f32>), Error> {
    let (min, max, finite) = minmax(xs);
    if !finite {
        return Err(nonfinite(xs, i));
    }
    let (d, id) = scale_half(max - min, levels, i)?;
    let m = half(min);
    check_half(m, min, i)?;
    Ok((d, m, min, id))
}

// `tiny_scale`: a scale `d` below 2^-128 in magnitude (a block of values below about 1e-36)
// has an infinite inverse, and ggml's conversion of `x * id` (infinite, or NaN for 0) to an
// integer is undefined in C. On x86-64, the reference, it gives `0x8000_0000`, whose low byte
// is the code: 0 for every element. lowbit writes those zero codes on every platform.

/// `Q8_0` of one block, as `quantize_row_q8_0_ref`.
#[inline(always)]
fn q8_0(xs: &[f32; QK], i: usize) -> Result<BlockQ8_0, Error> {
    let (amax, finite) = absmax(xs);
    if !finite {
        return Err(nonfinite(xs, i));
    }
    let mut b = BlockQ8_0::zeroed();
    let (d, id) = scale_half(amax, 127.0, i)?;
    b.d = d;
    let Some(id) = id else { return Ok(b) };
    for (q, &v) in b.qs.iter_mut().zip(xs) {
        *q = int(roundf(v * id)) as i8;
    }
    Ok(b)
}

/// Eight `Q8_0` blocks side by side, the same bits as [`q8_0`] on each: the eight scales, their
/// inverses and their halves are computed as vectors of eight (two vector divisions and one
/// vector conversion instead of eight scalar ones each), which is most of a block's cost.
/// A block with a NaN or an infinity goes block by block, so errors come in [`q8_0`]'s order.
#[inline(always)]
fn q8_0_x8(xs: &[f32], out: &mut [BlockQ8_0], first: usize) -> Result<(), Error> {
    let mut amax = [0f32; 8];
    let mut finite = true;
    for (a, c) in amax.iter_mut().zip(xs.chunks_exact(QK)) {
        let (m, f) = absmax(arr(c)?);
        *a = m;
        finite &= f;
    }
    if !finite {
        for (i, (c, b)) in xs.chunks_exact(QK).zip(out.iter_mut()).enumerate() {
            *b = q8_0(arr(c)?, first + i)?;
        }
        return Ok(());
    }
    let d = amax.map(|a| a / 127.0);
    let id = d.map(|d| if d != 0.0 { 1.0 / d } else { 0.0 });
    let h = d.map(|d| crate::format::codec::encode_f32_rne(&<crate::Fp16 as crate::FloatFormat>::FAST, d) as u16);
    for (i, (c, b)) in xs.chunks_exact(QK).zip(out.iter_mut()).enumerate() {
        b.d = f16::from_bits(h[i]);
        check_half(b.d, d[i], first + i)?;
        let id = id[i];
        if id.is_infinite() {
            b.qs = [0; QK]; // see `tiny_scale`
            continue;
        }
        for (q, &v) in b.qs.iter_mut().zip(c) {
            *q = int(roundf(v * id)) as i8;
        }
    }
    Ok(())
}

/// The first element of largest magnitude, with its sign (ggml's strict `<` scan); an
/// all-zero block keeps ggml's initial `max = 0.0`.
#[inline(always)]
fn signed_max(xs: &[f32; QK], amax: f32) -> f32 {
    if amax == 0.0 {
        0.0
    } else {
        xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0)
    }
}

/// `Q4_0` of one block, as `quantize_row_q4_0_ref`.
#[inline(always)]
fn q4_0(xs: &[f32; QK], i: usize) -> Result<BlockQ4_0, Error> {
    let mut b = BlockQ4_0::zeroed();
    let (d, id) = signed_scale(xs, 8.0, i)?;
    b.d = d;
    let Some(id) = id else { return Ok(b) };
    b.qs = nibbles(xs, |v| v * id + 8.5);
    Ok(b)
}

/// The 4-bit codes of `Q4_0` and `Q4_1` from their offset values `t(x)`: `MIN(15, (int8_t)t)`
/// clamped at 0 too, the first half of the block in the low nibbles.
#[inline(always)]
fn nibbles(xs: &[f32; QK], t: impl Fn(f32) -> f32) -> [u8; QK / 2] {
    let mut q = [0u8; QK];
    for (c, &v) in q.iter_mut().zip(xs) {
        let t = t(v);
        let t = if t > 15.0 { 15.0 } else { t };
        let t = if t > 0.0 { t } else { 0.0 };
        *c = int(trunc_pos(t)) as u8;
    }
    let mut qs = [0u8; QK / 2];
    for j in 0..QK / 2 {
        qs[j] = q[j] | (q[j + QK / 2] << 4);
    }
    qs
}

/// `Q4_1` of one block, as `quantize_row_q4_1_ref`.
#[inline(always)]
fn q4_1(xs: &[f32; QK], i: usize) -> Result<BlockQ4_1, Error> {
    let mut b = BlockQ4_1::zeroed();
    let (d, m, min, id) = affine_scale(xs, 15.0, i)?;
    (b.d, b.m) = (d, m);
    let Some(id) = id else { return Ok(b) };
    b.qs = nibbles(xs, |v| (v - min) * id + 0.5);
    Ok(b)
}

/// Low nibbles and the `qh` word of 32 five-bit codes, as ggml packs them.
#[inline(always)]
pub(super) fn pack5(q: &[u8; QK]) -> ([u8; QK / 2], [u8; 4]) {
    let mut qs = [0u8; QK / 2];
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (a, b) = (q[j], q[j + QK / 2]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + QK / 2);
    }
    (qs, qh.to_le_bytes())
}

/// `Q5_0` of one block, as `quantize_row_q5_0_ref`.
#[inline(always)]
fn q5_0(xs: &[f32; QK], i: usize) -> Result<BlockQ5_0, Error> {
    let mut b = BlockQ5_0::zeroed();
    let (d, id) = signed_scale(xs, 16.0, i)?;
    b.d = d;
    let Some(id) = id else { return Ok(b) };
    let mut q = [0u8; QK];
    for (c, &v) in q.iter_mut().zip(xs) {
        // `(int8_t)(x*id + 16.5f)` truncates a value in [0, 33) here; then `MIN(31, .)`.
        let t = int(trunc_pos(v * id + 16.5));
        *c = t.min(31) as u8;
    }
    (b.qs, b.qh) = pack5(&q);
    Ok(b)
}

/// `Q5_1` of one block, as `quantize_row_q5_1_ref`.
#[inline(always)]
fn q5_1(xs: &[f32; QK], i: usize) -> Result<BlockQ5_1, Error> {
    let mut b = BlockQ5_1::zeroed();
    let (d, m, min, id) = affine_scale(xs, 31.0, i)?;
    (b.d, b.m) = (d, m);
    let Some(id) = id else { return Ok(b) };
    let mut q = [0u8; QK];
    for (c, &v) in q.iter_mut().zip(xs) {
        // `(uint8_t)(x + 0.5f)` with no clamp: the value is in [0.5, 31.5] here.
        *c = int(trunc_pos((v - min) * id + 0.5)) as u8;
    }
    (b.qs, b.qh) = pack5(&q);
    Ok(b)
}

/// One block of a slice: the chunk as an array (always 32 long).
#[inline(always)]
fn arr(xs: &[f32]) -> Result<&[f32; QK], Error> {
    xs.try_into().map_err(|_| Error::NotWholeBlocks {
        len: xs.len(),
        block: QK,
    })
}

macro_rules! fast_path {
    (@public $quantize:ident, $into:ident, $portable:ident, $block:ident, $name:literal, $why:literal) => {
        #[doc = concat!("Quantize to `", $name, "` blocks, as `quantize_row_", $name, "_ref` (the same as [`GgmlBlock::quantize`]).")]
        ///
        /// # Errors
        #[doc = concat!("[`Error::NotWholeBlocks`] unless `x.len()` is a multiple of 32, [`Error::NonFinite`] for NaN or infinity, [`Error::ScaleOutOfRange`] when ", $why, ".")]
        pub fn $quantize(x: &[f32]) -> Result<Vec<$block>, Error> {
            let mut out = vec![$block::zeroed(); x.len() / QK];
            $into(x, &mut out)?;
            Ok(out)
        }

        #[doc = concat!("[`", stringify!($quantize), "`] into a caller buffer of `x.len() / 32` blocks.")]
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($quantize), "`], and [`Error::LengthMismatch`] for a wrong `out` length.")]
        pub fn $into(x: &[f32], out: &mut [$block]) -> Result<(), Error> {
            struct Job<'a>(&'a [f32], &'a mut [$block]);
            impl crate::arch::Job for Job<'_> {
                type Out = Result<(), Error>;
                #[inline(always)]
                fn run(self) -> Self::Out {
                    $portable(self.0, self.1)
                }
            }
            crate::arch::run(Job(x, out))
        }

    };
    ($quantize:ident, $into:ident, $portable:ident, $block:ident, $one:ident, $name:literal, $why:literal) => {
        fast_path!(@public $quantize, $into, $portable, $block, $name, $why);

        #[inline(always)]
        fn $portable(x: &[f32], out: &mut [$block]) -> Result<(), Error> {
            for (i, (xs, b)) in whole_blocks(x, QK, out.len())?.zip(out.iter_mut()).enumerate() {
                *b = $one(arr(xs)?, i)?;
            }
            Ok(())
        }
    };
}

fast_path!(
    @public quantize_q8_0,
    quantize_q8_0_into,
    q8_0_portable,
    BlockQ8_0,
    "q8_0",
    "`absmax / 127` overflows half"
);

/// The hand-written kernel of [`crate::arch`] where the CPU has one, else eight blocks at a
/// time; the blocks either stops at (a NaN or infinity, a scale outside half's range or with
/// an infinite inverse) one by one with [`q8_0`]. The same bits as [`q8_0`] on every block.
#[inline(always)]
fn q8_0_portable(x: &[f32], out: &mut [BlockQ8_0]) -> Result<(), Error> {
    let _ = whole_blocks(x, QK, out.len())?;
    let n = out.len();
    let mut i = 0;
    while i < n {
        match crate::arch::absmax_i8_f16_blocks(&x[i * QK..], bytemuck::cast_slice_mut(&mut out[i..])) {
            Some(done) => i += done,
            None => break,
        }
        if i < n {
            out[i] = q8_0(arr(&x[i * QK..(i + 1) * QK])?, i)?;
            i += 1;
        }
    }
    if i == n {
        return Ok(());
    }
    // No kernel on this CPU (`i` is 0).
    let first = i;
    let (x, out) = (&x[first * QK..], &mut out[first..]);
    let rest = first + (out.len() / 8) * 8;
    let x8 = x.chunks_exact(8 * QK);
    let tail = x8.remainder();
    let mut o8 = out.chunks_exact_mut(8);
    for (j, (xs, os)) in x8.zip(&mut o8).enumerate() {
        q8_0_x8(xs, os, first + 8 * j)?;
    }
    for (j, (xs, b)) in tail.chunks_exact(QK).zip(o8.into_remainder()).enumerate() {
        *b = q8_0(arr(xs)?, rest + j)?;
    }
    Ok(())
}
fast_path!(
    @public quantize_q4_0,
    quantize_q4_0_into,
    q4_0_portable,
    BlockQ4_0,
    "q4_0",
    "`max / -8` overflows half"
);
fast_path!(
    @public quantize_q4_1,
    quantize_q4_1_into,
    q4_1_portable,
    BlockQ4_1,
    "q4_1",
    "the scale or the minimum overflows half"
);

#[inline(always)]
fn q4_0_portable(x: &[f32], out: &mut [BlockQ4_0]) -> Result<(), Error> {
    u4_blocks(x, out, false, q4_0)
}

#[inline(always)]
fn q4_1_portable(x: &[f32], out: &mut [BlockQ4_1]) -> Result<(), Error> {
    u4_blocks(x, out, true, q4_1)
}

/// `Q4_0` or `Q4_1` blocks: the kernel of [`crate::arch`] eight blocks a step where the CPU
/// has one, and `one` block by block for the steps it hands back (so errors come in `one`'s
/// order), the tail, and CPUs without it. The same bits as `one` on every block.
#[inline(always)]
fn u4_blocks<B: Pod>(
    x: &[f32],
    out: &mut [B],
    affine: bool,
    one: fn(&[f32; QK], usize) -> Result<B, Error>,
) -> Result<(), Error> {
    let _ = whole_blocks(x, QK, out.len())?;
    let blockwise = |out: &mut [B], from: usize, to: usize| -> Result<(), Error> {
        for j in from..to {
            out[j] = one(arr(&x[j * QK..(j + 1) * QK])?, j)?;
        }
        Ok(())
    };
    let n = out.len();
    let mut i = 0;
    while i < n {
        let Some(done) = crate::arch::quantize_u4_blocks(&x[i * QK..], bytemuck::cast_slice_mut(&mut out[i..]), affine)
        else {
            break;
        };
        i += done;
        blockwise(out, i, (i + 8).min(n))?;
        i = (i + 8).min(n);
    }
    blockwise(out, i, n)?;
    Ok(())
}

/// Dequantize `Q8_0` blocks into `out` (`32 × blocks.len()` values), as `dequantize_row_q8_0`
/// (the same as [`GgmlBlock::dequantize_into`]).
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) -> Result<(), Error> {
    BlockQ8_0::dequantize_into(blocks, out)
}

/// Dequantize `Q4_0` blocks, as `dequantize_row_q4_0` (the same as
/// [`GgmlBlock::dequantize_into`]).
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) -> Result<(), Error> {
    BlockQ4_0::dequantize_into(blocks, out)
}

/// Dequantize `Q4_1` blocks, as `dequantize_row_q4_1` (the same as
/// [`GgmlBlock::dequantize_into`]).
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_q4_1(blocks: &[BlockQ4_1], out: &mut [f32]) -> Result<(), Error> {
    BlockQ4_1::dequantize_into(blocks, out)
}

impl Sealed for BlockQ8_0 {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        q8_0(arr(x)?, group)
    }
    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = value(self.d);
        for (y, &q) in out.iter_mut().zip(&self.qs) {
            *y = f32::from(q) * d;
        }
    }
}

impl Sealed for BlockQ4_0 {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        q4_0(arr(x)?, group)
    }
    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = value(self.d);
        let (lo, hi) = out.split_at_mut(QK / 2);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&self.qs) {
            *l = (f32::from(q & 0xf) - 8.0) * d;
            *h = (f32::from(q >> 4) - 8.0) * d;
        }
    }
}

impl Sealed for BlockQ4_1 {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        q4_1(arr(x)?, group)
    }
    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let (d, m) = (value(self.d), value(self.m));
        let (lo, hi) = out.split_at_mut(QK / 2);
        for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&self.qs) {
            *l = f32::from(q & 0xf) * d + m;
            *h = f32::from(q >> 4) * d + m;
        }
    }
}

/// The 5-bit codes of a `Q5_0`/`Q5_1` block, element order.
#[inline(always)]
fn unpack5(qs: &[u8; QK / 2], qh: [u8; 4]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0f) | ((((qh >> j) << 4) & 0x10) as u8);
        q[j + QK / 2] = (qs[j] >> 4) | (((qh >> (j + 12)) & 0x10) as u8);
    }
    q
}

impl Sealed for BlockQ5_0 {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        q5_0(arr(x)?, group)
    }
    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = value(self.d);
        for (y, q) in out.iter_mut().zip(unpack5(&self.qs, self.qh)) {
            // ggml: `(int32_t)(code - 16) * d`, an exact integer times `d`.
            *y = (i32::from(q) - 16) as f32 * d;
        }
    }
}

impl Sealed for BlockQ5_1 {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        q5_1(arr(x)?, group)
    }
    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let (d, m) = (value(self.d), value(self.m));
        for (y, q) in out.iter_mut().zip(unpack5(&self.qs, self.qh)) {
            *y = f32::from(q) * d + m;
        }
    }
}

impl GgmlBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const BLOCK: usize = QK;
    fn quantize_into(x: &[f32], out: &mut [Self]) -> Result<(), Error> {
        quantize_q8_0_into(x, out)
    }

    /// As the trait's loop (`dequantize_row_q8_0`), with an AVX-512 kernel where the CPU has
    /// it: the same scale decode and the same multiply, so the same bits.
    fn dequantize_into(blocks: &[Self], out: &mut [f32]) -> Result<(), Error> {
        check_out(blocks.len(), QK, out)?;
        let records: &[u8] = bytemuck::cast_slice(blocks);
        if crate::arch::dequantize_i8_f16_blocks_avx512(records, out, |h| value(f16::from_bits(h))) {
            return Ok(());
        }
        dequantize_portable(blocks, out);
        Ok(())
    }
}

/// A record's half at byte `at`, as a value.
#[inline(always)]
fn half_at(r: &[u8], at: usize) -> f32 {
    value(f16::from_bits(u16::from_le_bytes([r[at], r[at + 1]])))
}

impl GgmlBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const BLOCK: usize = QK;
    fn quantize_into(x: &[f32], out: &mut [Self]) -> Result<(), Error> {
        quantize_q4_0_into(x, out)
    }

    /// As the trait's loop (`dequantize_row_q4_0`), with an AVX2 kernel where the CPU has it:
    /// the same scale decode and arithmetic, so the same bits.
    fn dequantize_into(blocks: &[Self], out: &mut [f32]) -> Result<(), Error> {
        check_out(blocks.len(), QK, out)?;
        let records: &[u8] = bytemuck::cast_slice(blocks);
        if !crate::arch::dequantize_u4_blocks(records, size_of::<Self>(), false, out, |r| (half_at(r, 0), 0.0)) {
            dequantize_portable(blocks, out);
        }
        Ok(())
    }
}

impl GgmlBlock for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const BLOCK: usize = QK;
    fn quantize_into(x: &[f32], out: &mut [Self]) -> Result<(), Error> {
        quantize_q4_1_into(x, out)
    }

    /// As the trait's loop (`dequantize_row_q4_1`), with an AVX2 kernel where the CPU has it.
    fn dequantize_into(blocks: &[Self], out: &mut [f32]) -> Result<(), Error> {
        check_out(blocks.len(), QK, out)?;
        let records: &[u8] = bytemuck::cast_slice(blocks);
        if !crate::arch::dequantize_u4_blocks(records, size_of::<Self>(), true, out, |r| {
            (half_at(r, 0), half_at(r, 2))
        }) {
            dequantize_portable(blocks, out);
        }
        Ok(())
    }
}

impl GgmlBlock for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const BLOCK: usize = QK;
}

impl GgmlBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const BLOCK: usize = QK;
}

#[cfg(test)]
mod tests;
