//! The per-block arithmetic of OCP Microscaling (MX) and NVFP4, exactly as the references
//! compute it: torchao 0.18.0 (`torchao.prototype.mx_formats`, CPU eager, torch 2.11) and
//! Microsoft's microxcaling (commit 7bc4195, `mx.mx_ops._quantize_mx`, pure-PyTorch path).
//!
//! Pure scalar functions, no allocation: a block quantizer calls [`block_amax`] on a block,
//! builds an [`MxBlock`] / [`Nvfp4Block`] from it (the block's scale code and the `f32`
//! operand torchao applies to every element), and then asks it for each element's code.
//! Every function is checked bit for bit (NaN payloads included) against every key of
//! `mx_refs.npz` (see `tests/all/mx.rs`).
//!
//! # Conventions shared by every rule
//!
//! - All arithmetic is `f32`, one IEEE operation at a time, in the order the Python code writes
//!   it. Where a NaN operand decides the result's bits, the torch CPU rules are applied
//!   explicitly ([`tmul`], [`tdiv`]): a product of two NaNs is the *second* operand's NaN (as
//!   observed in the references: the compiler commutes torch's vectorised multiply), a quotient
//!   of two NaNs the first's, and an invalid operation on non-NaN operands gives x86's default
//!   NaN `0xffc00000`. So results do not depend on the host's NaN rules.
//! - `torch.clamp` keeps a NaN (with its payload) and clamps infinities ([`clamp_keep_nan`]).
//! - `torch.log2` on `f32` is modelled as correctly rounded ([`log2_f32`]); its `floor`/`ceil`
//!   then see `k` for values within an `f32` rounding of `2^k` (e.g. `log2(7.9999995) == 3`).
//! - Element casts (`f32` to FP8/FP6/FP4) round to nearest-even from the `f32` value through
//!   this crate's codec; FP6/FP4 saturate (torchao's `_f32_to_floatx_unpacked`), FP8 are clamped
//!   to ± max before the cast. A NaN reaching an FP6/FP4 cast gets torchao's bit-arithmetic code
//!   ([`floatx_nan_code`]), which depends on the NaN's payload.

use crate::format::{FloatFormat, E2M1, E2M3, E3M2, E4M3, E5M2, E8M0};

// ---------------------------------------------------------------------------------------------
// f32 helpers with torch's NaN behaviour
// ---------------------------------------------------------------------------------------------

/// x86's default NaN, the result of an invalid operation on non-NaN operands.
const X86_DEFAULT_NAN: u32 = 0xffc0_0000;

#[inline]
fn quiet(x: f32) -> f32 {
    f32::from_bits(x.to_bits() | 0x0040_0000)
}

/// `a * b` as torch's CPU multiply gives it: a product of two NaNs is the second's NaN.
#[inline]
pub fn tmul(a: f32, b: f32) -> f32 {
    if b.is_nan() {
        quiet(b)
    } else if a.is_nan() {
        quiet(a)
    } else {
        let r = a * b;
        if r.is_nan() {
            f32::from_bits(X86_DEFAULT_NAN)
        } else {
            r
        }
    }
}

/// `a / b` as torch's CPU divide gives it: a quotient of two NaNs is the first's NaN.
#[inline]
pub fn tdiv(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        quiet(a)
    } else if b.is_nan() {
        quiet(b)
    } else {
        let r = a / b;
        if r.is_nan() {
            f32::from_bits(X86_DEFAULT_NAN)
        } else {
            r
        }
    }
}

