//! The one encoder and decoder, generic over [`Layout`].
//!
//! [`encode_f64`] is the reference: it rounds once from the exact input, for every rounding
//! mode and overflow policy. `f32` inputs widen to `f64` exactly, so they share it. The
//! branch-free [`encode_f32_rne`] is the fast path for the default options; it is tested to
//! agree with [`encode_f64`] bit for bit.

use super::layout::{pow2, Layout, NanRule, Options, Overflow, Rounding, Specials};

/// `sig / 2^shift` rounded to an integer by `rounding`.
#[inline]
fn round_shift(sig: u64, shift: u32, rounding: Rounding) -> u64 {
    if shift == 0 {
        return sig;
    }
    // sig < 2^53, so for shift >= 64 the quotient is 0 and the fraction is sig / 2^shift.
    let (q, rem) = if shift >= 64 {
        (0, sig)
    } else {
        (sig >> shift, sig & ((1u64 << shift) - 1))
    };
    let up = match rounding {
        Rounding::TowardZero => false,
        Rounding::NearestEven | Rounding::NearestAway => {
            if shift > 64 {
                false // rem < 2^53 <= half
            } else {
                let half = 1u64 << (shift - 1);
                rem > half || (rem == half && (rounding == Rounding::NearestAway || q & 1 == 1))
            }
        }
        Rounding::Stochastic(r) => {
            // The fraction rem / 2^shift as a 32-bit fixed-point number, truncated.
            let frac32 = if shift >= 32 {
                let s = shift - 32;
                if s >= 64 {
                    0
                } else {
                    rem >> s
                }
            } else {
                rem << (32 - shift)
            };
            frac32 > u64::from(r)
        }
    };
    q + up as u64
}

/// The exact value of a finite nonzero `|x|` as `sig × 2^(exp - 52)`, with `sig < 2^53`.
#[inline]
fn split_f64(abs_bits: u64) -> (u64, i32) {
    let e = (abs_bits >> 52) as i32;
    let frac = abs_bits & ((1u64 << 52) - 1);
    if e == 0 {
        (frac, -1022)
    } else {
        (frac | (1u64 << 52), e - 1023)
    }
}

/// The code of a NaN input (whose bits are `bits`, an f64 NaN) in a format with NaN codes, or
/// zero for a finite-only format.
#[inline]
fn nan_code(l: &Layout, negative: bool, payload52: u64) -> u64 {
    let sign = if negative { l.sign_mask() } else { 0 };
    match (l.specials, l.nan_rule) {
        (Specials::Finite, _) => sign, // documented choice: NaN becomes a zero of its sign
        (Specials::FiniteNanUnsignedZero | Specials::PowerOfTwo, _) => l.nan_code().unwrap_or(0),
        (_, NanRule::Canonical) => sign | l.nan_code().unwrap_or(0),
        (_, NanRule::Payload { quiet }) => {
            let mut man = payload52 >> (52 - l.man_bits);
            if quiet {
                man |= 1 << (l.man_bits - 1);
            } else if man == 0 {
                man = 1;
            }
            sign | (l.exp_field_max() << l.man_bits) | man
        }
    }
}

/// The code for a magnitude that overflowed (or an infinite input), before the sign.
#[inline]
fn overflow_magnitude(l: &Layout, opts: Options, infinite_input: bool) -> u64 {
    let saturate = opts.overflow == Overflow::Saturate
        || (opts.rounding == Rounding::TowardZero && !infinite_input)
        || l.specials == Specials::Finite;
    if saturate {
        return l.max_magnitude_code();
    }
    match l.specials {
        Specials::Ieee => l.inf_magnitude_code().unwrap_or(0),
        _ => u64::MAX, // marker: NaN
    }
}

/// `x` as an `f64`, exactly, a NaN's payload bits included: `f64::from` quiets a signalling
/// NaN on x86, which would make the `f32` and `f64` paths disagree.
#[inline]
pub(crate) fn widen(x: f32) -> f64 {
    if x.is_nan() {
        let b = u64::from(x.to_bits());
        f64::from_bits((b >> 31) << 63 | 0x7ff0_0000_0000_0000 | (b & 0x007f_ffff) << 29)
    } else {
        f64::from(x)
    }
}

