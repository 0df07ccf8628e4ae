//! Property tests of the quantizers (`lowbit::quant`).

use lowbit::quant::{pack, AbsmaxQuantizer, AffineQuantizer, Granularity, NonFinite, Quantized, Quantizer, Rounding};
use lowbit::{Bf16, FloatFormat, Fp16, E4M3, E8M0};
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

/// Values spread over a few decades, with exact zeros now and then.
fn values(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            8 => -100.0f32..100.0,
            2 => -1e-3f32..1e-3,
            1 => Just(0.0f32),
        ],
        0..max_len,
    )
}

fn granularity(len: usize) -> impl Strategy<Value = Granularity> {
    let cols: Vec<usize> = (1..=len.max(1)).filter(|c| len.is_multiple_of(*c)).collect();
    prop_oneof![
        Just(Granularity::PerTensor),
        (1usize..70).prop_map(Granularity::PerBlock),
        prop::sample::select(cols.clone()).prop_map(|cols| Granularity::PerRow { cols }),
        prop::sample::select(cols).prop_map(|cols| Granularity::PerColumn { cols }),
    ]
}

fn case() -> impl Strategy<Value = (Vec<f32>, Granularity)> {
    values(300).prop_flat_map(|x| {
        let n = x.len();
        (Just(x), granularity(n))
    })
}

/// Index of the group of element `i`.
fn group_of(g: Granularity, n: usize, i: usize) -> usize {
    match g {
        Granularity::PerTensor => 0,
        Granularity::PerBlock(b) => i / b,
        Granularity::PerRow { cols } => i / cols,
        Granularity::PerColumn { cols } => {
            let _ = n;
            i % cols
        }
    }
}