/// `torch.clamp(x, lo, hi)`: NaN stays (payload and sign kept), infinities clamp.
#[inline]
pub fn clamp_keep_nan(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// `2^e` as an `f32`, exact: subnormal down to `2^-149`, 0 below, infinity above `2^127`.
#[inline]
pub fn pow2f(e: i32) -> f32 {
    if e > 127 {
        f32::INFINITY
    } else if e >= -126 {
        f32::from_bits(((e + 127) as u32) << 23)
    } else if e >= -149 {
        f32::from_bits(1u32 << (e + 149))
    } else {
        0.0
    }
}

/// `torch.pow(2, e)` for an integer-valued (or infinite, or NaN) `f32` exponent.
#[inline]
fn pow2_of_f32(e: f32) -> f32 {
    if e.is_nan() {
        quiet(e)
    } else if e == f32::INFINITY {
        f32::INFINITY
    } else if e == f32::NEG_INFINITY {
        0.0
    } else {
        pow2f(e.clamp(-1000.0, 1000.0) as i32)
    }
}

/// `torch.log2` of an `f32`, modelled as correctly rounded to `f32` (computed in `f64`;
/// torch's Sleef `log2f` adds `e + log2(m)` in double-float, which rounds the same way where
/// the result sits next to an integer, the only place `floor`/`ceil` look).
#[inline]
pub fn log2_f32(x: f32) -> f32 {
    (f64::from(x)).log2() as f32
}

/// `torch.sign` on `f32`: `(0 < x) - (x < 0)`, so `+0.0` for both zeros and for NaN.
#[inline]
fn torch_sign(x: f32) -> f32 {
    (0.0 < x) as i32 as f32 - (x < 0.0) as i32 as f32
}

/// A block's absolute maximum as `torch.amax(torch.abs(x), -1)` gives it: NaN if the block
/// holds one (the first NaN, sign cleared by `abs`), `+inf` for an infinity, `0.0` for an
/// all-zero (or empty) block.
#[inline]
pub fn block_amax(x: &[f32]) -> f32 {
    let mut m = 0.0f32;
    for &v in x {
        let a = v.abs();
        if a.is_nan() {
            return a;
        }
        if a > m {
            m = a;
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Element formats (torchao)
// ---------------------------------------------------------------------------------------------

/// An MX element format of torchao (`SUPPORTED_ELEM_DTYPES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// MXFP8 `float8_e4m3fn`: max 448, `F8E4M3_MAX_POW2 = 8`.
    E4M3,
    /// MXFP8 `float8_e5m2`: max 57344, `F8E5M2_MAX_POW2 = 15`.
    E5M2,
    /// MXFP6 `fp6_e2m3`: max 7.5, `F6_E2M3_MAX_POW2 = 2`.
    E2M3,
    /// MXFP6 `fp6_e3m2`: max 28, `F6_E3M2_MAX_POW2 = 4`.
    E3M2,
    /// MXFP4 `float4_e2m1fn_x2`: max 6, `F4_E2M1_MAX_POW2 = 2`.
    E2M1,
}

impl Elem {
    /// Every element format, in the reference file's order.
    pub const ALL: [Elem; 5] = [Elem::E4M3, Elem::E5M2, Elem::E2M3, Elem::E3M2, Elem::E2M1];

    /// The short name used in the reference keys (`e4m3`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Elem::E4M3 => "e4m3",
            Elem::E5M2 => "e5m2",
            Elem::E2M3 => "e2m3",
            Elem::E3M2 => "e3m2",
            Elem::E2M1 => "e2m1",
        }
    }

    /// Largest finite value (`max_pos` in `to_mx`).
    pub const fn max(self) -> f32 {
        match self {
            Elem::E4M3 => 448.0,
            Elem::E5M2 => 57344.0,
            Elem::E2M3 => 7.5,
            Elem::E3M2 => 28.0,
            Elem::E2M1 => 6.0,
        }
    }

    /// Exponent of the largest power of two of the format (`target_max_pow2` in `to_mx`).
    pub const fn max_pow2(self) -> i32 {
        match self {
            Elem::E4M3 => 8,
            Elem::E5M2 => 15,
            Elem::E2M3 => 2,
            Elem::E3M2 => 4,
            Elem::E2M1 => 2,
        }
    }

    /// Exponent bits.
    pub const fn exp_bits(self) -> u32 {
        match self {
            Elem::E4M3 => 4,
            Elem::E5M2 => 5,
            Elem::E2M3 => 2,
            Elem::E3M2 => 3,
            Elem::E2M1 => 2,
        }
    }

    /// Mantissa bits (`mbits` in `to_mx`, used by the EVEN rule).
    pub const fn man_bits(self) -> u32 {
        match self {
            Elem::E4M3 => 3,
            Elem::E5M2 => 2,
            Elem::E2M3 => 3,
            Elem::E3M2 => 2,
            Elem::E2M1 => 1,
        }
    }

    /// Code width in bits (8, 6 or 4).
    pub const fn bits(self) -> u32 {
        1 + self.exp_bits() + self.man_bits()
    }

    const fn is_fp8(self) -> bool {
        matches!(self, Elem::E4M3 | Elem::E5M2)
    }

    /// The element code torchao stores for an already scaled (and, for FP8, clamped) `f32`.
    ///
    /// FP8: `data_lp.to(torch.float8_e4m3fn / float8_e5m2)` (c10's `fp8*_from_fp32_value`):
    /// nearest-even from the `f32` value, NaN to `0x7f` with the NaN's sign (for E5M2 too,
    /// where the crate's own NaN code is `0x7e`). The callers clamp
    /// to ± max first, so overflow never reaches the cast. FP6/FP4:
    /// `f32_to_f6_e2m3_unpacked` / `f32_to_f6_e3m2_unpacked` / `f32_to_f4_unpacked`
    /// (`_f32_to_floatx_unpacked`): nearest-even, saturating to ± max (infinities too), f32
    /// subnormals rounded like any value; a NaN gets [`floatx_nan_code`].
    #[inline]
    pub fn encode(self, x: f32) -> u8 {
        // The crate's default encode is nearest-even; E2M3/E3M2/E2M1 are finite-only and
        // saturate natively, and the FP8 inputs are already clamped, so it equals the
        // saturating encode on every input torchao can produce (see the unit tests).
        match self {
            Elem::E4M3 => E4M3::encode_f32(x),
            // c10 writes every NaN as 0x7f (with its sign); the crate's E5M2 NaN is 0x7e.
            Elem::E5M2 if x.is_nan() => 0x7f | ((x.to_bits() >> 24) as u8 & 0x80),
            Elem::E5M2 => E5M2::encode_f32(x),
            Elem::E2M3 if x.is_nan() => floatx_nan_code(x, 2, 3),
            Elem::E3M2 if x.is_nan() => floatx_nan_code(x, 3, 2),
            Elem::E2M1 if x.is_nan() => floatx_nan_code(x, 2, 1),
            Elem::E2M3 => E2M3::encode_f32(x),
            Elem::E3M2 => E3M2::encode_f32(x),
            Elem::E2M1 => E2M1::encode_f32(x),
        }
    }

    /// The `f32` value of an element code, as `to_dtype` reads it (`.to(float32)` for FP8,
    /// `f6_*_unpacked_to_f32` / `f4_unpacked_to_f32` for FP6/FP4). An E4M3 NaN code reads as
    /// `0x7ff00000` with its sign, as c10's `fp8e4m3fn_to_fp32_value` gives it.
    #[inline]
    pub fn decode(self, code: u8) -> f32 {
        match self {
            Elem::E4M3 => E4M3::decode_f32(code),
            Elem::E5M2 => E5M2::decode_f32(code),
            Elem::E2M3 => E2M3::decode_f32(code & 0x3f),
            Elem::E3M2 => E3M2::decode_f32(code & 0x3f),
            Elem::E2M1 => E2M1::decode_f32(code & 0x0f),
        }
    }
}

/// The code torchao's `_f32_to_floatx_unpacked` gives a NaN: it takes the "normal" branch
/// (both range comparisons are false), so the code is
/// `((bits(|x|) + ((bias - 127) << 23) + (2^(22 - mbits) - 1) + mant_odd) >> (23 - mbits)) as u8`
/// with the sign bit put back: `0x03` for the default NaN in E2M1, `0x0c` in E2M3, `0x0e` in
/// E3M2; `0x04` in E2M1 for c10's E4M3 NaN `0x7ff00000`.
#[inline]
pub fn floatx_nan_code(x: f32, ebits: u32, mbits: u32) -> u8 {
    let b = x.to_bits();
    let sign = b & 0x8000_0000;
    let a = (b ^ sign) as i32;
    let bias = (1i32 << (ebits - 1)) - 1;
    let mant_odd = (a >> (23 - mbits)) & 1;
    let n = a
        .wrapping_add(((bias - 127) << 23) + ((1i32 << (23 - mbits - 1)) - 1))
        .wrapping_add(mant_odd);
    let code = (n >> (23 - mbits)) as u8;
    let sign_lp = ((sign as i32) >> (31 - mbits - ebits)) as u8 & (1u8 << (ebits + mbits));
    code | sign_lp
}

mod msx;
mod nvfp4;
mod torchao;

pub use msx::*;
pub use nvfp4::*;
pub use torchao::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// torchao's `_f32_to_floatx_unpacked`, transcribed branch by branch.
    fn torchao_floatx(x: f32, ebits: u32, mbits: u32) -> u8 {
        let exp_bias = (1i64 << (ebits - 1)) - 1;
        let max_int = (1u8 << (ebits + mbits)) - 1;
        let max_normal = 2f64.powi(((1 << ebits) - 1 - exp_bias) as i32)
            * (((1u64 << (mbits + 1)) - 1) as f64 / (1u64 << mbits) as f64);
        let min_normal = 2f64.powi((1 - exp_bias) as i32);
        let denorm_exp = (127 - exp_bias) + (23 - mbits as i64) + 1;
        let denorm_mask_int = (denorm_exp << 23) as u32;
        let b = x.to_bits();
        let sign = b & 0x8000_0000;
        let a = f32::from_bits(b ^ sign);
        let code = if f64::from(a) >= max_normal {
            max_int
        } else if f64::from(a) < min_normal {
            ((a + f32::from_bits(denorm_mask_int))
                .to_bits()
                .wrapping_sub(denorm_mask_int)) as u8
        } else {
            return floatx_nan_code(x, ebits, mbits); // the normal branch is the same formula
        };
        code | (((sign as i32) >> (31 - mbits - ebits)) as u8 & (1 << (ebits + mbits)))
    }

    /// c10's `fp8e4m3fn_from_fp32_value` / `fp8e5m2_from_fp32_value`.
    fn c10_fp8(x: f32, e4m3: bool) -> u8 {
        let b = x.to_bits();
        let sign = b & 0x8000_0000;
        let f = b ^ sign;
        let (fp8_max, denorm_mask, min_normal, bias, m) = if e4m3 {
            (1087u32 << 20, 141u32 << 23, 121u32 << 23, 7u32, 3u32)
        } else {
            (143u32 << 23, 134u32 << 23, 113u32 << 23, 15u32, 2u32)
        };
        let r = if f >= fp8_max {
            if e4m3 || f > 0x7f80_0000 {
                0x7f
            } else {
                0x7c
            }
        } else if f < min_normal {
            (f32::from_bits(f) + f32::from_bits(denorm_mask))
                .to_bits()
                .wrapping_sub(denorm_mask) as u8
        } else {
            let mant_odd = (f >> (23 - m)) & 1;
            let v = f
                .wrapping_add((bias.wrapping_sub(127)) << 23)
                .wrapping_add((1 << (23 - m - 1)) - 1)
                .wrapping_add(mant_odd);
            (v >> (23 - m)) as u8
        };
        r | (sign >> 24) as u8
    }

    fn sweep() -> impl Iterator<Item = f32> {
        (0..=u32::MAX / 1021)
            .map(|i| f32::from_bits(i.wrapping_mul(1021)))
            .chain([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN])
            .chain([0x7ff0_0000u32, 0xffc0_0000, 0x7f80_0001].map(f32::from_bits))
    }

    #[test]
    fn fp6_fp4_encode_is_torchao_floatx() {
        for x in sweep() {
            assert_eq!(Elem::E2M1.encode(x), torchao_floatx(x, 2, 1), "e2m1 {:#x}", x.to_bits());
            assert_eq!(Elem::E2M3.encode(x), torchao_floatx(x, 2, 3), "e2m3 {:#x}", x.to_bits());
            assert_eq!(Elem::E3M2.encode(x), torchao_floatx(x, 3, 2), "e3m2 {:#x}", x.to_bits());
        }
        assert_eq!(Elem::E2M1.encode(f32::NAN), 0x03);
        assert_eq!(Elem::E2M1.encode(f32::from_bits(0x7ff0_0000)), 0x04);
        assert_eq!(Elem::E2M3.encode(f32::NAN), 0x0c);
        assert_eq!(Elem::E3M2.encode(f32::NAN), 0x0e);
    }

    #[test]
    fn fp8_encode_is_c10_within_the_clamp() {
        for x in sweep() {
            for (e, e4m3) in [(Elem::E4M3, true), (Elem::E5M2, false)] {
                let c = clamp_keep_nan(x, -e.max(), e.max());
                assert_eq!(e.encode(c), c10_fp8(c, e4m3), "{e:?} {:#x}", x.to_bits());
            }
        }
    }

    #[test]
    fn decode_nan_and_scale_values() {
        assert_eq!(Elem::E4M3.decode(0x7f).to_bits(), 0x7ff0_0000);
        assert_eq!(Elem::E4M3.decode(0xff).to_bits(), 0xfff0_0000);
        assert_eq!(mx_scale_value(255).to_bits(), 0x7fc0_0000);
        assert_eq!(mx_scale_value(0).to_bits(), 0x0040_0000); // 2^-127
        for c in 1..255u8 {
            assert_eq!(mx_scale_value(c), pow2f(i32::from(c) - 127));
        }
    }

    #[test]
    fn scale_rules_by_hand() {
        // 6.0 = 1.5 * 2^2 in E2M1: FLOOR 2^0, CEIL 2^1, EVEN keeps 1.5 (one mantissa bit):
        // 2^0, RCEIL 6 / 6 = 1: 2^0. 7.0 = 1.75 * 2^2: EVEN rounds it up to 2^3, so 2^1.
        assert_eq!(mx_scale_code(6.0, Elem::E2M1, ScaleRule::Floor), 127);
        assert_eq!(mx_scale_code(6.0, Elem::E2M1, ScaleRule::Ceil), 128);
        assert_eq!(mx_scale_code(6.0, Elem::E2M1, ScaleRule::Even), 127);
        assert_eq!(mx_scale_code(7.0, Elem::E2M1, ScaleRule::Even), 128);
        assert_eq!(mx_scale_code(6.0, Elem::E2M1, ScaleRule::RCeil), 127);
        assert_eq!(mx_scale_code(6.0001, Elem::E2M1, ScaleRule::RCeil), 128);
        for r in ScaleRule::ALL {
            assert_eq!(mx_scale_code(f32::NAN, Elem::E4M3, r), 255);
            assert_eq!(mx_scale_code(0.0, Elem::E4M3, r), 0);
        }
        assert_eq!(
            mx_scale_code(f32::INFINITY, Elem::E4M3, ScaleRule::Floor),
            128 - 8 + 127
        );
        assert_eq!(mx_scale_code(f32::INFINITY, Elem::E4M3, ScaleRule::RCeil), 254);
        // A zero-scale block divides by 2^-126 but dequantizes with 2^-127: halves the values.
        let b = MxBlock::new(pow2f(-130), Elem::E4M3, ScaleRule::Floor);
        assert_eq!(b.scale_code, 0);
        assert_eq!(mx_dequant(b.elem_code(pow2f(-130)), 0, Elem::E4M3), pow2f(-131));
        // RCEIL code 0 multiplies by 1.0.
        let b = MxBlock::new(pow2f(-140), Elem::E4M3, ScaleRule::RCeil);
        assert_eq!((b.scale_code, b.scaled(3.0)), (0, 3.0));
    }

    #[test]
    fn msx_rounding_by_hand() {
        // E2M1 in a block of shared exponent 0: 2.5 is a tie between 2 and 3.
        assert_eq!(msx_quantize(2.5, 0.0, MsxElem::E2M1, MsxRound::Nearest), 3.0);
        assert_eq!(msx_quantize(2.5, 0.0, MsxElem::E2M1, MsxRound::Even), 2.0);
        assert_eq!(msx_quantize(-0.0, 0.0, MsxElem::E2M1, MsxRound::Even).to_bits(), 0);
        assert_eq!(
            msx_quantize(-0.1, 0.0, MsxElem::E2M1, MsxRound::Even).to_bits(),
            0x8000_0000
        );
        assert_eq!(mxint8_code(1.0, 0.0, MsxRound::Even), 64);
        assert_eq!(mxint8_code(100.0, 0.0, MsxRound::Even), 127);
        assert_eq!(mxint8_code(-1.5 / 64.0, 0.0, MsxRound::Nearest), -2);
        assert_eq!(mxint8_code(-1.5 / 64.0, 0.0, MsxRound::Even), -2);
        assert_eq!(mxint8_code(2.5 / 64.0, 0.0, MsxRound::Even), 2);
        assert_eq!(
            msx_shared_exp(f32::INFINITY, MsxElem::Int8).to_bits(),
            f32::NAN.to_bits()
        );
        assert_eq!(msx_shared_exp(0.0, MsxElem::Int8), -126.0);
        assert_eq!(msx_shared_exp(0.0, MsxElem::E4M3), -127.0);
    }

    #[test]
    fn nvfp4_by_hand() {
        // amax 6: block scale 1.0 (E4M3 0x38); zero block: the 2^-6 floor (0x08).
        assert_eq!(nvfp4_block_scale_code(6.0, None), 0x38);
        assert_eq!(nvfp4_block_scale_code(0.0, None), 0x08);
        assert_eq!(nvfp4_block_scale_code(f32::NAN, None), 0x7f);
        assert_eq!(nvfp4_elem_code(-6.0, 0x38, None), 0x0f);
        assert_eq!(nvfp4_dequant(0x0f, 0x38, None), -6.0);
        let t = nvfp4_tensor_scale(2688.0);
        assert_eq!(t, 1.0);
        assert_eq!(nvfp4_block_scale_code(2688.0, Some(t)), 0x7e); // 448
    }
}
