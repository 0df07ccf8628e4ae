//! The scalar arithmetic of ggml's legacy quantizers, written branch-free so that the block
//! loops vectorise: C's `roundf` and truncation, and the block scans.

use half::f16;

use super::{check_finite, QK};
use crate::quant::Error;

/// `roundf` of `|t| < 2^22`, branch-free: round to nearest even, then fix the ties.
#[inline(always)]
pub(super) fn roundf(t: f32) -> f32 {
    const M: f32 = 12_582_912.0;
    let r = (t + M) - M;
    let d = t - r;
    let up = if d == 0.5 && t > 0.0 { 1.0 } else { 0.0 };
    let down = if d == -0.5 && t < 0.0 { 1.0 } else { 0.0 };
    r + up - down
}

/// An integral `f32` of magnitude below `2^22` to `i32`, without the saturating conversion.
#[inline(always)]
pub(super) fn int(r: f32) -> i32 {
    const M: f32 = 12_582_912.0;
    ((r + M).to_bits() as i32).wrapping_sub(0x4B40_0000)
}

/// `trunc` of `0 <= t < 2^22`, branch-free.
#[inline(always)]
pub(super) fn trunc_pos(t: f32) -> f32 {
    const M: f32 = 12_582_912.0;
    let r = (t + M) - M;
    if r > t {
        r - 1.0
    } else {
        r
    }
}

/// Max of `|x|` over a block and whether every value is finite.
#[inline(always)]
pub(super) fn absmax(x: &[f32; QK]) -> (f32, bool) {
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
pub(super) fn minmax(x: &[f32; QK]) -> (f32, f32, bool) {
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

pub(super) fn nonfinite(x: &[f32], block: usize) -> Error {
    check_finite(x, block).err().unwrap_or(Error::NonFinite {
        group: block,
        index: block * QK,
    })
}

pub(super) fn check_half(h: f16, raw: f32, block: usize) -> Result<(), Error> {
    if h.is_finite() {
        Ok(())
    } else {
        Err(Error::ScaleOutOfRange {
            group: block,
            scale: raw,
        })
    }
}
