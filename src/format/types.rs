//! The formats: one line of data each.

use super::layout::{Layout, NanRule, Specials};
use super::FloatFormat;

macro_rules! formats {
    ($(
        $(#[$doc:meta])*
        $name:ident: $code:ty = ($e:expr, $m:expr, $bias:expr, $spec:ident, $nan:expr), $str:literal;
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
            pub struct $name;

            impl FloatFormat for $name {
                type Code = $code;
                const LAYOUT: Layout = Layout::new($e, $m, $bias, Specials::$spec, $nan);
                const NAME: &'static str = $str;
            }
        )*

        /// A format of this crate chosen at run time (from a file's dtype, a command-line
        /// flag, a recipe), one variant per format type. [`Format::with`] runs generic code
        /// for it, so nothing is written per format twice.
        ///
        /// ```
        /// use lowbit::format::{Format, FormatFn, FloatFormat};
        ///
        /// let f = Format::from_name("float8_e4m3fn").unwrap();
        /// assert_eq!(f, Format::E4M3);
        /// assert_eq!((f.bits(), f.max()), (8, 448.0));
        ///
        /// struct Encode(f32);
        /// impl FormatFn for Encode {
        ///     type Out = u64;
        ///     fn call<F: FloatFormat>(self) -> u64 {
        ///         use lowbit::format::Code;
        ///         F::encode_f32(self.0).to_u64()
        ///     }
        /// }
        /// assert_eq!(f.with(Encode(1.0)), 0x38);
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Format {
            $($(#[$doc])* $name,)*
            /// IEEE binary32.
            Fp32,
            /// IEEE binary64.
            Fp64,
        }

        impl Format {
            /// Every format, narrowest last.
            pub const ALL: &'static [Format] = &[Format::Fp64, Format::Fp32, $(Format::$name,)*];

            /// Run `f` with this format as its type parameter.
            pub fn with<T: FormatFn>(self, f: T) -> T::Out {
                match self {
                    $(Format::$name => f.call::<$name>(),)*
                    Format::Fp32 => f.call::<Fp32>(),
                    Format::Fp64 => f.call::<Fp64>(),
                }
            }

            /// The format's layout.
            pub const fn layout(self) -> Layout {
                match self {
                    $(Format::$name => <$name as FloatFormat>::LAYOUT,)*
                    Format::Fp32 => <Fp32 as FloatFormat>::LAYOUT,
                    Format::Fp64 => <Fp64 as FloatFormat>::LAYOUT,
                }
            }

            /// The ml_dtypes / torch name (`"float8_e4m3fn"`, `"bfloat16"`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Format::$name => <$name as FloatFormat>::NAME,)*
                    Format::Fp32 => <Fp32 as FloatFormat>::NAME,
                    Format::Fp64 => <Fp64 as FloatFormat>::NAME,
                }
            }
        }
    };
}

/// Generic code to run for a [`Format`] chosen at run time ([`Format::with`]).
pub trait FormatFn {
    /// What it returns.
    type Out;
    /// Run with the format `F`.
    fn call<F: FloatFormat>(self) -> Self::Out;
}

impl Format {
    /// The format whose ml_dtypes / torch name ([`FloatFormat::NAME`]) is `name`.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Bits per code.
    pub const fn bits(self) -> u32 {
        self.layout().bits()
    }

    /// Largest finite value.
    pub fn max(self) -> f64 {
        self.layout().max_finite()
    }
}

const CANONICAL: NanRule = NanRule::Canonical;

formats! {
    /// TF32 (NVIDIA TensorFloat-32): 1 sign, 8 exponent, 10 mantissa bits, bias 127; IEEE inf
    /// and NaN; max 3.4e38. The 19-bit code is the top 19 bits of the `f32` pattern,
    /// right-aligned in a `u32`. A NaN keeps its payload's top bits and is quieted.
    #[doc(alias = "tensorfloat32")]
    Tf32: u32 = (8, 10, 127, Ieee, NanRule::Payload { quiet: true }), "tf32";
    /// bfloat16: 1 sign, 8 exponent, 7 mantissa bits, bias 127; IEEE inf and NaN; max 3.39e38.
    /// Every NaN becomes the quiet NaN `0x7fc0` with its sign, as in ml_dtypes.
    #[doc(alias = "bfloat16")]
    Bf16: u16 = (8, 7, 127, Ieee, CANONICAL), "bfloat16";
    /// IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits, bias 15; IEEE inf and NaN; max
    /// 65504. A NaN keeps the top 10 bits of its payload (NumPy's rule).
    #[doc(alias = "float16")]
    #[doc(alias = "half")]
    Fp16: u16 = (5, 10, 15, Ieee, NanRule::Payload { quiet: false }), "float16";
    /// FP8 E4M3, the `FN` variant (OCP, NVIDIA): 1 sign, 4 exponent, 3 mantissa bits, bias 7;
    /// no infinity; NaN is `S.1111.111`; max 448. Overflow and infinities become NaN.
    #[doc(alias = "float8_e4m3fn")]
    E4M3: u8 = (4, 3, 7, FiniteNan, CANONICAL), "float8_e4m3fn";
    /// FP8 E5M2 (OCP): 1 sign, 5 exponent, 2 mantissa bits, bias 15; IEEE inf and NaN; max
    /// 57344. Overflow becomes infinity.
    #[doc(alias = "float8_e5m2")]
    E5M2: u8 = (5, 2, 15, Ieee, CANONICAL), "float8_e5m2";
    /// FP8 E4M3 `FNUZ` (AMD, Graphcore): 1 sign, 4 exponent, 3 mantissa bits, bias 8; no
    /// infinity, no negative zero; NaN is `0x80`; max 240.
    #[doc(alias = "float8_e4m3fnuz")]
    E4M3Fnuz: u8 = (4, 3, 8, FiniteNanUnsignedZero, CANONICAL), "float8_e4m3fnuz";
    /// FP8 E5M2 `FNUZ`: 1 sign, 5 exponent, 2 mantissa bits, bias 16; no infinity, no negative
    /// zero; NaN is `0x80`; max 57344.
    #[doc(alias = "float8_e5m2fnuz")]
    E5M2Fnuz: u8 = (5, 2, 16, FiniteNanUnsignedZero, CANONICAL), "float8_e5m2fnuz";
    /// FP8 E3M4: 1 sign, 3 exponent, 4 mantissa bits, bias 3; IEEE inf and NaN; max 15.5.
    #[doc(alias = "float8_e3m4")]
    E3M4: u8 = (3, 4, 3, Ieee, CANONICAL), "float8_e3m4";
    /// E8M0 (OCP MX scale): 8 exponent bits, no sign, no mantissa, bias 127; values `2^-127`
    /// to `2^127`; no zero; NaN is `0xFF`. See the [module docs](super) for its rounding.
    #[doc(alias = "float8_e8m0fnu")]
    E8M0: u8 = (8, 0, 127, PowerOfTwo, CANONICAL), "float8_e8m0fnu";
    /// FP6 E3M2 (OCP): 1 sign, 3 exponent, 2 mantissa bits, bias 3; finite only; max 28.
    /// Overflow saturates.
    #[doc(alias = "float6_e3m2fn")]
    E3M2: u8 = (3, 2, 3, Finite, CANONICAL), "float6_e3m2fn";
    /// FP6 E2M3 (OCP): 1 sign, 2 exponent, 3 mantissa bits, bias 1; finite only; max 7.5.
    /// Overflow saturates.
    #[doc(alias = "float6_e2m3fn")]
    E2M3: u8 = (2, 3, 1, Finite, CANONICAL), "float6_e2m3fn";
    /// FP4 E2M1 (OCP, NVFP4's element): 1 sign, 2 exponent, 1 mantissa bit, bias 1; finite
    /// only; values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}. Overflow saturates.
    #[doc(alias = "float4_e2m1fn")]
    #[doc(alias = "fp4")]
    E2M1: u8 = (2, 1, 1, Finite, CANONICAL), "float4_e2m1fn";
}

/// IEEE binary32, the identity format: its codes are `f32` bit patterns.
#[doc(alias = "float32")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fp32;

impl FloatFormat for Fp32 {
    type Code = u32;
    const LAYOUT: Layout = Layout::new(8, 23, 127, Specials::Ieee, NanRule::Payload { quiet: false });
    const NAME: &'static str = "float32";

    #[inline]
    fn encode_f32(x: f32) -> u32 {
        x.to_bits()
    }

    #[inline]
    fn decode_f32(code: u32) -> f32 {
        f32::from_bits(code)
    }
}

/// IEEE binary64: its codes are `f64` bit patterns; every encode is exact.
#[doc(alias = "float64")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fp64;

impl FloatFormat for Fp64 {
    type Code = u64;
    const LAYOUT: Layout = Layout::new(11, 52, 1023, Specials::Ieee, NanRule::Payload { quiet: false });
    const NAME: &'static str = "float64";

    #[inline]
    fn encode_f32(x: f32) -> u64 {
        super::codec::widen(x).to_bits()
    }

    /// Rounds to nearest even, as `as f32` does.
    #[inline]
    fn decode_f32(code: u64) -> f32 {
        f64::from_bits(code) as f32
    }
}
