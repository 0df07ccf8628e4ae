//! Property tests of the codebook quantizer, double quantization and the bnb layer.

use lowbit::compat::bnb::{self, QuantType};
use lowbit::quant::codebook::NF4_LEVELS;
use lowbit::quant::double::DoubleQuant;
use lowbit::quant::{pack, Codebook, CodebookQuantizer, Granularity, Quantizer};
use proptest::prelude::*;

fn books() -> Vec<(&'static str, Codebook)> {
    vec![
        ("nf4 exact", Codebook::new(&NF4_LEVELS).unwrap()),
        ("nf2", Codebook::normal_float(2).unwrap()),
        ("nf3", Codebook::normal_float(3).unwrap()),
        ("nf5", Codebook::normal_float(5).unwrap()),
        ("e2m1", Codebook::e2m1()),
        (
            "user",
            Codebook::new(&[-1.0, -0.3, -0.01, 0.02, 0.5, 0.51, 1.0]).unwrap(),
        ),
    ]
}

fn input() -> impl Strategy<Value = (Vec<f32>, usize)> {
    let x = prop::collection::vec(
        prop_oneof![
            4 => -100.0f32..100.0,
            1 => -1e-3f32..1e-3,
            1 => Just(0.0f32),
        ],
        1..300,
    );
    (x, prop::sample::select(vec![2usize, 4, 6, 32, 64]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No other level is closer to `x * (1/absmax)` than the chosen one (exact, in f64).
    #[test]
    fn code_is_nearest_level((x, block) in input()) {
        for (name, cb) in books() {
            let q = CodebookQuantizer::new(cb.clone(), Granularity::PerBlock(block)).unwrap();
            let r = q.quantize(&x).unwrap();
            let codes = r.unpacked_codes();
            for (i, (&v, &c)) in x.iter().zip(&codes).enumerate() {
                let m = r.scales()[i / block];
                let y = if m == 0.0 { 0.0 } else { v * (1.0 / m) };
                let d = (f64::from(cb.decode(c)) - f64::from(y)).abs();
                for &l in cb.levels() {
                    prop_assert!(d <= (f64::from(l) - f64::from(y)).abs(), "{name}: y={y} got {} but {l} is closer", cb.decode(c));
                }
            }
        }
    }

    /// The element of largest magnitude of each block comes back exactly; zero blocks give 0.
    #[test]
    fn absmax_element_round_trips((x, block) in input()) {
        let mut all = books();
        all.push(("nf4 bnb", Codebook::nf4()));
        all.push(("fp4 bnb", Codebook::bnb_fp4()));
        for (name, cb) in all {
            let q = CodebookQuantizer::new(cb, Granularity::PerBlock(block)).unwrap();
            let r = q.quantize(&x).unwrap();
            let y = q.dequantize(&r).unwrap();
            for (xb, yb) in x.chunks(block).zip(y.chunks(block)) {
                let (k, _) = xb.iter().enumerate().fold((0, -1f32), |acc, (k, v)| if v.abs() > acc.1 { (k, v.abs()) } else { acc });
                prop_assert_eq!(yb[k], xb[k], "{}", name);
                if xb.iter().all(|v| *v == 0.0) {
                    prop_assert!(yb.iter().all(|v| *v == 0.0));
                }
            }
        }
    }

    /// Quantizing the dequantized tensor again gives the same scales and values, and the same
    /// codes unless the book has both zeros (E2M1, bnb FP4: a dequantized -0.0 comes back on the
    /// +0 code); the packed bytes are `quant::pack` of the codes.
    #[test]
    fn requantize_is_idempotent((x, block) in input()) {
        let mut all = books();
        all.push(("nf4 bnb", Codebook::nf4()));
        all.push(("fp4 bnb", Codebook::bnb_fp4()));
        for (name, cb) in all {
            let bits = cb.code_bits();
            let signed_zero = cb.levels().iter().any(|l| *l == 0.0 && l.is_sign_negative());
            let q = CodebookQuantizer::new(cb, Granularity::PerBlock(block)).unwrap();
            let r = q.quantize(&x).unwrap();
            let y = q.dequantize(&r).unwrap();
            let r2 = q.quantize(&y).unwrap();
            if !signed_zero {
                prop_assert_eq!(r.codes(), r2.codes(), "{}", name);
            }
            prop_assert_eq!(r.scales(), r2.scales());
            prop_assert_eq!(q.dequantize(&r2).unwrap(), y, "{}", name); // numeric ==: -0.0 == 0.0
            let codes = r.unpacked_codes();
            let mut bytes = vec![0u8; pack::packed_len(bits, codes.len())];
            pack::pack(bits, &codes, &mut bytes).unwrap();
            prop_assert_eq!(&bytes[..], r.codes());
        }
    }

    /// bnb layout: blocks are independent, and the packed bytes are the nibbles of the codes.
    #[test]
    fn bnb_blocks_are_independent(x in prop::collection::vec(-10.0f32..10.0, 64..400), dq in any::<bool>()) {
        for qt in [QuantType::Nf4, QuantType::Fp4] {
            let (p, s) = bnb::quantize_4bit(&x, 32, qt, dq).unwrap();
            let (p1, _) = bnb::quantize_4bit(&x[..32], 32, qt, false).unwrap();
            let (p2, _) = bnb::quantize_4bit(&x[32..64], 32, qt, false).unwrap();
            prop_assert_eq!(&p[..16], &p1[..]);
            prop_assert_eq!(&p[16..32], &p2[..]);
            let y = bnb::dequantize_4bit(&p, &s).unwrap();
            prop_assert_eq!(y.len(), x.len());
        }
    }

    /// Restored double-quantized scales are within half a dynamic-map step of the originals.
    #[test]
    fn double_quant_restores_closely(a in prop::collection::vec(0.01f32..10.0, 1..1000)) {
        let dq = DoubleQuant::quantize(&a, 256).unwrap();
        let back = dq.restore().unwrap();
        for (i, (x, y)) in a.iter().zip(&back).enumerate() {
            // The dynamic map's steps are at most 1/64 of the nested absmax (plus rounding).
            let tol = dq.absmax2()[i / 256] * (1.0 / 64.0) + 1e-6;
            prop_assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
    }
}

#[test]
fn storage_report() {
    let x = vec![0.5f32; 64 * 256 * 4];
    let (_, plain) = bnb::quantize_4bit(&x, 64, QuantType::Nf4, false).unwrap();
    let (_, double) = bnb::quantize_4bit(&x, 64, QuantType::Nf4, true).unwrap();
    assert_eq!(plain.bits_per_element(), 4.5);
    // 4 + 8/64 + 32/(64*256) = 4.127, plus one f32 offset over 65536 elements.
    let want = 4.0 + 8.0 / 64.0 + 32.0 / (64.0 * 256.0) + 32.0 / 65536.0;
    assert!((double.bits_per_element() - want).abs() < 1e-12);
    let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64)).unwrap();
    assert_eq!(q.quantize(&x).unwrap().bits_per_element(), 4.5);
}

#[test]
fn values_remember_their_codebook() {
    use lowbit::quant::{Codebook, CodebookQuantizer, Granularity, Quantizer};
    let x: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
    let nf4 = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64)).unwrap();
    let fp4 = CodebookQuantizer::new(Codebook::bnb_fp4(), Granularity::PerBlock(64)).unwrap();
    let z = nf4.quantize(&x).unwrap();
    assert_eq!(z.scheme(), Codebook::nf4().scheme());
    assert!(fp4.dequantize(&z).is_err(), "NF4 codes decoded with the FP4 table");
    assert_eq!(nf4.dequantize(&z).unwrap().len(), 128);
    // The byte layout keeps it.
    let back = lowbit::quant::Quantized::from_bytes(&z.to_bytes()).unwrap();
    assert!(fp4.dequantize(&back).is_err());
    assert_ne!(
        Codebook::normal_float(3).unwrap().scheme(),
        Codebook::normal_float(4).unwrap().scheme()
    );
}
