//! Each runtime-selected FP16/BF16 kernel called directly (not through the dispatch, which picks
//! one silently) against the portable loops, bit for bit: decode over every code, encode over
//! random bit patterns and the hard cases, at every length up to a few vectors and at offsets.

use super::portable;
use crate::arch;
use crate::{Bf16, Fp16};

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

/// Whether the CPU has what the AVX-512 kernels need, so that a path saying it did not run is
/// a failure on such a CPU.
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn has_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// f32 inputs for the encoders: random bit patterns (every exponent, NaNs with payloads), random
/// values in and around binary16's range, exact ties of both formats and their neighbours,
/// signed zeros, infinities, subnormals of all three formats, and the overflow thresholds.
fn encode_inputs() -> Vec<u32> {
    let mut rng = Rng(0x5eed_0011);
    let mut v: Vec<u32> = (0..200_000).map(|_| rng.next() as u32).collect();
    for _ in 0..100_000 {
        let r = rng.next();
        let sign = (r as u32) & 0x8000_0000;
        // Exponents 95..=145: binary16's subnormals (from 2^-24, and below, rounding to zero)
        // to past its overflow at 65520.
        let exp = 95 + ((r >> 32) % 51) as u32;
        let man = (r >> 8) as u32 & 0x7f_ffff;
        let base = sign | exp << 23;
        v.push(base | man);
        // A binary16 tie (half an ulp below the 10-bit mantissa), and one bit to either side.
        let tie16 = base | (man & !0x1fff) | 0x1000;
        v.extend([tie16, tie16 - 1, tie16 + 1]);
        // The same for BF16 at any exponent.
        let tie = (r >> 40) as u32 & 0x7f80_0000 | sign | (man & !0xffff) | 0x8000;
        v.extend([tie, tie - 1, tie + 1]);
    }
    for b in [
        0x0000_0000u32, // ±0
        0x0000_0001,    // f32 subnormals
        0x007f_ffff,
        0x0080_0000,
        0x3380_0000, // 2^-24, binary16's smallest subnormal, and its half (a tie to zero)
        0x3300_0000,
        0x3300_0001,
        0x33c0_0000, // 1.5 × 2^-24: a tie to 2 × 2^-24
        0x3880_0000, // 2^-14, binary16's smallest normal, and just below
        0x387f_ffff,
        0x387f_e000,
        0x477f_e000, // 65504, binary16's largest finite
        0x477f_efff, // just below 65520, rounds to 65504
        0x477f_f000, // 65520, the tie that overflows to infinity
        0x477f_f001,
        0x4780_0000,
        0x7f7f_7fff, // BF16's overflow: below, at and above the carry into infinity
        0x7f7f_8000,
        0x7f7f_ffff,
        0x7f80_0000, // infinity, then NaNs: signalling, quiet, payloads above and below bit 13
        0x7f80_0001,
        0x7f80_1fff,
        0x7f80_2000,
        0x7fbf_ffff,
        0x7fc0_0000,
        0x7fc0_0001,
        0x7fd5_5555,
        0x7fff_ffff,
        0x3f80_7fff, // BF16 ties at 1.0: odd and even
        0x3f80_8000,
        0x3f81_8000,
        0x3f80_1000, // binary16 ties at 1.0
        0x3f80_3000,
    ] {
        v.extend([b, b | 0x8000_0000]);
    }
    rng.shuffle(&mut v);
    v
}

