//! The data that describes a float format: field widths, bias, and what the special codes mean.

/// How a format spends its special codes (infinities, NaNs, negative zero).
///
/// The names follow LLVM's and ml_dtypes' suffixes: `FN` is "finite, with NaN", `FNUZ` is
/// "finite, with NaN, unsigned zero".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Specials {
    /// IEEE 754: the all-ones exponent holds ±infinity (mantissa zero) and NaNs.
    Ieee,
    /// `FN`: no infinity; the one NaN per sign is all exponent and mantissa bits set
    /// (`S.1111.111` in E4M3). Every other code is finite.
    FiniteNan,
    /// `FNUZ`: no infinity and no negative zero; the code with only the sign bit set is the
    /// single NaN. Every other code is finite.
    FiniteNanUnsignedZero,
    /// Finite only: every code is a number. No infinity, no NaN (the OCP FP4 and FP6 formats).
    Finite,
    /// An unsigned power of two (OCP E8M0): no sign bit, no mantissa, no zero, no
    /// subnormals; the all-ones code is NaN.
    PowerOfTwo,
}

/// What a NaN input becomes in a format that has NaN codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NanRule {
    /// Every NaN becomes the format's quiet NaN, keeping the sign where the format has one
    /// (ml_dtypes' rule for bfloat16 and the float8 formats).
    Canonical,
    /// The top mantissa bits of the NaN's payload are kept, with the sign; when `quiet` is set
    /// the top mantissa bit is also set (TF32). Without it the payload is kept as it is, and a
    /// payload that would become zero gets its lowest bit set so it stays a NaN (NumPy's
    /// float16 rule).
    Payload {
        /// Set the top mantissa bit (the quiet bit) of the result.
        quiet: bool,
    },
}

/// How a rounding step chooses between the two representable neighbours of a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round to the nearest; a tie goes to the neighbour with an even mantissa (IEEE 754's
    /// default, ml_dtypes and torch).
    #[default]
    NearestEven,
    /// Round to the nearest; a tie goes away from zero (C's `roundf`).
    NearestAway,
    /// Truncate: the neighbour of smaller magnitude. Never increases `|x|`.
    TowardZero,
    /// Stochastic rounding: round away from zero with probability equal to the distance from
    /// the smaller neighbour, in units of the gap between the two. The `u32` is the random draw,
    /// supplied by the caller so that results are reproducible: the value rounds up when the
    /// discarded fraction, as a 32-bit fixed-point number, exceeds it.
    Stochastic(u32),
}

/// What happens to a finite value too large for the format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// The format's own rule: infinity where it has one, NaN for the `FN`, `FNUZ` and E8M0
    /// formats, the largest finite value for the finite-only formats. With
    /// [`Rounding::TowardZero`] a finite input never overflows (it truncates to the largest
    /// finite value), as in IEEE 754.
    #[default]
    Native,
    /// Clamp to ±the largest finite value. Infinite inputs clamp too; NaN stays NaN.
    Saturate,
}

/// Options for one encode: the rounding and the overflow policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// How to round.
    pub rounding: Rounding,
    /// What to do past the largest finite value.
    pub overflow: Overflow,
}

impl Options {
    /// Options with the given rounding and the format's own overflow rule.
    pub const fn rounding(rounding: Rounding) -> Self {
        Self {
            rounding,
            overflow: Overflow::Native,
        }
    }

    /// These options with the given overflow policy.
    pub const fn with_overflow(self, overflow: Overflow) -> Self {
        Self { overflow, ..self }
    }
}

/// The complete description of a binary floating-point layout.
///
/// A value is `(-1)^s × 2^(e - bias) × 1.m` for a normal code and
/// `(-1)^s × 2^(1 - bias) × 0.m` for a subnormal one (biased exponent zero). Every format of
/// this crate is one `Layout`; declare your own with [`Layout::new`] and implement
/// [`FloatFormat`](crate::FloatFormat) to get the whole API for it.
///
/// The fields are read through accessors; a layout is made only by [`Layout::new`] (in a
/// `const`) or [`Layout::try_new`], which check that the codec can handle it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    pub(crate) exp_bits: u32,
    pub(crate) man_bits: u32,
    pub(crate) bias: i32,
    pub(crate) specials: Specials,
    pub(crate) nan_rule: NanRule,
}

