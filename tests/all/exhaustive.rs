//! Every code of every format of at most 19 bits: decode, encode back, and the ties between
//! each pair of neighbours (with their neighbours) in every rounding mode.

use lowbit::format::*;

fn every_code<F: FloatFormat>() {
    let n = 1u64 << F::BITS;
    let codes: Vec<F::Code> = (0..n).map(F::Code::from_u64).collect();
    let mut decoded = vec![0f32; codes.len()];
    F::decode_slice(&codes, &mut decoded).unwrap();
    let mut portable = vec![0f32; codes.len()];
    decode_slice_portable::<F>(&codes, &mut portable).unwrap();
    for (i, &c) in codes.iter().enumerate() {
        let v32 = F::decode_f32(c);
        let v64 = F::decode_f64(c);
        assert_eq!(decoded[i].to_bits(), v32.to_bits(), "{} slice decode {c:#x}", F::NAME);
        assert_eq!(
            portable[i].to_bits(),
            v32.to_bits(),
            "{} portable decode {c:#x}",
            F::NAME
        );
        if F::is_nan(c) {
            assert!(v32.is_nan() && v64.is_nan(), "{} {c:#x} is NaN", F::NAME);
            assert!(F::is_nan(F::encode_f32(v32)), "{} NaN {c:#x} encodes to a NaN", F::NAME);
            assert!(
                F::is_nan(F::encode_f64(v64)),
                "{} NaN {c:#x} encodes to a NaN (f64)",
                F::NAME
            );
            continue;
        }
        assert_eq!(f64::from(v32), v64, "{} decode_f32 is exact for {c:#x}", F::NAME);
        assert_eq!(F::encode_f32(v32), c, "{} {c:#x} = {v32} round-trips", F::NAME);
        assert_eq!(F::encode_f64(v64), c, "{} {c:#x} = {v64} round-trips from f64", F::NAME);
        for r in [
            Rounding::TowardZero,
            Rounding::NearestAway,
            Rounding::Stochastic(0),
            Rounding::Stochastic(u32::MAX),
        ] {
            assert_eq!(
                F::encode_f64_with(v64, Options::rounding(r)),
                c,
                "{} {c:#x} exact under {r:?}",
                F::NAME
            );
        }
        let f = F::decompose(c);
        match f.class {
            Class::Nan => unreachable!(),
            Class::Infinite => assert!(v64.is_infinite()),
            Class::Zero => assert_eq!(v64, 0.0),
            Class::Subnormal => assert!(v64.abs() < F::MIN_POSITIVE_NORMAL),
            Class::Normal => {
                assert!(v64.abs() >= F::MIN_POSITIVE_NORMAL && v64.abs() <= F::MAX);
                // The formula the fields print.
                let l = F::LAYOUT;
                let m = f.mantissa as f64 / (1u64 << l.man_bits()) as f64;
                let mag = 2f64.powi(f.exponent as i32 - l.bias()) * if l.man_bits() == 0 { 1.0 } else { 1.0 + m };
                assert_eq!(if f.sign == 1 { -mag } else { mag }, v64);
            }
        }
    }
}