/// Encode an `f64` into a code of layout `l`: one rounding from the exact value.
pub(crate) fn encode_f64(l: &Layout, x: f64, opts: Options) -> u64 {
    if l.man_bits == 52 {
        // binary64 is the identity; only saturation changes an infinity.
        if x.is_infinite() && opts.overflow == Overflow::Saturate {
            return (x.to_bits() & (1 << 63)) | f64::MAX.to_bits();
        }
        return x.to_bits();
    }
    let bits = x.to_bits();
    let negative = bits >> 63 == 1;
    let abs = bits & !(1u64 << 63);
    if x.is_nan() {
        return nan_code(l, negative, abs & ((1u64 << 52) - 1));
    }
    if l.specials == Specials::PowerOfTwo {
        return encode_power_of_two(l, x, opts);
    }
    let sign = if negative { l.sign_mask() } else { 0 };
    let mag = if abs == 0 {
        0
    } else if x.is_infinite() {
        overflow_magnitude(l, opts, true)
    } else {
        let (sig, e) = split_f64(abs);
        let man = l.man_bits;
        let emin = l.min_exp();
        // Exponents far above the range overflow whatever the rounding; capping keeps the
        // shift arithmetic small.
        let emax = l.exp_field_max() as i32 - l.bias;
        if e > emax + 1 {
            overflow_magnitude(l, opts, false)
        } else {
            let extra = if e < emin { (emin - e) as u32 } else { 0 };
            let n = round_shift(sig, 52 - man + extra, opts.rounding);
            let mag = if e >= emin {
                (((e + l.bias - 1) as u64) << man) + n
            } else {
                n
            };
            if mag > l.max_magnitude_code() {
                overflow_magnitude(l, opts, false)
            } else {
                mag
            }
        }
    };
    match mag {
        u64::MAX if l.has_negative_zero() => sign | l.nan_code().unwrap_or(0),
        u64::MAX => l.nan_code().unwrap_or(0),
        0 if !l.has_negative_zero() => 0,
        _ => sign | mag,
    }
}

/// E8M0: the nearest power of two, ties away from zero, as ml_dtypes (0.7) rounds it.
///
/// With no mantissa bit, "nearest" compares linear distances: `[2^e, 1.5·2^e)` goes down to
/// `2^e` and `[1.5·2^e, 2^(e+1))` up, in every binade including the lowest one,
/// `(2^-127, 2^-126)`. Anything below `2^-127`, the smallest value, becomes `2^-127`. Zero,
/// negative numbers and infinities are NaN; so is overflow, unless the policy saturates.
fn encode_power_of_two(l: &Layout, x: f64, opts: Options) -> u64 {
    let nan = l.magnitude_mask();
    let saturate = opts.overflow == Overflow::Saturate;
    if x <= 0.0 {
        return if saturate { 0 } else { nan };
    }
    if x.is_infinite() {
        return if saturate { l.max_magnitude_code() } else { nan };
    }
    let min = l.min_exp(); // code 0 is 2^min
    let (sig, e) = split_f64(x.to_bits());
    let (sig, e) = if sig < (1u64 << 52) {
        // An f64 subnormal: normalise.
        let lz = sig.leading_zeros() - 11;
        (sig << lz, e - lz as i32)
    } else {
        (sig, e)
    };
    let code = if e < min {
        // Below the smallest value, which is the nearest one (and the only one toward zero).
        0
    } else {
        let n = round_shift(sig, 52, opts.rounding_for_power_of_two());
        (e - min) as u64 + n - 1
    };
    if code > l.max_magnitude_code() {
        if saturate || opts.rounding == Rounding::TowardZero {
            l.max_magnitude_code()
        } else {
            nan
        }
    } else {
        code
    }
}