/// |x - x'| <= s/2, with room for the rounding of `x × (1/s)` (a few ulps of x).
fn within_half_step(x: f32, y: f32, s: f32) -> bool {
    (x - y).abs() <= s / 2.0 * (1.0 + 1e-6) + x.abs() * 4.0 * f32::EPSILON
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn absmax_error_at_most_half_a_step((x, g) in case(), bits in 2u32..=8, away in any::<bool>()) {
        let r = if away { Rounding::NearestAway } else { Rounding::NearestEven };
        let q = AbsmaxQuantizer::new(bits, g).unwrap().with_rounding(r).unwrap();
        let z = q.quantize(&x).unwrap();
        let y = q.dequantize(&z).unwrap();
        let qmax = q.qmax();
        let codes = z.unpacked_codes();
        for i in 0..x.len() {
            let s = z.scales()[group_of(g, x.len(), i)];
            prop_assert!(within_half_step(x[i], y[i], s), "i {} x {} y {} s {}", i, x[i], y[i], s);
            // codes are k-bit two's complement within ±qmax
            let c = ((codes[i] << (8 - bits)) as i8 >> (8 - bits)) as i32;
            prop_assert!(c.abs() <= qmax);
        }
    }

    #[test]
    fn absmax_element_gets_the_extreme_code((x, g) in case(), bits in 2u32..=8) {
        let q = AbsmaxQuantizer::new(bits, g).unwrap();
        let z = q.quantize(&x).unwrap();
        let y = q.dequantize(&z).unwrap();
        let codes = z.unpacked_codes();
        let groups = z.groups();
        let mut amax = vec![(0f32, usize::MAX); groups];
        for (i, &v) in x.iter().enumerate() {
            let a = &mut amax[group_of(g, x.len(), i)];
            if v.abs() > a.0 { *a = (v.abs(), i); }
        }
        for (gi, &(a, i)) in amax.iter().enumerate() {
            if i == usize::MAX {
                prop_assert_eq!(z.scales()[gi], 0.0);
                continue;
            }
            let c = ((codes[i] << (8 - bits)) as i8 >> (8 - bits)) as i32;
            prop_assert_eq!(c.abs(), q.qmax());
            // comes back within one rounding of the scale: |x' - x| <= ulp(x)
            let ulp = f32::from_bits(a.to_bits() + 1) - a;
            prop_assert!((y[i].abs() - a).abs() <= ulp, "{} vs {}", y[i], a);
        }
    }

    #[test]
    fn affine_error_at_most_half_a_step((x, g) in case(), bits in 1u32..=8) {
        let q = AffineQuantizer::new(bits, g).unwrap();
        let z = q.quantize(&x).unwrap();
        let y = q.dequantize(&z).unwrap();
        for i in 0..x.len() {
            let gi = group_of(g, x.len(), i);
            let s = z.scales()[gi];
            prop_assert!(within_half_step(x[i], y[i], s), "i {} x {} y {} s {} z {}", i, x[i], y[i], s, z.zero_points()[gi]);
            if x[i] == 0.0 { prop_assert_eq!(y[i], 0.0); }
        }
    }

    #[test]
    fn requantizing_the_dequantized_gives_the_same_codes((x, g) in case(), bits in 2u32..=8, affine in any::<bool>()) {
        let q: Box<dyn Quantizer> = if affine {
            Box::new(AffineQuantizer::new(bits, g).unwrap())
        } else {
            Box::new(AbsmaxQuantizer::new(bits, g).unwrap())
        };
        let z = q.quantize(&x).unwrap();
        let z2 = q.quantize(&q.dequantize(&z).unwrap()).unwrap();
        prop_assert_eq!(z.codes(), z2.codes());
        prop_assert_eq!(z.zero_points(), z2.zero_points());
        for (a, b) in z.scales().iter().zip(z2.scales()) {
            prop_assert!((a - b).abs() <= a.abs() * f32::EPSILON, "{} {}", a, b);
        }
    }

    #[test]
    fn blocks_are_independent_and_splitting_does_not_matter(
        x in values(400), b in 1usize..50, bits in 1u32..=8, cut in 0usize..10, affine in any::<bool>(),
    ) {
        let bits_s = bits.max(2);
        let g = Granularity::PerBlock(b);
        let q: Box<dyn Quantizer> = if affine {
            Box::new(AffineQuantizer::new(bits, g).unwrap())
        } else {
            Box::new(AbsmaxQuantizer::new(bits_s, g).unwrap())
        };
        let whole = q.quantize(&x).unwrap();
        let at = (cut * b).min(x.len() / b * b);
        let (l, r) = x.split_at(at);
        let (zl, zr) = (q.quantize(l).unwrap(), q.quantize(r).unwrap());
        let mut codes = zl.unpacked_codes();
        codes.extend(zr.unpacked_codes());
        prop_assert_eq!(whole.unpacked_codes(), codes);
        let scales: Vec<f32> = zl.scales().iter().chain(zr.scales()).copied().collect();
        prop_assert_eq!(whole.scales(), &scales[..]);
        // Changing one block leaves the others alone.
        if x.len() > b {
            let mut x2 = x.clone();
            for v in &mut x2[..b] { *v = *v * 3.0 + 1.0; }
            let other = q.quantize(&x2).unwrap();
            prop_assert_eq!(&whole.unpacked_codes()[b..], &other.unpacked_codes()[b..]);
            prop_assert_eq!(&whole.scales()[1..], &other.scales()[1..]);
        }
    }

    #[test]
    fn scales_are_values_of_their_format(x in values(200), b in 1usize..40) {
        fn check<S: FloatFormat>(x: &[f32], b: usize) -> Result<(), TestCaseError> {
            let q = AbsmaxQuantizer::<S>::with_scale_format(4, Granularity::PerBlock(b)).unwrap();
            match q.quantize(x) {
                Ok(z) => {
                    for &s in z.scales() {
                        prop_assert_eq!(S::decode_f32(S::encode_f32(s)), s);
                    }
                    let y = q.dequantize(&z).unwrap();
                    // Elements inside the stored range are within half a step.
                    for (i, (&a, &v)) in x.iter().zip(&y).enumerate() {
                        let s = z.scales()[i / b];
                        if a.abs() <= 7.0 * s {
                            prop_assert!(within_half_step(a, v, s), "{} {} {}", a, v, s);
                        }
                    }
                    let back = Quantized::from_bytes(&z.to_bytes()).unwrap();
                    prop_assert_eq!(back, z);
                }
                Err(lowbit::QuantError::ScaleOutOfRange { .. }) => {}
                Err(e) => prop_assert!(false, "{}", e),
            }
            Ok(())
        }
        check::<Fp16>(&x, b)?;
        check::<Bf16>(&x, b)?;
        check::<E4M3>(&x, b)?;
        check::<E8M0>(&x, b)?;
    }

    #[test]
    fn bytes_round_trip_and_corruption_is_an_error((x, g) in case(), bits in 2u32..=8, cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let q = AffineQuantizer::new(bits, g).unwrap();
        let z = q.quantize(&x).unwrap();
        let bytes = z.to_bytes();
        prop_assert_eq!(bytes.len(), z.byte_len());
        prop_assert_eq!(&Quantized::from_bytes(&bytes).unwrap(), &z);
        let n = cut.index(bytes.len());
        prop_assert!(Quantized::from_bytes(&bytes[..n]).is_err());
        let mut bad = bytes.clone();
        let i = flip.0.index(bad.len());
        bad[i] ^= flip.1;
        let _ = Quantized::from_bytes(&bad); // never panics
    }

    #[test]
    fn pack_round_trip(bits in 1u32..=8, raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let codes: Vec<u8> = raw.iter().map(|c| c & ((1u16 << bits) - 1) as u8).collect();
        let mut p = vec![0u8; pack::packed_len(bits, codes.len())];
        pack::pack(bits, &codes, &mut p).unwrap();
        let mut back = vec![0u8; codes.len()];
        pack::unpack(bits, &p, &mut back).unwrap();
        prop_assert_eq!(back, codes);
    }
}

