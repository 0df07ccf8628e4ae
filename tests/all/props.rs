//! Property tests of the codec: monotonicity, nearest value, half-ulp error, truncation,
//! stochastic rounding, casts.

use lowbit::format::*;
use proptest::prelude::*;

/// The unit in the last place at `|x|` in format `F` (the subnormal spacing below the normals).
fn ulp<F: FloatFormat>(x: f64) -> f64 {
    let l = F::LAYOUT;
    let e = (x.abs().log2().floor() as i32).max(l.min_exp());
    2f64.powi(e - l.man_bits() as i32)
}

fn finite_in_range<F: FloatFormat>(x: f64) -> bool {
    x.is_finite() && x.abs() <= F::MAX && (F::LAYOUT.is_signed() || x > 0.0)
}

/// f32 inputs spread over all binades, specials included.
fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        (-500f32..500f32),
        (-1e-3f32..1e-3f32)
    ]
}

fn check_format<F: FloatFormat>(x: f32, y: f32, r: u32) -> Result<(), TestCaseError> {
    let x64 = f64::from(x);
    let cx = F::encode_f32(x);
    if !x.is_nan() {
        // (Widening a signalling NaN to f64 quiets it, so NaNs are left to the reference tests.)
        prop_assert_eq!(cx, F::encode_f64(x64), "f32 and f64 paths agree");
    }
    let dx = F::decode_f64(cx);
    // Monotonic: x <= y implies decode(encode(x)) <= decode(encode(y)), where both are numbers.
    if x.is_finite() && y.is_finite() && x <= y {
        let dy = F::decode_f64(F::encode_f32(y));
        if !dx.is_nan() && !dy.is_nan() {
            prop_assert!(dx <= dy, "{} monotonic: {} -> {}, {} -> {}", F::NAME, x, dx, y, dy);
        }
    }
    if finite_in_range::<F>(x64) && F::LAYOUT.specials() != Specials::PowerOfTwo {
        // Nearest: at most half an ulp away, and neither neighbour code is closer.
        let err = (dx - x64).abs();
        prop_assert!(
            err <= ulp::<F>(x64) / 2.0,
            "{} error {} > half ulp at {}",
            F::NAME,
            err,
            x
        );
        let mag = cx.to_u64() & F::LAYOUT.magnitude_mask();
        for n in [mag.wrapping_sub(1), mag + 1] {
            if n <= F::LAYOUT.max_magnitude_code() {
                let c = F::Code::from_u64((cx.to_u64() & F::LAYOUT.sign_mask()) | n);
                let v = F::decode_f64(c);
                if !v.is_nan() {
                    prop_assert!(
                        (v - x64).abs() >= err,
                        "{}: {} is closer to {} than {}",
                        F::NAME,
                        v,
                        x,
                        dx
                    );
                }
            }
        }
        // Toward zero never increases |x|, and is the floor of |x| on the grid.
        let tz = F::decode_f64(F::encode_f32_with(x, Options::rounding(Rounding::TowardZero)));
        prop_assert!(tz.abs() <= x64.abs(), "{} toward zero grew {} to {}", F::NAME, x, tz);
        prop_assert!(
            x64.abs() - tz.abs() < ulp::<F>(x64),
            "{} toward zero is the floor",
            F::NAME
        );
        // Stochastic rounding lands on one of the two neighbours.
        let st = F::decode_f64(F::encode_f32_with(x, Options::rounding(Rounding::Stochastic(r))));
        prop_assert!(
            st == tz || (st.abs() > x64.abs() && st.abs() - tz.abs() <= ulp::<F>(x64) * 1.0000001),
            "{} stochastic {} -> {} (floor {})",
            F::NAME,
            x,
            st,
            tz
        );
    }
    // Casting through f32 and back is the identity on codes.
    if !F::is_nan(cx) {
        let wide = lowbit::format::cast_one::<F, Fp32>(cx, Options::default());
        prop_assert_eq!(lowbit::format::cast_one::<Fp32, F>(wide, Options::default()), cx);
    }
    Ok(())
}

macro_rules! prop_formats {
    ($($name:ident: $f:ty;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            $(
                #[test]
                fn $name(x in any_f32(), y in any_f32(), r in any::<u32>()) {
                    check_format::<$f>(x, y, r)?;
                }
            )*
        }
    };
}

crate::common::with_small_formats!(prop_formats);

proptest! {
    /// Stochastic rounding is unbiased: over many draws the mean lands on x.
    #[test]
    fn stochastic_rounding_is_unbiased(x in 0.01f32..400.0) {
        let n = 4096u32;
        let sum: f64 = (0..n)
            .map(|i| E4M3::decode_f64(E4M3::encode_f32_with(x, Options::rounding(Rounding::Stochastic(i.wrapping_mul(0x9e37_79b9))))))
            .sum();
        let mean = sum / f64::from(n);
        prop_assert!((mean - f64::from(x)).abs() <= ulp::<E4M3>(f64::from(x)) * 0.01, "mean {} vs {}", mean, x);
    }

    /// One rounding from f64: the result is the nearest bf16 to the exact f64, not to its f32.
    #[test]
    fn f64_rounds_once(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite() && x.abs() < 1e38);
        let d = Bf16::decode_f64(Bf16::encode_f64(x));
        prop_assert!((d - x).abs() <= ulp::<Bf16>(x) / 2.0);
    }
}