impl Options {
    /// E8M0 has no mantissa bit to make a tie even: ml_dtypes sends ties away from zero.
    fn rounding_for_power_of_two(self) -> Rounding {
        match self.rounding {
            Rounding::NearestEven => Rounding::NearestAway,
            r => r,
        }
    }
}

/// Decode a code of layout `l` to its exact `f64` value.
pub(crate) fn decode_f64(l: &Layout, code: u64) -> f64 {
    if l.man_bits == 52 {
        return f64::from_bits(code);
    }
    let negative = code & l.sign_mask() != 0;
    let mag = code & l.magnitude_mask();
    if l.is_nan_code(code) {
        let payload = (mag & l.man_mask()) << (52 - l.man_bits);
        let bits = 0x7ff0_0000_0000_0000 | payload | if payload == 0 { 1u64 << 51 } else { 0 };
        return f64::from_bits(bits | (negative as u64) << 63);
    }
    if Some(mag) == l.inf_magnitude_code() {
        return if negative { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    let v = l.magnitude_value(mag);
    if negative {
        -v
    } else {
        v
    }
}

/// Decode to `f32`. Exact for every layout whose values fit `f32` (all of this crate's).
#[inline]
pub(crate) fn decode_f32(l: &Layout, code: u64) -> f32 {
    if l.is_nan_code(code) && l.man_bits <= 23 {
        // Keep the payload the way `f32` NaNs carry it, so a NaN round-trips.
        let negative = code & l.sign_mask() != 0;
        let payload = ((code & l.man_mask()) << (23 - l.man_bits)) as u32;
        let quiet = if payload == 0 { 1u32 << 22 } else { 0 };
        return f32::from_bits(0x7f80_0000 | payload | quiet | (negative as u32) << 31);
    }
    decode_f64(l, code) as f32
}

#[doc(hidden)]
/// Constants of the branch-free `f32` fast path, derived from a layout.
///
/// The fast path needs the format's normal range to sit inside `f32`'s (so re-biasing the
/// exponent is a subtraction), a sign bit and 1 to 22 mantissa bits; `fast` says whether that
/// holds.
#[derive(Clone, Copy, Debug)]
pub struct F32Fast {
    pub(crate) fast: bool,
    shift: u32,
    rebias: u32,
    min_normal_bits: u32,
    magic: f32,
    max_mag: u32,
    /// Code for overflow before the sign; `u32::MAX` means NaN.
    overflow_mag: u32,
    nan: u32,
    nan_payload: bool,
    nan_exp: u32,
    nan_quiet_bit: u32,
    sign_shift: u32,
    unsigned_zero: bool,
}

impl F32Fast {
    pub(crate) const fn new(l: &Layout, saturate: bool) -> Self {
        let emin = l.min_exp();
        // The largest finite exponent: IEEE formats spend the top binade on inf and NaN.
        let emax = l.exp_field_max() as i32 - l.bias - matches!(l.specials, Specials::Ieee) as i32;
        let fast = l.man_bits < 23
            && l.man_bits >= 1
            && l.is_signed()
            && emin >= -126
            && emax <= 127
            && emin - l.man_bits as i32 + 23 >= -126;
        let man = if fast { l.man_bits } else { 1 };
        let max_mag = l.max_magnitude_code() as u32;
        let overflow_mag = match l.specials {
            _ if saturate => max_mag,
            Specials::Ieee => (l.exp_field_max() << l.man_bits) as u32,
            Specials::Finite => max_mag,
            _ => u32::MAX,
        };
        let (nan_payload, quiet) = match (l.specials, l.nan_rule) {
            (Specials::Ieee, NanRule::Payload { quiet }) => (true, quiet),
            _ => (false, false),
        };
        Self {
            fast,
            shift: 23 - man,
            rebias: if fast { ((127 - l.bias) as u32) << 23 } else { 0 },
            min_normal_bits: if fast { ((127 + emin) as u32) << 23 } else { 0 },
            magic: if fast { pow2(emin - man as i32 + 23) as f32 } else { 1.0 },
            max_mag,
            overflow_mag,
            nan: match l.nan_code() {
                Some(c) => c as u32,
                None => 0,
            },
            nan_payload,
            nan_exp: (l.exp_field_max() << l.man_bits) as u32,
            nan_quiet_bit: if quiet { 1 << (man - 1) } else { 0 },
            // Only read on the fast path; wider layouts (binary64) get a harmless 0.
            sign_shift: if fast { 31 - (l.exp_bits + l.man_bits) } else { 0 },
            unsigned_zero: !l.has_negative_zero(),
        }
    }
}

/// Round-to-nearest-even encode of an `f32`, without branches, for layouts where
/// [`F32Fast::fast`] holds; `k` comes from [`F32Fast::new`]. Equal to [`encode_f64`] with the
/// default options (or saturating overflow, if `k` was made so) on every input.
#[inline(always)]
pub(crate) fn encode_f32_rne(k: &F32Fast, x: f32) -> u32 {
    let b = x.to_bits();
    let sign = (b >> 31) << (31 - k.sign_shift);
    let a = b & 0x7fff_ffff;
    // Normal: re-bias the exponent, then round the low `shift` bits to nearest even.
    let lsb = (a >> k.shift) & 1;
    let normal = a.wrapping_sub(k.rebias).wrapping_add((1 << (k.shift - 1)) - 1 + lsb) >> k.shift;
    // Subnormal: adding 2^(emin - man + 23) makes the FPU round |x| to a multiple of the
    // format's smallest subnormal, in the current (nearest-even) mode.
    let sub = (f32::from_bits(a) + k.magic).to_bits().wrapping_sub(k.magic.to_bits());
    let mut mag = if a < k.min_normal_bits { sub } else { normal };
    // Overflow, infinities included, goes to the policy's code.
    mag = if mag > k.max_mag { k.overflow_mag } else { mag };
    let signed_nan = if k.unsigned_zero { k.nan } else { sign | k.nan };
    let code = if mag == u32::MAX {
        signed_nan
    } else if mag == 0 && k.unsigned_zero {
        0
    } else {
        sign | mag
    };
    let payload = ((a & 0x007f_ffff) >> k.shift) | k.nan_quiet_bit;
    let payload_nan = sign | k.nan_exp | payload | (payload == 0) as u32;
    let nan = if k.nan_payload { payload_nan } else { signed_nan };
    if a > 0x7f80_0000 {
        nan
    } else {
        code
    }
}

/// Branch-free decode of a code to `f32`, for layouts where [`F32Fast::fast`] holds.
#[inline(always)]
pub(crate) fn decode_f32_fast(l: &Layout, k: &F32Fast, code: u32) -> f32 {
    if l.exp_bits == 8 && l.bias == 127 && matches!(l.specials, Specials::Ieee) {
        // bfloat16 and TF32 are truncated f32 patterns: widening is a shift, NaNs included.
        return f32::from_bits(code << k.shift);
    }
    let sign = (code << k.sign_shift) & 0x8000_0000;
    let mag = code & l.magnitude_mask() as u32;
    let normal = (mag << k.shift).wrapping_add(k.rebias);
    let sub = ((mag as f32) * pow2(l.min_exp() - l.man_bits as i32) as f32).to_bits();
    let mut bits = if mag < (1 << l.man_bits) { sub } else { normal };
    let exp = mag >> l.man_bits;
    let special = match l.specials {
        Specials::Ieee => exp == l.exp_field_max() as u32,
        Specials::FiniteNan => mag == l.magnitude_mask() as u32,
        Specials::FiniteNanUnsignedZero => code == l.sign_mask() as u32,
        _ => false,
    };
    let payload = (mag & l.man_mask() as u32) << k.shift;
    let special_bits = 0x7f80_0000
        | payload
        | if payload == 0 && !matches!(l.specials, Specials::Ieee) {
            1 << 22
        } else {
            0
        };
    bits = if special { special_bits } else { bits };
    f32::from_bits(sign | bits)
}