/// Positive finite values in increasing order, with their codes.
fn ladder<F: FloatFormat>() -> Vec<(f64, F::Code)> {
    let mut v: Vec<(f64, F::Code)> = (0..1u64 << F::BITS)
        .map(F::Code::from_u64)
        .filter(|&c| !F::is_nan(c))
        .map(|c| (F::decode_f64(c), c))
        .filter(|&(x, _)| {
            x.is_finite() && x.is_sign_positive() && (x > 0.0 || F::LAYOUT.specials() != Specials::PowerOfTwo)
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

fn next_up(x: f64) -> f64 {
    f64::from_bits(x.to_bits() + 1)
}
fn next_down(x: f64) -> f64 {
    f64::from_bits(x.to_bits() - 1)
}

fn ties<F: FloatFormat>() {
    let lad = ladder::<F>();
    let p2 = F::LAYOUT.specials() == Specials::PowerOfTwo;
    for w in lad.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        let mid = (a + b) / 2.0;
        let even = if p2 {
            cb
        } else if ca.to_u64() & 1 == 0 {
            ca
        } else {
            cb
        };
        for sign in [1.0, -1.0] {
            let enc = |x: f64, o: Options| F::encode_f64_with(sign * x, o);
            let signed = |c: F::Code| {
                if sign > 0.0 || p2 || (c.to_u64() == 0 && !F::LAYOUT.has_negative_zero()) {
                    c
                } else {
                    F::Code::from_u64(c.to_u64() | F::LAYOUT.sign_mask())
                }
            };
            if p2 && sign < 0.0 {
                continue;
            }
            let d = Options::default();
            assert_eq!(enc(mid, d), signed(even), "{} tie {a}..{b}", F::NAME);
            assert_eq!(enc(next_up(mid), d), signed(cb), "{} above tie {a}..{b}", F::NAME);
            assert_eq!(enc(next_down(mid), d), signed(ca), "{} below tie {a}..{b}", F::NAME);
            assert_eq!(
                enc(mid, Options::rounding(Rounding::NearestAway)),
                signed(cb),
                "{} away {a}..{b}",
                F::NAME
            );
            let tz = Options::rounding(Rounding::TowardZero);
            assert_eq!(enc(next_down(b), tz), signed(ca), "{} toward zero {a}..{b}", F::NAME);
            // f32 inputs on the scalar path agree where the tie is an f32.
            let m32 = (sign * mid) as f32;
            if f64::from(m32) == sign * mid {
                assert_eq!(F::encode_f32(m32), signed(even), "{} f32 tie {a}..{b}", F::NAME);
            }
        }
    }
}

macro_rules! exhaustive_tests {
    ($($m:ident: $f:ty;)*) => {$(
        mod $m {
            use super::*;
            #[test]
            fn every_code_round_trips() {
                every_code::<$f>();
            }
            #[test]
            fn ties_and_their_neighbours() {
                ties::<$f>();
            }
        }
    )*};
}

crate::common::with_small_formats!(exhaustive_tests);

#[test]
fn documented_choices() {
    // NaN into a finite-only format: a zero of the NaN's sign.
    assert_eq!(E2M1::encode_f32(f32::NAN), 0x0);
    assert_eq!(E2M1::encode_f32(-f32::NAN), 0x8);
    assert_eq!(E3M2::encode_f64(f64::NAN), 0x00);
    // Infinities saturate in finite-only formats.
    assert_eq!(E2M3::encode_f32(f32::NEG_INFINITY), 0x3f);
    // E8M0: no zero, no sign.
    for x in [0.0, -0.0, -1.0, f32::INFINITY, f32::NAN] {
        assert_eq!(E8M0::encode_f32(x), 0xff, "{x}");
    }
    assert_eq!(E8M0::encode_f32(3.0), 129); // tie between 2 and 4: away from zero
    assert_eq!(E8M0::encode_f32(1.5), 128);
    // The lowest binade rounds like every other (ml_dtypes 0.7; 0.6 sent it all up).
    let tiny = 2f32.powi(-127);
    assert_eq!(E8M0::encode_f32(tiny), 0);
    assert_eq!(E8M0::encode_f32(tiny * 1.25), 0);
    assert_eq!(E8M0::encode_f32(f32::from_bits((tiny * 1.5).to_bits() - 1)), 0);
    assert_eq!(E8M0::encode_f32(tiny * 1.5), 1);
    assert_eq!(E8M0::encode_f64(2f64.powi(-127) * 1.5 - 2f64.powi(-179)), 0);
    assert_eq!(E8M0::encode_f32(tiny * 1.75), 1);
    assert_eq!(E8M0::encode_f32(1e-45), 0);
    assert_eq!(E8M0::encode_f64(1e-300), 0);
    assert_eq!(E8M0::encode_f64(f64::from_bits(1)), 0);
    assert_eq!(
        E8M0::encode_f32_with(0.0, Options::default().with_overflow(Overflow::Saturate)),
        0
    );
    // FNUZ: no negative zero.
    assert_eq!(E4M3Fnuz::encode_f32(-0.0), 0);
    assert_eq!(E4M3Fnuz::encode_f32(-1e-9), 0);
    // Overflow policies.
    assert_eq!(E4M3::encode_f32(464.0), 0x7e); // the tie at the top goes to even, 448
    assert_eq!(E4M3::encode_f32(464.1), 0x7f);
    assert_eq!(E5M2::encode_f32(1e6), 0x7c);
    assert_eq!(
        E5M2::encode_f32_with(1e6, Options::default().with_overflow(Overflow::Saturate)),
        0x7b
    );
    assert_eq!(
        E5M2::encode_f32_with(-1e6, Options::rounding(Rounding::TowardZero)),
        0xfb
    );
    assert_eq!(
        E5M2::encode_f32_with(f32::INFINITY, Options::rounding(Rounding::TowardZero)),
        0x7c
    );
    assert_eq!(
        E4M3::encode_f32_with(f32::NEG_INFINITY, Options::default().with_overflow(Overflow::Saturate)),
        0xfe
    );
    assert!(E4M3::is_nan(E4M3::encode_f32_with(
        f32::NAN,
        Options::default().with_overflow(Overflow::Saturate)
    )));
}

#[test]
fn fields_print_like_a_converter() {
    assert_eq!(
        Fp32::decompose(0x3fc0_0000).to_string(),
        "0 01111111 10000000000000000000000 = (-1)^0 × 2^(127-127) × (1 + 4194304/8388608) = 1.5"
    );
    assert_eq!(
        E4M3::decompose(0x01).to_string(),
        "0 0000 001 = (-1)^0 × 2^(1-7) × (1/8) = 0.001953125"
    );
    assert_eq!(E5M2::decompose(0xfc).to_string(), "1 11111 00 = -inf");
    assert_eq!(E4M3::decompose(0xff).to_string(), "1 1111 111 = NaN");
    assert_eq!(E2M1::decompose(0x8).to_string(), "1 00 0 = -0");
    assert_eq!(E8M0::decompose(127).to_string(), "01111111 = 2^(127-127) = 1e0");
    let f = Bf16::decompose(0xc040);
    assert_eq!(
        (f.sign, f.exponent, f.mantissa, f.class, f.value),
        (1, 128, 0x40, Class::Normal, -3.0)
    );
    assert_eq!(f.unbiased_exponent(), 1);
}

#[test]
fn casts_round_once() {
    // Every E4M3 code to every other 8-bit format and back through Fp32.
    let src: Vec<u8> = (0..=255).collect();
    let mut dst = vec![0u8; 256];
    cast::<E4M3, E5M2>(&src, &mut dst, Options::default()).unwrap();
    for (&s, &d) in src.iter().zip(&dst) {
        assert_eq!(d, E5M2::encode_f64(E4M3::decode_f64(s)));
    }
    let mut wide = vec![0u32; 256];
    cast::<E4M3, Fp32>(&src, &mut wide, Options::default()).unwrap();
    let mut back = vec![0u8; 256];
    cast::<Fp32, E4M3>(&wide, &mut back, Options::default()).unwrap();
    for (&s, &b) in src.iter().zip(&back) {
        assert!(s == b || (E4M3::is_nan(s) && E4M3::is_nan(b)));
    }
    // Bf16 → Fp16 rounds once from the exact bf16 value.
    let c = Bf16::encode_f32(1.0 + 2f32.powi(-7));
    assert_eq!(cast_one::<Bf16, Fp16>(c, Options::default()), 0x3c08);
    assert_eq!(
        cast::<Bf16, Fp16>(&[c], &mut [0u16; 2], Options::default()),
        Err(Error::LengthMismatch { expected: 1, actual: 2 })
    );
}

#[test]
fn wrong_lengths_are_errors() {
    let mut d = [0u8; 3];
    assert_eq!(
        E4M3::encode_slice(&[1.0; 4], &mut d),
        Err(Error::LengthMismatch { expected: 4, actual: 3 })
    );
    assert_eq!(
        E4M3::decode_slice(&[0; 4], &mut [0.0; 5]),
        Err(Error::LengthMismatch { expected: 4, actual: 5 })
    );
    assert!(E4M3::encode_slice_stochastic(&[1.0; 3], &[0; 2], &mut d, Overflow::Native).is_err());
    assert_eq!(E2M1::try_code(0x10), Err(Error::CodeOutOfRange { code: 0x10, bits: 4 }));
    assert_eq!(E2M1::try_code(0xf), Ok(0xf));
    assert!(E4M3::encode_slice(&[], &mut []).is_ok());
}

#[test]
fn half_interop() {
    let codes = [Fp16::encode_f32(1.5), Fp16::encode_f32(-0.1)];
    let h = Fp16::codes_as_half(&codes);
    assert_eq!(h[0], half::f16::from_f32(1.5));
    assert_eq!(h[1], half::f16::from_f32(-0.1));
    assert_eq!(Bf16::from_half(half::bf16::from_f32(3.0)), Bf16::encode_f32(3.0));
    assert_eq!(Bf16::half_as_codes(&[half::bf16::ONE]), &[0x3f80]);
    // half agrees with us on every non-NaN f16 and bf16 code.
    for c in 0..=u16::MAX {
        let f = half::f16::from_bits(c).to_f32();
        if !f.is_nan() {
            assert_eq!(Fp16::decode_f32(c).to_bits(), f.to_bits());
            assert_eq!(Fp16::encode_f32(f), c);
        }
    }
}
