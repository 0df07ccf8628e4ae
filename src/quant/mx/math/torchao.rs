//! MX as torchao's `to_mx` / `to_dtype` compute it.

use super::*;

/// torchao's `ScaleCalculationMode`: how a block's E8M0 scale comes from its amax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleRule {
    /// OCP v1.0: `2^(floor(log2 amax) - max_pow2)`, from the `f32` exponent field.
    Floor,
    /// `2^(ceil(log2 amax) - max_pow2)`: the exponent field plus one if the mantissa is
    /// nonzero.
    Ceil,
    /// FLOOR of `amax` first rounded to `man_bits` mantissa bits (half up, by adding
    /// `2^(22 - man_bits)` to its bits and masking the mantissa off).
    Even,
    /// NVIDIA's rule: `2^ceil(log2(amax / max))`; elements are multiplied by the reciprocal.
    RCeil,
}

impl ScaleRule {
    /// Every rule, in the reference file's order.
    pub const ALL: [ScaleRule; 4] = [ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::Even, ScaleRule::RCeil];

    /// The name used in the reference keys (`floor`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ScaleRule::Floor => "floor",
            ScaleRule::Ceil => "ceil",
            ScaleRule::Even => "even",
            ScaleRule::RCeil => "rceil",
        }
    }
}

/// The E8M0 scale code (biased exponent) of a block whose amax is `amax` (`>= 0` or NaN, as
/// [`block_amax`] gives it), as torchao's `to_mx` computes it.
///
/// FLOOR / CEIL / EVEN (`to_mx`): with `b = bits(amax)` (EVEN first sets
/// `b = (b + 2^(22 - man_bits)) & 0xff800000`),
/// `e = ((b >> 23) & 0xff) - 127` (`+ 1` for CEIL when `b & 0x7fffff != 0`),
/// `code = clamp(e - max_pow2, -127, 128) + 127`; a NaN amax gives 255. So a zero or
/// subnormal amax gives code 0, and `+inf` gives `128 - max_pow2 + 127` (not 255: only NaN does).
///
/// RCEIL (`_to_mx_rceil`, eager fallback): `d = amax / max` (`f32`); NaN → 255, `+inf` → 254,
/// otherwise `clamp(ceil(log2(d)), -127, 127) + 127` (`d == 0` → 0).
pub fn mx_scale_code(amax: f32, elem: Elem, rule: ScaleRule) -> u8 {
    match rule {
        ScaleRule::RCeil => rceil_code(tdiv(amax, elem.max())),
        _ => {
            if amax.is_nan() {
                return 255;
            }
            let mut b = amax.to_bits();
            if rule == ScaleRule::Even {
                b = b.wrapping_add(1 << (23 - elem.man_bits() - 1)) & 0xff80_0000;
            }
            let mut e = ((b >> 23) & 0xff) as i32 - 127;
            if rule == ScaleRule::Ceil && b & 0x7f_ffff != 0 {
                e += 1;
            }
            ((e - elem.max_pow2()).clamp(-127, 128) + 127) as u8
        }
    }
}

/// `_to_mx_rceil`'s exponent of `descale = amax / max_pos`.
fn rceil_code(descale: f32) -> u8 {
    if descale.is_nan() {
        255
    } else if descale.is_infinite() {
        254
    } else {
        let c = log2_f32(descale).ceil().clamp(-127.0, 127.0);
        (c as i32 + 127) as u8
    }
}

/// The `f32` operand torchao applies to every element of an MX block.
#[derive(Clone, Copy, Debug, PartialEq)]
enum MxOp {
    /// FLOOR / CEIL / EVEN: `x / max(bits_to_f32(code << 23), 2^-126)`, then (FP8 only)
    /// clamp to ± max.
    Div(f32),
    /// RCEIL: `x * rcp`, then clamp to ± max.
    Mul(f32),
}

/// One MX block prepared for quantizing its elements: the scale code and the `f32` operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxBlock {
    /// The E8M0 scale code ([`mx_scale_code`]).
    pub scale_code: u8,
    elem: Elem,
    op: MxOp,
}