#[test]
fn bad_parameters_are_errors() {
    use lowbit::QuantError as E;
    assert!(matches!(
        AbsmaxQuantizer::new(1, Granularity::PerTensor),
        Err(E::InvalidBits { .. })
    ));
    assert!(matches!(
        AbsmaxQuantizer::new(9, Granularity::PerTensor),
        Err(E::InvalidBits { .. })
    ));
    assert!(matches!(
        AffineQuantizer::new(0, Granularity::PerTensor),
        Err(E::InvalidBits { .. })
    ));
    assert!(matches!(
        AffineQuantizer::new(4, Granularity::PerBlock(0)),
        Err(E::ZeroGroupSize)
    ));
    assert!(matches!(
        AffineQuantizer::new(4, Granularity::PerRow { cols: 0 }),
        Err(E::ZeroGroupSize)
    ));
    let q = AbsmaxQuantizer::new(4, Granularity::PerRow { cols: 3 }).unwrap();
    assert_eq!(q.quantize(&[1.0; 4]), Err(E::NotAMultiple { len: 4, cols: 3 }));
    let z = q.quantize(&[1.0; 6]).unwrap();
    assert_eq!(
        q.dequantize_into(&z, &mut [0.0; 5]),
        Err(E::LengthMismatch { expected: 6, actual: 5 })
    );
    let a = AffineQuantizer::new(4, Granularity::PerRow { cols: 3 }).unwrap();
    assert_eq!(a.dequantize(&z), Err(E::Incompatible("scheme")));
    assert!(q.quantize(&[]).unwrap().is_empty());
    assert_eq!(q.dequantize(&q.quantize(&[]).unwrap()).unwrap(), Vec::<f32>::new());
    assert_eq!(
        AbsmaxQuantizer::<E4M3>::with_scale_format(8, Granularity::PerTensor)
            .unwrap()
            .quantize(&[1e6]),
        Err(E::ScaleOutOfRange {
            group: 0,
            scale: 1e6 / 127.0
        })
    );
    let ignore = AbsmaxQuantizer::new(8, Granularity::PerTensor)
        .unwrap()
        .with_non_finite(NonFinite::Skip);
    assert_eq!(
        ignore
            .dequantize(&ignore.quantize(&[f32::NEG_INFINITY, 2.0]).unwrap())
            .unwrap(),
        [-2.0, 2.0]
    );
}

