//! Interoperation with the `half` crate: [`Fp16`] and [`Bf16`] codes are the bit patterns of
//! `half::f16` and `half::bf16`, so scalars convert for free and slices cast in place.

use super::types::{Bf16, Fp16};

macro_rules! half_interop {
    ($fmt:ident, $half:ty, $hname:literal) => {
        impl $fmt {
            #[doc = concat!("The `", $hname, "` with this code's bits.")]
            ///
            /// ```
            #[doc = concat!("use lowbit::{FloatFormat, ", stringify!($fmt), "};")]
            #[doc = concat!("let h = ", stringify!($fmt), "::to_half(", stringify!($fmt), "::encode_f32(1.5));")]
            /// assert_eq!(h.to_f32(), 1.5);
            /// ```
            #[inline]
            pub fn to_half(code: u16) -> $half {
                <$half>::from_bits(code)
            }

            #[doc = concat!("The code of a `", $hname, "`.")]
            #[inline]
            pub fn from_half(value: $half) -> u16 {
                value.to_bits()
            }

            #[doc = concat!("View codes as `", $hname, "` values, without copying.")]
            #[inline]
            pub fn codes_as_half(codes: &[u16]) -> &[$half] {
                bytemuck::cast_slice(codes)
            }

            #[doc = concat!("View `", $hname, "` values as codes, without copying.")]
            #[inline]
            pub fn half_as_codes(values: &[$half]) -> &[u16] {
                bytemuck::cast_slice(values)
            }

            #[doc = concat!("View codes as mutable `", $hname, "` values, without copying.")]
            #[inline]
            pub fn codes_as_half_mut(codes: &mut [u16]) -> &mut [$half] {
                bytemuck::cast_slice_mut(codes)
            }
        }
    };
}

half_interop!(Fp16, half::f16, "half::f16");
half_interop!(Bf16, half::bf16, "half::bf16");
