//! The integer code maps the absmax and affine quantizers share:
//! `code = round(clamp(x × inv, lo, hi)) + offset`, `x' = ((code ^ xor) - sub) × scale`.

use super::{Error, Rounding};

/// `1.5 × 2^23`: adding it rounds an `f32` of magnitude below `2^22` to an integer (ties to
/// even) and leaves that integer in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;
const MAGIC_BITS: i32 = 0x4B40_0000;

/// How `x × inv` rounds to an integer: the [`Rounding`]s integer codes support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Even,
    Away,
    TowardZero,
}

impl Mode {
    /// The integer rounding for `r`, or [`Error::UnsupportedRounding`] (stochastic rounding
    /// needs random bits per element, which a quantizer does not take).
    pub fn of(r: Rounding) -> Result<Mode, Error> {
        match r {
            Rounding::NearestEven => Ok(Mode::Even),
            Rounding::NearestAway => Ok(Mode::Away),
            Rounding::TowardZero => Ok(Mode::TowardZero),
            Rounding::Stochastic(_) => Err(Error::UnsupportedRounding),
        }
    }
}

/// The code map of one group: `code = round(clamp(x × inv, lo, hi)) + offset` (mod 256).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntEnc {
    pub inv: f32,
    /// The stored scale, divided by instead where `inv` overflows (a subnormal scale).
    pub scale: f32,
    pub lo: f32,
    pub hi: f32,
    pub offset: i32,
    pub mode: Mode,
}

/// The value map of one group: `x' = ((code ^ xor) - sub) × scale`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntDec {
    pub scale: f32,
    pub xor: u8,
    pub sub: f32,
}

/// `1 / scale`, or 0 for a zero scale (an all-zero group).
#[inline]
pub(crate) fn inverse(scale: f32) -> f32 {
    if scale == 0.0 {
        0.0
    } else {
        1.0 / scale
    }
}

/// Codes of `x` under `e`, one per byte (masked later by the packer).
#[inline(always)]
pub(crate) fn encode(e: &IntEnc, x: &[f32], out: &mut [u8]) {
    if e.inv.is_infinite() {
        return encode_dividing(e, x, out);
    }
    match e.mode {
        Mode::Even => encode_in::<{ Mode::Even as u8 }>(e, x, out),
        Mode::Away => encode_in::<{ Mode::Away as u8 }>(e, x, out),
        Mode::TowardZero => encode_in::<{ Mode::TowardZero as u8 }>(e, x, out),
    }
}

/// [`encode`] for a subnormal scale, whose reciprocal overflows: `x / scale` rounded, the
/// same value the multiply gives for every other scale.
#[cold]
fn encode_dividing(e: &IntEnc, x: &[f32], out: &mut [u8]) {
    let mut t = [0f32; 64];
    let one = IntEnc { inv: 1.0, ..*e };
    for (xs, os) in x.chunks(64).zip(out.chunks_mut(64)) {
        for (d, &v) in t.iter_mut().zip(xs) {
            *d = v / e.scale;
        }
        encode(&one, &t[..xs.len()], os);
    }
}

/// [`encode`] for one rounding; `M` is a [`Mode`] as `u8`, so each mode compiles to its own
/// branch-free loop.
#[inline(always)]
fn encode_in<const M: u8>(e: &IntEnc, x: &[f32], out: &mut [u8]) {
    let (inv, lo, hi, off) = (e.inv, e.lo, e.hi, e.offset);
    for (o, &v) in out.iter_mut().zip(x) {
        let t = v * inv;
        let t = if t.is_nan() { 0.0 } else { t };
        let y = if t < lo { lo } else { t };
        let y = if y > hi { hi } else { y };
        let q = if M == Mode::TowardZero as u8 {
            y as i32
        } else {
            let b = (y + MAGIC).to_bits() as i32;
            let mut q = b.wrapping_sub(MAGIC_BITS);
            if M == Mode::Away as u8 {
                let r = f32::from_bits(b as u32) - MAGIC;
                let d = y - r;
                q += i32::from(d == 0.5 && y > 0.0) - i32::from(d == -0.5 && y < 0.0);
            }
            q
        };
        *o = q.wrapping_add(off) as u8;
    }
}

/// Values of `codes` under `d`.
#[inline(always)]
pub(crate) fn decode(d: &IntDec, codes: &[u8], out: &mut [f32]) {
    let (s, x, sub) = (d.scale, d.xor, d.sub);
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = (f32::from(c ^ x) - sub) * s;
    }
}