#[test]
fn quantize_into_reuses_buffers() {
    let q = AbsmaxQuantizer::new(4, Granularity::PerBlock(32)).unwrap();
    let x: Vec<f32> = (0..1000).map(|i| (i as f32).cos()).collect();
    let mut z = Quantized::empty();
    q.quantize_into(&x, &mut z).unwrap();
    let first = z.clone();
    q.quantize_into(&x[..64], &mut z).unwrap();
    q.quantize_into(&x, &mut z).unwrap();
    assert_eq!(z, first);
}

/// The textbook formulas, one element at a time, for comparison with the fast paths.
fn naive_absmax(x: &[f32], b: usize, bits: u32, away: bool) -> (Vec<i32>, Vec<f32>) {
    let qmax = ((1 << (bits - 1)) - 1) as f32;
    let mut codes = Vec::new();
    let mut scales = Vec::new();
    for blk in x.chunks(b) {
        let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
        let s = amax / qmax;
        let inv = if s == 0.0 { 0.0 } else { 1.0 / s };
        scales.push(s);
        for &v in blk {
            let t = (v * inv).clamp(-qmax, qmax);
            codes.push(if away { t.round() } else { t.round_ties_even() } as i32);
        }
    }
    (codes, scales)
}

fn naive_affine(x: &[f32], b: usize, bits: u32) -> (Vec<i32>, Vec<f32>, Vec<i32>) {
    let qmax = ((1 << bits) - 1) as f32;
    let (mut codes, mut scales, mut zps) = (Vec::new(), Vec::new(), Vec::new());
    for blk in x.chunks(b) {
        let lo = blk.iter().fold(0f32, |a, &v| a.min(v));
        let hi = blk.iter().fold(0f32, |a, &v| a.max(v));
        let s = ((hi - lo) / qmax).max(f32::EPSILON);
        let z = (-(lo / s).round_ties_even()).clamp(0.0, qmax);
        scales.push(s);
        zps.push(z as i32);
        for &v in blk {
            codes.push(((v * (1.0 / s)).round_ties_even() + z).clamp(0.0, qmax) as i32);
        }
    }
    (codes, scales, zps)
}

fn block_size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..70, Just(128), Just(256)]
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn fast_paths_match_the_formulas(x in values(600), b in block_size(), bits in 2u32..=8, away in any::<bool>()) {
        let r = if away { Rounding::NearestAway } else { Rounding::NearestEven };
        let q = AbsmaxQuantizer::new(bits, Granularity::PerBlock(b)).unwrap().with_rounding(r).unwrap();
        let z = q.quantize(&x).unwrap();
        let (codes, scales) = naive_absmax(&x, b, bits, away);
        let got: Vec<i32> = z.unpacked_codes().iter().map(|&c| ((c << (8 - bits)) as i8 >> (8 - bits)) as i32).collect();
        prop_assert_eq!(got, codes);
        prop_assert_eq!(z.scales(), &scales[..]);
        let y = q.dequantize(&z).unwrap();
        for (i, v) in y.iter().enumerate() {
            let c = ((z.unpacked_codes()[i] << (8 - bits)) as i8 >> (8 - bits)) as f32;
            prop_assert_eq!(v.to_bits(), (c * scales[i / b]).to_bits());
        }
    }

    #[test]
    fn affine_fast_paths_match_the_formulas(x in values(600), b in block_size(), bits in 1u32..=8) {
        let q = AffineQuantizer::new(bits, Granularity::PerBlock(b)).unwrap();
        let z = q.quantize(&x).unwrap();
        let (codes, scales, zps) = naive_affine(&x, b, bits);
        let got: Vec<i32> = z.unpacked_codes().iter().map(|&c| i32::from(c)).collect();
        prop_assert_eq!(got, codes);
        prop_assert_eq!(z.scales(), &scales[..]);
        let zp: Vec<i32> = z.zero_points().iter().map(|&c| i32::from(c)).collect();
        prop_assert_eq!(zp, zps);
    }
}

