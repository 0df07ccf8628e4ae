//! The runtime-selected slice paths (AVX-512, AVX2, F16C) give the same codes as the portable loop and
//! as the scalar reference codec, over a sweep of f32 bit patterns.

use lowbit::format::*;

fn sweep() -> Vec<f32> {
    // Every 4099th bit pattern (all exponents, both signs, NaN payloads), odd lengths included.
    let mut v: Vec<f32> = (0..=u32::MAX / 4099)
        .map(|i| f32::from_bits(i.wrapping_mul(4099)))
        .collect();
    v.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-45,
    ]);
    v
}

fn parity<F: FloatFormat>(src: &[f32]) {
    let mut fast = vec![F::Code::default(); src.len()];
    let mut portable = vec![F::Code::default(); src.len()];
    for len in [src.len(), src.len() - 3] {
        F::encode_slice(&src[..len], &mut fast[..len]).unwrap();
        encode_slice_portable::<F>(&src[..len], &mut portable[..len]).unwrap();
        for i in 0..len {
            let reference = F::encode_f64_with(f64::from(src[i]), Options::default());
            let nan_input = src[i].is_nan();
            assert_eq!(fast[i], portable[i], "{} encode {:#x}", F::NAME, src[i].to_bits());
            if !nan_input {
                assert_eq!(
                    portable[i],
                    reference,
                    "{} vs reference codec {:#x}",
                    F::NAME,
                    src[i].to_bits()
                );
            }
        }
    }
    let sat = Options::default().with_overflow(Overflow::Saturate);
    F::encode_slice_with(src, &mut fast, sat).unwrap();
    for (i, &x) in src.iter().enumerate() {
        if !x.is_nan() {
            assert_eq!(
                fast[i],
                F::encode_f64_with(f64::from(x), sat),
                "{} saturate {:#x}",
                F::NAME,
                x.to_bits()
            );
        }
    }
    let mut out_fast = vec![0f32; src.len()];
    let mut out_portable = vec![0f32; src.len()];
    F::decode_slice(&portable, &mut out_fast).unwrap();
    decode_slice_portable::<F>(&portable, &mut out_portable).unwrap();
    for i in 0..src.len() {
        assert_eq!(
            out_fast[i].to_bits(),
            out_portable[i].to_bits(),
            "{} decode {:#x}",
            F::NAME,
            portable[i]
        );
    }
}

#[test]
fn fast_paths_match_portable_and_reference() {
    let src = sweep();
    parity::<Tf32>(&src);
    parity::<Bf16>(&src);
    parity::<Fp16>(&src);
    parity::<E4M3>(&src);
    parity::<E5M2>(&src);
    parity::<E4M3Fnuz>(&src);
    parity::<E5M2Fnuz>(&src);
    parity::<E3M4>(&src);
    parity::<E8M0>(&src);
    parity::<E3M2>(&src);
    parity::<E2M3>(&src);
    parity::<E2M1>(&src);
}

/// Every FP16 code through the dispatched decode (F16C where the CPU has it) against the
/// portable one, bit for bit: in order (NaN codes in whole chunks), and shuffled so that NaNs
/// and signalling NaNs fall in chunks of ordinary codes, at every offset of a chunk.
#[test]
fn fp16_decode_every_code() {
    let mut codes: Vec<u16> = (0..=u16::MAX).collect();
    let check = |codes: &[u16]| {
        let mut fast = vec![0f32; codes.len()];
        let mut portable = vec![0f32; codes.len()];
        Fp16::decode_slice(codes, &mut fast).unwrap();
        decode_slice_portable::<Fp16>(codes, &mut portable).unwrap();
        for (i, (a, b)) in fast.iter().zip(&portable).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "code {:#06x}", codes[i]);
        }
    };
    check(&codes);
    let mut s = 0x9e37_79b9u32;
    for i in (1..codes.len()).rev() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        codes.swap(i, s as usize % (i + 1));
    }
    for offset in 0..33 {
        check(&codes[offset..]);
    }
}