impl Layout {
    /// A layout; fails to compile when used in a `const` with a layout [`try_new`](Self::try_new)
    /// refuses (and panics at run time: use `try_new` there).
    ///
    /// ```
    /// use lowbit::format::{Layout, NanRule, Specials};
    /// // An FP7 of our own: E3M3 with bias 5, finite only.
    /// const E3M3: Layout = Layout::new(3, 3, 5, Specials::Finite, NanRule::Canonical);
    /// assert_eq!(E3M3.bits(), 7);
    /// assert_eq!(E3M3.max_finite(), 7.5); // 1.875 × 2^(7 - 5)
    /// ```
    pub const fn new(exp_bits: u32, man_bits: u32, bias: i32, specials: Specials, nan_rule: NanRule) -> Self {
        match Self::try_new(exp_bits, man_bits, bias, specials, nan_rule) {
            Ok(l) => l,
            Err(_) => panic!("unsupported layout: see Layout::try_new"),
        }
    }

    /// A layout, checked.
    ///
    /// Supported: `1 ..= 8` exponent bits and `0 ..= 23` mantissa bits, plus the IEEE binary64
    /// layout (11, 52, bias 1023), which is handled as the identity; a bias that keeps every
    /// value a normal or subnormal `f64` (`|bias| <= 1000`); a mantissa bit for conventions
    /// that reserve NaN codes in the top binade ([`Specials::Ieee`], [`Specials::FiniteNan`]);
    /// and none for [`Specials::PowerOfTwo`], which has no mantissa.
    ///
    /// ```
    /// use lowbit::format::{Layout, NanRule, Specials};
    /// assert!(Layout::try_new(3, 3, 5, Specials::Finite, NanRule::Canonical).is_ok());
    /// assert!(Layout::try_new(9, 3, 5, Specials::Finite, NanRule::Canonical).is_err());
    /// assert!(Layout::try_new(4, 3, 100_000, Specials::Finite, NanRule::Canonical).is_err());
    /// assert!(Layout::try_new(8, 2, 127, Specials::PowerOfTwo, NanRule::Canonical).is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidLayout`](super::Error::InvalidLayout) saying what is unsupported.
    pub const fn try_new(
        exp_bits: u32,
        man_bits: u32,
        bias: i32,
        specials: Specials,
        nan_rule: NanRule,
    ) -> Result<Self, super::Error> {
        use super::Error::InvalidLayout;
        let ieee64 = exp_bits == 11 && man_bits == 52;
        if ieee64 {
            if bias != 1023 || !matches!(specials, Specials::Ieee) {
                return Err(InvalidLayout("the 11/52 layout is IEEE binary64 only"));
            }
        } else if !(exp_bits >= 1 && exp_bits <= 8 && man_bits <= 23) {
            return Err(InvalidLayout("field widths: 1..=8 exponent bits, 0..=23 mantissa bits"));
        }
        if !ieee64 && (bias < -1000 || bias > 1000) {
            return Err(InvalidLayout("bias outside -1000..=1000"));
        }
        // Every value a normal or subnormal f64: the top binade below 2^1024, the smallest
        // step at least 2^-1074.
        if !ieee64 && (((1i32 << exp_bits) - 1 - bias > 1023) || (1 - bias - man_bits as i32) < -1074) {
            return Err(InvalidLayout("values outside the f64 range"));
        }
        match specials {
            Specials::Ieee | Specials::FiniteNan if man_bits == 0 => {
                return Err(InvalidLayout("this special-code convention needs a mantissa bit"))
            }
            Specials::PowerOfTwo if man_bits != 0 => {
                return Err(InvalidLayout("a power-of-two layout has no mantissa bits"))
            }
            _ => {}
        }
        // Payloads live in the IEEE top binade; the other conventions have one NaN code.
        if matches!(nan_rule, NanRule::Payload { .. }) && !matches!(specials, Specials::Ieee) {
            return Err(InvalidLayout("a NaN payload rule needs IEEE specials"));
        }
        Ok(Self {
            exp_bits,
            man_bits,
            bias,
            specials,
            nan_rule,
        })
    }

    /// Width of the exponent field.
    pub const fn exp_bits(&self) -> u32 {
        self.exp_bits
    }

    /// Width of the mantissa (trailing significand) field.
    pub const fn man_bits(&self) -> u32 {
        self.man_bits
    }

    /// Exponent bias.
    pub const fn bias(&self) -> i32 {
        self.bias
    }

    /// What the special codes mean.
    pub const fn specials(&self) -> Specials {
        self.specials
    }

    /// What a NaN input becomes.
    pub const fn nan_rule(&self) -> NanRule {
        self.nan_rule
    }

    /// Whether the code has a sign bit.
    pub const fn is_signed(&self) -> bool {
        !matches!(self.specials, Specials::PowerOfTwo)
    }

    /// Total width of a code in bits.
    pub const fn bits(&self) -> u32 {
        self.is_signed() as u32 + self.exp_bits + self.man_bits
    }

    /// The sign bit's mask, or 0 for an unsigned format.
    pub const fn sign_mask(&self) -> u64 {
        if self.is_signed() {
            1 << (self.exp_bits + self.man_bits)
        } else {
            0
        }
    }