/// `path` (a kernel that says whether it ran) against `reference` on `src`: the whole slice,
/// every length up to 200 at offsets 0..3, and a NaN-free stretch, each into a buffer of junk
/// whose element past the end must stay untouched.
fn check<S: Copy, D: Copy + PartialEq + core::fmt::Debug + Default>(
    name: &str,
    expect_run: bool,
    src: &[S],
    junk: D,
    path: impl Fn(&[S], &mut [D]) -> bool,
    reference: impl Fn(&[S], &mut [D]),
    show: impl Fn(S) -> u32,
) {
    let one = |s: &[S]| {
        let mut want = vec![D::default(); s.len()];
        reference(s, &mut want);
        let mut got = vec![junk; s.len() + 1];
        let ran = path(s, &mut got[..s.len()]);
        assert_eq!(ran, expect_run, "{name}: ran");
        if !ran {
            return;
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{name}: input {:#x} at {i} of {}", show(s[i]), s.len());
        }
        assert_eq!(got[s.len()], junk, "{name}: wrote past the end ({})", s.len());
    };
    one(src);
    for offset in 0..3 {
        for len in 0..=200 {
            one(&src[offset..offset + len]);
        }
    }
    one(&src[5..src.len() - 7]);
}

fn encode_f32s() -> Vec<f32> {
    encode_inputs().into_iter().map(f32::from_bits).collect()
}

#[test]
fn fp16_encode_kernels_match_portable() {
    let src = encode_f32s();
    let reference = portable::encode_f32_rne::<Fp16, false>;
    let show = f32::to_bits;
    let avx512 = |s: &[f32], d: &mut [u16]| arch::encode_fp16_avx512(s, d, reference);
    let f16c = |s: &[f32], d: &mut [u16]| arch::encode_fp16_f16c(s, d, reference);
    let dispatch = |s: &[f32], d: &mut [u16]| arch::encode_fp16(s, d, reference);
    check(
        "fp16 encode avx512",
        has_avx512(),
        &src,
        0xdead,
        avx512,
        reference,
        show,
    );
    check("fp16 encode f16c", has_f16c(), &src, 0xdead, f16c, reference, show);
    check(
        "fp16 encode",
        has_avx512() || has_f16c(),
        &src,
        0xdead,
        dispatch,
        reference,
        show,
    );
    // NaN-free: no lane redone by `exact`, so every code comes from the instruction.
    let finite: Vec<f32> = src.iter().copied().filter(|x| !x.is_nan()).collect();
    check(
        "fp16 encode avx512, no NaN",
        has_avx512(),
        &finite,
        0xdead,
        avx512,
        reference,
        show,
    );
}

#[test]
fn bf16_encode_kernel_matches_portable() {
    let src = encode_f32s();
    let reference = portable::encode_f32_rne::<Bf16, false>;
    let avx512 = |s: &[f32], d: &mut [u16]| arch::encode_bf16_avx512(s, d);
    check(
        "bf16 encode avx512",
        has_avx512(),
        &src,
        0xdead,
        avx512,
        reference,
        f32::to_bits,
    );
}

/// Every code, in order (NaN codes in whole vectors) and shuffled (NaNs among ordinary codes at
/// every position of a vector).
fn every_code() -> [Vec<u16>; 2] {
    let codes: Vec<u16> = (0..=u16::MAX).collect();
    let mut shuffled = codes.clone();
    Rng(0xc0de).shuffle(&mut shuffled);
    [codes, shuffled]
}

#[test]
fn fp16_decode_kernels_match_portable_on_every_code() {
    let reference = portable::decode_f32_u16::<Fp16>;
    let show = u32::from;
    let junk = f32::from_bits(0x7fa5_a5a5);
    // Compared as bits: `f32`'s `==` would pass -0 for 0 and fail every NaN.
    let bits = |s: &[u16], d: &mut [u32], f: &dyn Fn(&[u16], &mut [f32]) -> bool| {
        let mut out = vec![junk; s.len() + 1];
        let ran = f(s, &mut out[..s.len()]);
        assert_eq!(
            out[s.len()].to_bits(),
            junk.to_bits(),
            "wrote past the end ({})",
            s.len()
        );
        for (d, o) in d.iter_mut().zip(&out) {
            *d = o.to_bits();
        }
        ran
    };
    let reference_bits = |s: &[u16], d: &mut [u32]| {
        bits(s, d, &|s, o| {
            reference(s, o);
            true
        });
    };
    let avx512 = |s: &[u16], d: &mut [u32]| bits(s, d, &|s, o| arch::decode_fp16_avx512(s, o, reference));
    let f16c = |s: &[u16], d: &mut [u32]| bits(s, d, &|s, o| arch::decode_fp16_f16c(s, o, reference));
    for codes in every_code() {
        check(
            "fp16 decode avx512",
            has_avx512(),
            &codes,
            0,
            avx512,
            reference_bits,
            show,
        );
        check("fp16 decode f16c", has_f16c(), &codes, 0, f16c, reference_bits, show);
    }
}

#[test]
fn bf16_decode_kernel_matches_portable_on_every_code() {
    let reference = portable::decode_f32_u16::<Bf16>;
    let junk = 0x7fa5_a5a5u32;
    let avx512 = |s: &[u16], d: &mut [u32]| {
        let mut out = vec![f32::from_bits(junk); s.len() + 1];
        let ran = arch::decode_bf16_avx512(s, &mut out[..s.len()]);
        assert_eq!(out[s.len()].to_bits(), junk, "wrote past the end ({})", s.len());
        for (d, o) in d.iter_mut().zip(&out) {
            *d = o.to_bits();
        }
        ran
    };
    let reference_bits = |s: &[u16], d: &mut [u32]| {
        let mut out = vec![0f32; s.len()];
        reference(s, &mut out);
        for (d, o) in d.iter_mut().zip(&out) {
            *d = o.to_bits();
        }
    };
    for codes in every_code() {
        check(
            "bf16 decode avx512",
            has_avx512(),
            &codes,
            junk,
            avx512,
            reference_bits,
            u32::from,
        );
    }
}
