//! microxcaling's `_quantize_mx`, MXINT8 included.

use super::*;

/// A microxcaling element format (`ElemFormat`), with `_get_format_params`' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsxElem {
    /// `int8`: ebits 0, mbits 8, emax 0, max 127/64 (MXINT8: `k / 64`, `|k| <= 127`).
    Int8,
    /// `fp8_e4m3`: ebits 4, mbits 5, emax 8, max 448.
    E4M3,
    /// `fp8_e5m2`: ebits 5, mbits 4, emax 15, max 57344.
    E5M2,
    /// `fp6_e3m2`: ebits 3, mbits 4, emax 4, max 28.
    E3M2,
    /// `fp6_e2m3`: ebits 2, mbits 5, emax 2, max 7.5.
    E2M3,
    /// `fp4_e2m1`: ebits 2, mbits 3, emax 2, max 6.
    E2M1,
}

impl MsxElem {
    /// Every format, in the reference file's order.
    pub const ALL: [MsxElem; 6] = [
        MsxElem::Int8,
        MsxElem::E4M3,
        MsxElem::E5M2,
        MsxElem::E3M2,
        MsxElem::E2M3,
        MsxElem::E2M1,
    ];

    /// microxcaling's name (`int8`, `fp8_e4m3`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            MsxElem::Int8 => "int8",
            MsxElem::E4M3 => "fp8_e4m3",
            MsxElem::E5M2 => "fp8_e5m2",
            MsxElem::E3M2 => "fp6_e3m2",
            MsxElem::E2M3 => "fp6_e2m3",
            MsxElem::E2M1 => "fp4_e2m1",
        }
    }

    /// `(ebits, mbits, emax, max_norm)`; `mbits` counts the sign and the implicit bit.
    const fn params(self) -> (i32, i32, i32, f32) {
        match self {
            MsxElem::Int8 => (0, 8, 0, 127.0 / 64.0),
            MsxElem::E4M3 => (4, 5, 8, 448.0),
            MsxElem::E5M2 => (5, 4, 15, 57344.0),
            MsxElem::E3M2 => (3, 4, 4, 28.0),
            MsxElem::E2M3 => (2, 5, 2, 7.5),
            MsxElem::E2M1 => (2, 3, 2, 6.0),
        }
    }
}

/// microxcaling's `_round_mantissa` rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsxRound {
    /// `"nearest"`: `sign(A) * floor(|A| + 0.5)`, ties away from zero (with `|A| + 0.5`
    /// rounded in `f32`: `0.49999997` goes to 1).
    Nearest,
    /// `"even"`: `sign(A) * (floor(|A| + 0.5) - ((|A| - 0.5) % 2 == 0))`, ties to even.
    Even,
}

impl MsxRound {
    /// microxcaling's name.
    pub const fn name(self) -> &'static str {
        match self {
            MsxRound::Nearest => "nearest",
            MsxRound::Even => "even",
        }
    }
}

/// The shared exponent microxcaling uses for a block with this amax (8-bit scale):
/// `floor(log2(amax + 2^-126 * (amax == 0))) - emax`, NaN if above 127 (so `+inf` and NaN
/// blocks are NaN), raised to -127 if below. The scale is `2^shared_exp`; the E8M0 code is
/// `shared_exp + 127` (255 for NaN).
pub fn msx_shared_exp(amax: f32, elem: MsxElem) -> f32 {
    let (_, _, emax, _) = elem.params();
    let a = amax + if amax == 0.0 { pow2f(-126) } else { 0.0 };
    let se = log2_f32(a).floor() - emax as f32;
    if se > 127.0 {
        f32::NAN
    } else if se < -127.0 {
        -127.0
    } else {
        se
    }
}