/// A corrupt scale-format bias in the header is an error (or a value), never a panic: every
/// single-byte flip of the header of a small affine tensor.
#[test]
fn every_header_byte_flip_is_handled() {
    use lowbit::quant::{AffineQuantizer, Granularity, Quantized, Quantizer};
    let q = AffineQuantizer::new(4, Granularity::PerBlock(4)).unwrap();
    let bytes = q.quantize(&[0.5, -1.0, 2.0, 0.25, 3.0]).unwrap().to_bytes();
    for i in 0..32 {
        for x in 1..=255u8 {
            let mut b = bytes.clone();
            b[i] ^= x;
            if let Ok(z) = Quantized::from_bytes(&b) {
                let mut out = vec![0f32; z.len().min(1 << 16)];
                let _ = q.dequantize_into(&z, &mut out);
            }
        }
    }
}

/// Findings of the robustness campaign (issue 13): each was a panic or a non-finite result.
mod robustness {
    use lowbit::quant::double::DoubleQuant;
    use lowbit::quant::{
        AbsmaxQuantizer, AffineQuantizer, Codebook, CodebookQuantizer, Granularity, Quantized, Quantizer,
    };

    #[test]
    fn subnormal_scale_keeps_the_error_bound() {
        let x = [1e-38f32, 1e-39];
        let q = AbsmaxQuantizer::new(8, Granularity::PerTensor).unwrap();
        let z = q.quantize(&x).unwrap();
        let s = z.scales()[0];
        let y = q.dequantize(&z).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= s / 2.0 * 1.0001 + 1e-45, "{a} -> {b} (scale {s})");
        }
    }

    #[test]
    fn groups_near_f32_max_dequantize_finite() {
        for bits in [6, 8] {
            let q = AbsmaxQuantizer::new(bits, Granularity::PerTensor).unwrap();
            let y = q.dequantize(&q.quantize(&[f32::MAX, -f32::MAX]).unwrap()).unwrap();
            assert!(y.iter().all(|v| v.is_finite()), "{bits}: {y:?}");
        }
        let a = AffineQuantizer::new(8, Granularity::PerTensor).unwrap();
        let y = a.dequantize(&a.quantize(&[-f32::MAX, 0.0]).unwrap()).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
        let dq = DoubleQuant::quantize(&[f32::MAX; 2], 256).unwrap();
        assert!(dq.restore().unwrap().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn huge_block_sizes_are_one_group() {
        let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(1 << 59)).unwrap();
        let z = q.quantize(&[1.0]).unwrap();
        assert_eq!(q.dequantize(&z).unwrap(), [1.0]);
        let a = AbsmaxQuantizer::new(4, Granularity::PerBlock(usize::MAX)).unwrap();
        assert_eq!(a.quantize(&[1.0, 2.0]).unwrap().groups(), 1);
    }

    #[test]
    fn absurd_header_lengths_are_errors() {
        let mut b = AbsmaxQuantizer::new(8, Granularity::PerBlock(2))
            .unwrap()
            .quantize(&[1.0; 4])
            .unwrap()
            .to_bytes();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Quantized::from_bytes(&b).is_err());
        b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(Quantized::from_bytes(&b).is_err());
    }
}