    /// Mask of the magnitude bits (exponent and mantissa).
    pub const fn magnitude_mask(&self) -> u64 {
        (1u64 << (self.exp_bits + self.man_bits)) - 1
    }

    /// Mask of the mantissa field.
    pub const fn man_mask(&self) -> u64 {
        (1u64 << self.man_bits) - 1
    }

    /// The largest biased exponent field value.
    pub const fn exp_field_max(&self) -> u64 {
        (1u64 << self.exp_bits) - 1
    }

    /// The exponent of the smallest normal value, `1 - bias` (`-bias` for E8M0, which has no
    /// subnormals).
    pub const fn min_exp(&self) -> i32 {
        match self.specials {
            Specials::PowerOfTwo => -self.bias,
            _ => 1 - self.bias,
        }
    }

    /// Whether the format has an infinity.
    pub const fn has_inf(&self) -> bool {
        matches!(self.specials, Specials::Ieee)
    }

    /// Whether the format has a NaN.
    pub const fn has_nan(&self) -> bool {
        !matches!(self.specials, Specials::Finite)
    }

    /// Whether the format has a negative zero.
    pub const fn has_negative_zero(&self) -> bool {
        matches!(self.specials, Specials::Ieee | Specials::FiniteNan | Specials::Finite)
    }

    /// The magnitude bits of the largest finite value.
    pub const fn max_magnitude_code(&self) -> u64 {
        let all = self.magnitude_mask();
        match self.specials {
            Specials::Ieee => all - (1u64 << self.man_bits),
            Specials::FiniteNan | Specials::PowerOfTwo => all - 1,
            Specials::FiniteNanUnsignedZero | Specials::Finite => all,
        }
    }

    /// The magnitude bits of infinity, if the format has one.
    pub const fn inf_magnitude_code(&self) -> Option<u64> {
        match self.specials {
            Specials::Ieee => Some(self.exp_field_max() << self.man_bits),
            _ => None,
        }
    }

    /// The code of the format's canonical (quiet, positive) NaN, if it has one.
    pub const fn nan_code(&self) -> Option<u64> {
        match self.specials {
            Specials::Ieee => Some((self.exp_field_max() << self.man_bits) | (1u64 << (self.man_bits - 1))),
            Specials::FiniteNan | Specials::PowerOfTwo => Some(self.magnitude_mask()),
            Specials::FiniteNanUnsignedZero => Some(self.sign_mask()),
            Specials::Finite => None,
        }
    }

    /// Whether a code is a NaN.
    pub const fn is_nan_code(&self, code: u64) -> bool {
        let mag = code & self.magnitude_mask();
        match self.specials {
            Specials::Ieee => (mag >> self.man_bits) == self.exp_field_max() && (mag & self.man_mask()) != 0,
            Specials::FiniteNan => mag == self.magnitude_mask(),
            Specials::PowerOfTwo => code == self.magnitude_mask(),
            Specials::FiniteNanUnsignedZero => code == self.sign_mask(),
            Specials::Finite => false,
        }
    }

    /// The value of a magnitude code (sign removed) as an exact `f64`, ignoring special codes.
    pub(crate) const fn magnitude_value(&self, mag: u64) -> f64 {
        let e = (mag >> self.man_bits) as i32;
        let m = (mag & self.man_mask()) as f64;
        let frac = m / (1u64 << self.man_bits) as f64;
        match self.specials {
            Specials::PowerOfTwo => pow2(e - self.bias),
            _ if e == 0 => frac * pow2(1 - self.bias),
            _ => (1.0 + frac) * pow2(e - self.bias),
        }
    }

    /// The largest finite value.
    pub const fn max_finite(&self) -> f64 {
        if self.man_bits == 52 {
            return f64::MAX;
        }
        self.magnitude_value(self.max_magnitude_code())
    }

    /// The smallest positive normal value.
    pub const fn min_positive_normal(&self) -> f64 {
        pow2(self.min_exp())
    }

    /// The smallest positive value (a subnormal where the format has them).
    pub const fn min_positive(&self) -> f64 {
        match self.specials {
            Specials::PowerOfTwo => pow2(self.min_exp()),
            _ => pow2(self.min_exp() - self.man_bits as i32),
        }
    }

    /// Machine epsilon: the gap between 1 and the next value, `2^-man_bits`.
    pub const fn epsilon(&self) -> f64 {
        pow2(-(self.man_bits as i32))
    }
}

/// `2^e` as an `f64`: exact for `-1074 <= e <= 1023`, infinity above and zero below, so that
/// no layout (even one read from corrupt bytes) can make it panic.
pub(crate) const fn pow2(e: i32) -> f64 {
    if e > 1023 {
        f64::INFINITY
    } else if e < -1074 {
        0.0
    } else if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}