/// `_round_mantissa(A, bits, round, clamp=False)`.
#[inline]
fn msx_round(a: f32, round: MsxRound) -> f32 {
    let ab = a.abs();
    let fl = (ab + 0.5).floor();
    let s = torch_sign(a);
    match round {
        MsxRound::Nearest => tmul(s, fl),
        MsxRound::Even => {
            let m = ((ab - 0.5) % 2.0 == 0.0) as i32 as f32;
            tmul(s, fl - m)
        }
    }
}

/// microxcaling's fake-quantized value of `x` in a block with shared exponent `shared_exp`
/// ([`msx_shared_exp`]): `_quantize_mx`'s `A / 2^se`, `_quantize_elemwise_core(A, mbits,
/// ebits, max_norm, round, allow_denorm=True, saturate_normals=True)`, `* 2^se`.
///
/// The element core, with `A` the scaled value: for floats `pe = max(floor(log2(|A| +
/// (A == 0))), 2 - 2^(ebits-1))`, `out = A / 2^pe * 2^(mbits-2)`; for int8 `out = A * 64`;
/// then `out` rounded ([`MsxRound`]), `out / 2^(mbits-2) * 2^pe` (`/ 64`), clamped to
/// ± max_norm, and `±inf` where `A` is `±inf`. `-0.0` comes back as `+0.0` (`sign(-0) = 0`);
/// a negative value that rounds to zero comes back as `-0.0`.
pub fn msx_quantize(x: f32, shared_exp: f32, elem: MsxElem, round: MsxRound) -> f32 {
    let (ebits, mbits, _, max_norm) = elem.params();
    let scale = pow2_of_f32(shared_exp);
    let a = tdiv(x, scale);
    let lift = pow2f(mbits - 2);
    let pe = if ebits != 0 {
        let z = if a == 0.0 { 1.0 } else { 0.0 };
        let pe = log2_f32(a.abs() + z).floor();
        let min_exp = (2 - (1 << (ebits - 1))) as f32;
        Some(if pe < min_exp { min_exp } else { pe })
    } else {
        None
    };
    let mut out = match pe {
        Some(pe) => tmul(tdiv(a, pow2_of_f32(pe)), lift),
        None => tmul(a, lift),
    };
    out = msx_round(out, round);
    out = match pe {
        Some(pe) => tmul(tdiv(out, lift), pow2_of_f32(pe)),
        None => tdiv(out, lift),
    };
    out = clamp_keep_nan(out, -max_norm, max_norm);
    if a == f32::INFINITY {
        out = f32::INFINITY;
    } else if a == f32::NEG_INFINITY {
        out = f32::NEG_INFINITY;
    }
    tmul(out, scale)
}

/// The E8M0 code of a microxcaling shared exponent: `se + 127`, 255 for NaN.
pub fn msx_scale_code(shared_exp: f32) -> u8 {
    if shared_exp.is_nan() {
        255
    } else {
        (shared_exp as i32 + 127) as u8
    }
}

/// MXINT8 (microxcaling `int8`): the integer `k` (`|k| <= 127`, value `k / 64 * 2^se`) of `x`
/// in a block with shared exponent `shared_exp`: `k = clamp(round(x / 2^se * 64), -127, 127)`
/// with [`MsxRound`]. A NaN element or block gives 0 (the block's NaN scale carries it).
pub fn mxint8_code(x: f32, shared_exp: f32, round: MsxRound) -> i8 {
    let a = tdiv(x, pow2_of_f32(shared_exp));
    let k = msx_round(tmul(a, 64.0), round);
    if k.is_nan() {
        0
    } else {
        k.clamp(-127.0, 127.0) as i8
    }
}

/// MXINT8 dequantization: `(k / 64) * 2^se` in `f32` (NaN for a NaN shared exponent). Equal to
/// [`msx_quantize`] for `Int8` in value; the sign of a zero can differ (microxcaling keeps
/// `-0.0` for a negative value rounded to zero).
pub fn mxint8_dequant(k: i8, shared_exp: f32) -> f32 {
    tmul(f32::from(k) / 64.0, pow2_of_f32(shared_exp))
}
