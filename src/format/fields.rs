//! The bit-field view of a code, like an IEEE-754 converter shows it.

use core::fmt;

use super::layout::{Layout, Specials};

/// What kind of value a code holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// ±0.
    Zero,
    /// A subnormal: biased exponent zero, no implicit leading one.
    Subnormal,
    /// A normal number.
    Normal,
    /// ±infinity.
    Infinite,
    /// Not a number.
    Nan,
}

/// A code split into its fields, with its class and value.
///
/// The value of a normal code is `(-1)^sign × 2^(exponent - bias) × (1 + mantissa / 2^man_bits)`;
/// of a subnormal one `(-1)^sign × 2^(1 - bias) × (mantissa / 2^man_bits)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fields {
    /// The sign bit (0 for an unsigned format).
    pub sign: u8,
    /// The biased exponent field.
    pub exponent: u32,
    /// The mantissa field.
    pub mantissa: u64,
    /// The kind of value.
    pub class: Class,
    /// The exact value (NaN for a NaN code).
    pub value: f64,
    /// The layout, for printing.
    pub layout: Layout,
}

impl Fields {
    pub(crate) fn of(l: &Layout, code: u64) -> Self {
        let sign = (code & l.sign_mask() != 0) as u8;
        let mag = code & l.magnitude_mask();
        let exponent = (mag >> l.man_bits) as u32;
        let mantissa = mag & l.man_mask();
        let class = if l.is_nan_code(code) {
            Class::Nan
        } else if Some(mag) == l.inf_magnitude_code() {
            Class::Infinite
        } else if l.specials == Specials::PowerOfTwo {
            Class::Normal
        } else if mag == 0 {
            Class::Zero
        } else if exponent == 0 {
            Class::Subnormal
        } else {
            Class::Normal
        };
        Self {
            sign,
            exponent,
            mantissa,
            class,
            value: super::codec::decode_f64(l, code),
            layout: *l,
        }
    }

    /// The unbiased exponent, `exponent - bias` (`1 - bias` for subnormals and zero).
    pub fn unbiased_exponent(&self) -> i32 {
        match self.class {
            Class::Zero | Class::Subnormal => self.layout.min_exp(),
            _ => self.exponent as i32 - self.layout.bias,
        }
    }
}

/// `sign exponent mantissa = formula = value`, e.g.
/// `0 0101 001 = (-1)^0 × 2^(5-7) × (1 + 1/8) = 0.3125`.
impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.layout;
        if l.is_signed() {
            write!(f, "{} ", self.sign)?;
        }
        write!(f, "{:0w$b}", self.exponent, w = l.exp_bits as usize)?;
        if l.man_bits > 0 {
            write!(f, " {:0w$b}", self.mantissa, w = l.man_bits as usize)?;
        }
        let den = 1u64 << l.man_bits;
        let s = self.sign;
        match self.class {
            Class::Nan => write!(f, " = NaN"),
            Class::Infinite => write!(f, " = {}inf", if s == 1 { "-" } else { "+" }),
            Class::Zero => write!(f, " = {}0", if s == 1 { "-" } else { "" }),
            Class::Subnormal => write!(
                f,
                " = (-1)^{s} × 2^(1-{}) × ({}/{den}) = {}",
                l.bias, self.mantissa, self.value
            ),
            Class::Normal if l.man_bits == 0 => {
                write!(f, " = 2^({}-{}) = {:e}", self.exponent, l.bias, self.value)
            }
            Class::Normal => write!(
                f,
                " = (-1)^{s} × 2^({}-{}) × (1 + {}/{den}) = {}",
                self.exponent, l.bias, self.mantissa, self.value
            ),
        }
    }
}