/// BF16's slice encode (its own integer kernel) against the portable codec on a stride through
/// every `f32` bit pattern, every NaN boundary and the rounding carries into the exponent.
#[test]
fn bf16_encode_stride_of_every_f32() {
    let mut src: Vec<f32> = (0..=u32::MAX).step_by(4099).map(f32::from_bits).collect();
    for b in [
        0x7f80_0000u32,
        0x7f80_0001,
        0x7fbf_ffff,
        0x7fc0_0000,
        0x7fff_ffff,
        0x7f7f_ffff,
        0x7f7f_8000,
        0x7f7f_7fff,
    ] {
        src.extend([f32::from_bits(b), f32::from_bits(b | 0x8000_0000)]);
    }
    for low in [0x7fffu32, 0x8000, 0x8001, 0x1_8000, 0xffff] {
        src.push(f32::from_bits(0x3f80_0000 | low));
    }
    let mut fast = vec![0u16; src.len()];
    let mut portable = vec![0u16; src.len()];
    Bf16::encode_slice(&src, &mut fast).unwrap();
    encode_slice_portable::<Bf16>(&src, &mut portable).unwrap();
    for (i, (a, b)) in fast.iter().zip(&portable).enumerate() {
        assert_eq!(a, b, "{:#x}", src[i].to_bits());
    }
}

/// FP16 and BF16 through the public slice functions (the dispatch: AVX-512, F16C or AVX2, or
/// portable) against the portable loops on random bit patterns at every length up to 160 and
/// at unaligned starts, so that every vector width's tail and NaNs at every lane are covered.
/// `format::slice`'s unit tests call each kernel directly.
#[test]
fn fp16_bf16_random_bits_and_tails() {
    let mut rng = crate::common::Rng(0x0b16_f00d);
    let mut src: Vec<f32> = (0..40_000).map(|_| f32::from_bits(rng.next() as u32)).collect();
    // Values near binary16's range, where the rounding is interesting, NaNs every 97th.
    for i in 0..40_000 {
        let r = rng.next();
        let b = (r as u32 & 0x8000_0000) | (95 + (r >> 32) as u32 % 51) << 23 | (r >> 8) as u32 & 0x7f_ffff;
        src.push(f32::from_bits(if i % 97 == 0 { b | 0x7f80_0001 } else { b }));
    }
    fn both<F: FloatFormat<Code = u16>>(src: &[f32]) {
        let (mut fast, mut portable) = (vec![0u16; src.len()], vec![0u16; src.len()]);
        let (mut back_fast, mut back_portable) = (vec![0f32; src.len()], vec![0f32; src.len()]);
        let mut run = |s: &[f32]| {
            let n = s.len();
            F::encode_slice(s, &mut fast[..n]).unwrap();
            encode_slice_portable::<F>(s, &mut portable[..n]).unwrap();
            assert_eq!(fast[..n], portable[..n], "{} encode, length {n}", F::NAME);
            F::decode_slice(&portable[..n], &mut back_fast[..n]).unwrap();
            decode_slice_portable::<F>(&portable[..n], &mut back_portable[..n]).unwrap();
            assert_eq!(
                crate::common::bits(&back_fast[..n]),
                crate::common::bits(&back_portable[..n]),
                "{} decode, length {n}",
                F::NAME
            );
        };
        run(src);
        for start in [0, 1, 7, 40_000] {
            for len in 0..=160 {
                run(&src[start..start + len]);
            }
        }
    }
    both::<Fp16>(&src);
    both::<Bf16>(&src);
}

/// A layout declared by a user: the fast path must agree with the reference codec for it too.
#[derive(Clone, Copy, Debug, Default)]
struct E3M3;
impl FloatFormat for E3M3 {
    type Code = u8;
    const LAYOUT: Layout = Layout::new(3, 3, 5, Specials::Finite, NanRule::Canonical);
    const NAME: &'static str = "e3m3";
}

/// An FN-style layout with a large bias, to push the subnormal magic constant low.
#[derive(Clone, Copy, Debug, Default)]
struct E5M4Fn;
impl FloatFormat for E5M4Fn {
    type Code = u16;
    const LAYOUT: Layout = Layout::new(5, 4, 20, Specials::FiniteNan, NanRule::Canonical);
    const NAME: &'static str = "e5m4fn";
}

#[test]
fn user_layouts_match_too() {
    let src = sweep();
    parity::<E3M3>(&src);
    parity::<E5M4Fn>(&src);
    assert_eq!(E3M3::MAX, 7.5);
}

#[test]
fn junk_codes_do_not_panic() {
    // Codes with bits above the format's width decode to something and never panic.
    for c in 0..=u8::MAX {
        let _ = (E2M1::decode_f32(c), E2M1::decode_f64(c), E2M1::decompose(c).to_string());
        let _ = (E3M2::decode_f32(c), E2M3::decode_f32(c), E8M0::decompose(c).to_string());
    }
    for c in (0..=u32::MAX).step_by(65521) {
        let _ = (Tf32::decode_f32(c), Tf32::decompose(c).to_string());
    }
}