impl MxBlock {
    /// The block whose amax is `amax` ([`block_amax`]).
    pub fn new(amax: f32, elem: Elem, rule: ScaleRule) -> Self {
        let scale_code = mx_scale_code(amax, elem, rule);
        let descale = tdiv(amax, elem.max());
        Self::with_code(scale_code, elem, rule, descale)
    }

    /// The block with a given scale code. Exact for every code; for an RCEIL NaN block
    /// (code 255) the elements become the default quiet NaN `0x7fc00000` (torchao multiplies by
    /// `amax / max`, so a NaN input with another payload would give other FP6/FP4 codes: use
    /// [`MxBlock::new`] for those).
    pub fn from_code(scale_code: u8, elem: Elem, rule: ScaleRule) -> Self {
        Self::with_code(scale_code, elem, rule, f32::NAN)
    }

    fn with_code(scale_code: u8, elem: Elem, rule: ScaleRule, descale: f32) -> Self {
        let op = match rule {
            // `rcp_fp32`: NaN case -> descale, inf case (254) -> 2^-127, 0 -> 1.0 (!), else
            // exp2(127 - code).
            ScaleRule::RCeil => MxOp::Mul(match scale_code {
                255 => descale,
                254 => pow2f(-127),
                0 => 1.0,
                c => pow2f(127 - i32::from(c)),
            }),
            // `scale_fp32 = (code << 23).view(float32)`, clamped to >= F32_MIN_NORMAL: code 0
            // divides by 2^-126 (not 2^-127), code 255 by +inf.
            _ => MxOp::Div(f32::from_bits(u32::from(scale_code) << 23).max(pow2f(-126))),
        };
        Self { scale_code, elem, op }
    }

    /// The element scaled as torchao scales it before the cast: `x / s` (clamped to ± max for
    /// FP8) or `clamp(x * rcp, -max, max)` for RCEIL.
    #[inline]
    pub fn scaled(&self, x: f32) -> f32 {
        let m = self.elem.max();
        match self.op {
            MxOp::Div(s) => {
                let d = tdiv(x, s);
                if self.elem.is_fp8() {
                    clamp_keep_nan(d, -m, m)
                } else {
                    d
                }
            }
            MxOp::Mul(r) => clamp_keep_nan(tmul(x, r), -m, m),
        }
    }

    /// The multiplier `m` with [`scaled`](Self::scaled)`(x) == clamp(x * m, -max, max)`
    /// for every `x` that is not NaN (FP6/FP4 casts saturate, so clamping first changes
    /// nothing): `1 / s` for a division by a power of two in `[2^-126, 2^127]` (exact, and both
    /// round the same real value once), the reciprocal itself for RCEIL; `None` for a NaN
    /// block, whose elements need the NaN rules.
    #[inline]
    pub fn multiplier(&self) -> Option<f32> {
        match self.op {
            MxOp::Div(s) if s.is_finite() => Some(1.0 / s),
            MxOp::Mul(r) if !r.is_nan() => Some(r),
            _ => None,
        }
    }

    /// The element code torchao stores for `x` (right-aligned, unpacked).
    #[inline]
    pub fn elem_code(&self, x: f32) -> u8 {
        self.elem.encode(self.scaled(x))
    }
}

/// [`MxBlock::from_code`]`(scale_code, elem, rule).elem_code(x)`.
pub fn mx_elem_code(x: f32, scale_code: u8, elem: Elem, rule: ScaleRule) -> u8 {
    MxBlock::from_code(scale_code, elem, rule).elem_code(x)
}

/// The `f32` scale `to_dtype` multiplies by (`get_fp_scale`): `2^(code - 127)` (code 0 is the
/// subnormal `2^-127`), and the quiet NaN `0x7fc00000` for code 255. Equal to
/// `E8M0::decode_f32`.
#[inline]
pub fn mx_scale_value(scale_code: u8) -> f32 {
    E8M0::decode_f32(scale_code)
}

/// torchao's `to_dtype(data, scale, elem, 32, torch.float32)` for one element:
/// `elem_value(code) * get_fp_scale(scale_code)`, one `f32` multiply (a NaN scale wins).
#[inline]
pub fn mx_dequant(code: u8, scale_code: u8, elem: Elem) -> f32 {
    tmul(elem.decode(code), mx_scale_value(scale_code))
}
