//! A whole model's calibration written to bytes, read back and merged across shards: the same
//! state, bit for bit, as calibrating all the data in one `Calibration`.

use lowbit::calib::{Calibrator, Method, MinMaxCalibrator, MovingAverageMinMaxCalibrator};
use lowbit::compat::ort::QuantType;
use lowbit::scheme::ptq::{ActivationScheme, Calibration, CalibratorKind, QParamsFlavour, Recipe};
use lowbit::SchemeError;
use proptest::prelude::*;
use std::sync::Arc;

/// Min-max, every histogram method, symmetric and not, both flavours.
fn recipe() -> Recipe {
    let s = |k, bits, sym| ActivationScheme::new(k, bits, sym).unwrap();
    Recipe::new()
        .activations("l0.q", s(CalibratorKind::MinMax, 8, false))
        .activations(
            "*.attn.*",
            s(CalibratorKind::Histogram(Method::Percentile(99.9)), 8, true),
        )
        .activations(
            "*.ffn.up",
            s(CalibratorKind::Histogram(Method::Entropy { bits: 8 }), 8, false)
                .with_flavour(QParamsFlavour::Ort {
                    qtype: QuantType::QUInt8,
                    reduce_range: false,
                })
                .unwrap(),
        )
        .activations(
            "*.ffn.*",
            s(CalibratorKind::Histogram(Method::Mse { bits: 4 }), 4, true),
        )
        .activations("*", s(CalibratorKind::MinMax, 16, true))
}

const LAYERS: [&str; 7] = [
    "l0.q",
    "l0.attn.k",
    "l1.attn.v",
    "l0.ffn.up",
    "l1.ffn.down",
    "pooler",
    "l2.ffn.up",
];

/// Deterministic values of many magnitudes, with zeros, negative zeros and repeats.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            match i % 11 {
                0 => 0.0,
                1 => -0.0,
                2 => 3.5,
                _ => (u - 0.4) * 2f32.powi((s % 20) as i32 - 8),
            }
        })
        .collect()
}

/// Feed `(layer, batch)` pairs.
fn feed(c: &mut Calibration<'_>, batches: &[(usize, Vec<f32>)]) {
    for (l, b) in batches {
        c.observe(LAYERS[*l], b).unwrap();
    }
}

fn ranges(c: &Calibration<'_>) -> Vec<(String, Option<(u32, u32)>)> {
    c.layers()
        .map(|l| {
            let r = c.range(l).ok().map(|r| (r.min.to_bits(), r.max.to_bits()));
            (l.to_string(), r)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Shards A and B calibrated apart, merged directly and through bytes in both orders,
    /// give A∪B's ranges and bytes; the result of `finish` is the same too.
    #[test]
    fn shards_merge_to_the_whole(
        seed in any::<u64>(),
        spec in proptest::collection::vec((0usize..LAYERS.len(), 0usize..700, any::<bool>()), 1..14),
    ) {
        let recipe = recipe();
        let batches: Vec<(usize, Vec<f32>, bool)> = spec
            .iter()
            .enumerate()
            .map(|(i, &(l, n, in_a))| (l, values(seed.wrapping_add(i as u64), n), in_a))
            .collect();
        let pick = |a: bool| -> Vec<(usize, Vec<f32>)> {
            batches.iter().filter(|b| b.2 == a).map(|b| (b.0, b.1.clone())).collect()
        };
        let (sa, sb) = (pick(true), pick(false));
        let mut whole = recipe.calibration();
        feed(&mut whole, &sa);
        feed(&mut whole, &sb);
        let want = whole.to_bytes().unwrap();

        let mut a = recipe.calibration();
        feed(&mut a, &sa);
        let mut b = recipe.calibration();
        feed(&mut b, &sb);
        let (ab, bb) = (a.to_bytes().unwrap(), b.to_bytes().unwrap());

        // Directly, A + B and B + A.
        let mut x = recipe.calibration_from_bytes(&ab).unwrap();
        x.merge(&b).unwrap();
        prop_assert!(x.to_bytes().unwrap() == want);
        prop_assert_eq!(ranges(&x), ranges(&whole));
        let mut y = recipe.calibration_from_bytes(&bb).unwrap();
        y.merge(&a).unwrap();
        prop_assert!(y.to_bytes().unwrap() == want);
        // Through bytes, both orders, into a calibration that observed its own shard.
        b.merge(&recipe.calibration_from_bytes(&ab).unwrap()).unwrap();
        prop_assert!(b.to_bytes().unwrap() == want);
        a.merge(&recipe.calibration_from_bytes(&bb).unwrap()).unwrap();
        prop_assert!(a.to_bytes().unwrap() == want);
        prop_assert_eq!(ranges(&a), ranges(&whole));
        // Read back, the whole is the whole; merging an empty calibration changes nothing.
        let mut w2 = recipe.calibration_from_bytes(&want).unwrap();
        prop_assert!(w2.to_bytes().unwrap() == want);
        w2.merge(&recipe.calibration()).unwrap();
        prop_assert!(w2.to_bytes().unwrap() == want);
        // The same parameters at the end (or the same error for an all-empty layer).
        prop_assert_eq!(format!("{:?}", a.finish()), format!("{:?}", whole.finish()));

        // Truncations are errors, never panics (the header byte by byte, then 64 cuts).
        let step = (want.len() / 64).max(1);
        for cut in (0..want.len().min(80)).chain((80..want.len()).step_by(step)) {
            prop_assert!(recipe.calibration_from_bytes(&want[..cut]).is_err(), "cut at {}", cut);
        }
    }

    /// Corrupt bytes are errors or valid states, never panics.
    #[test]
    fn corrupt_states_do_not_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let recipe = recipe();
        let mut c = recipe.calibration();
        for (i, l) in LAYERS.iter().enumerate() {
            c.observe(l, &values(seed ^ i as u64, 50 + i * 30)).unwrap();
        }
        let mut b = c.to_bytes().unwrap();
        for (at, v) in flips {
            let n = b.len();
            b[at % n] ^= v | 1;
        }
        if let Ok(d) = recipe.calibration_from_bytes(&b) {
            // Whatever decodes is a usable state; written back, it reads back the same (the
            // calibrators' padding bytes, and the extremes of a min-max state of count 0, are
            // not kept, so the first writing may differ from a corrupted input).
            let _ = ranges(&d);
            let again = d.to_bytes().unwrap();
            let d2 = recipe.calibration_from_bytes(&again).unwrap();
            prop_assert!(d2.to_bytes().unwrap() == again);
            prop_assert_eq!(ranges(&d2), ranges(&d));
        }
    }
}

#[test]
fn other_recipes_and_custom_calibrators_are_refused() {
    let recipe = recipe();
    let mut c = recipe.calibration();
    c.observe("l0.q", &[1.0, -2.0]).unwrap();
    c.observe("l0.ffn.up", &[0.5, 0.25]).unwrap();
    let bytes = c.to_bytes().unwrap();

    // Another bit width, symmetry, method, flavour, or pattern: another fingerprint.
    let variants = [
        Recipe::new().activations("*", ActivationScheme::new(CalibratorKind::MinMax, 8, false).unwrap()),
        recipe.clone().activations(
            "extra",
            ActivationScheme::new(CalibratorKind::MinMax, 8, false).unwrap(),
        ),
    ];
    for r in &variants {
        assert_eq!(
            r.calibration_from_bytes(&bytes).err(),
            Some(SchemeError::RecipeMismatch)
        );
        let mut other = r.calibration();
        assert_eq!(other.merge(&c).err(), Some(SchemeError::RecipeMismatch));
        assert_eq!(c.merge(&other).err(), Some(SchemeError::RecipeMismatch));
    }
    let ort = |reduce_range| {
        Recipe::new().activations(
            "*",
            ActivationScheme::new(CalibratorKind::MinMax, 8, false)
                .unwrap()
                .with_flavour(QParamsFlavour::Ort {
                    qtype: QuantType::QInt8,
                    reduce_range,
                })
                .unwrap(),
        )
    };
    let (r0, r1) = (ort(false), ort(true));
    let mut c0 = r0.calibration();
    c0.observe("x", &[1.0]).unwrap();
    assert_eq!(
        r1.calibration_from_bytes(&c0.to_bytes().unwrap()).err(),
        Some(SchemeError::RecipeMismatch)
    );
    // An equal recipe built apart is the same recipe.
    let same = recipe.clone();
    let mut s = same.calibration_from_bytes(&bytes).unwrap();
    s.merge(&c).unwrap();
    assert_eq!(s.range("l0.q").unwrap().min, -2.0);
    // The state is unchanged after a refused merge.
    assert_eq!(c.to_bytes().unwrap(), bytes);

    // Custom calibrators: observing works, bytes and merges are refused with the layer's name.
    let custom = Recipe::new().activations(
        "*",
        ActivationScheme::new(
            CalibratorKind::Custom(Arc::new(|| {
                Box::new(MovingAverageMinMaxCalibrator::new(0.1).unwrap()) as _
            })),
            8,
            false,
        )
        .unwrap(),
    );
    let mut m = custom.calibration();
    assert_eq!(
        m.to_bytes().unwrap().len(),
        custom.calibration().to_bytes().unwrap().len()
    );
    m.observe("x", &[1.0]).unwrap();
    let want = Some(SchemeError::CustomCalibrator { layer: "x".into() });
    assert_eq!(m.to_bytes().err(), want);
    let mut n = custom.calibration();
    assert_eq!(n.merge(&m).err(), want);
    assert_eq!(m.merge(&custom.calibration()).err(), None);

    // Layers out of order, unknown layers and trailing bytes are decode errors.
    let mut t = bytes.clone();
    t.push(0);
    assert!(matches!(recipe.calibration_from_bytes(&t), Err(SchemeError::Calib(_))));
    let mm = MinMaxCalibrator::new().to_bytes();
    assert!(matches!(recipe.calibration_from_bytes(&mm), Err(SchemeError::Calib(_))));
}

/// A count that would overflow is refused and nothing changes.
#[test]
fn merge_is_atomic() {
    let recipe = recipe();
    let mut a = recipe.calibration();
    a.observe("pooler", &[1.0]).unwrap();
    a.observe("l0.q", &[1.0]).unwrap();
    // A state whose "pooler" count is u64::MAX, written through the layout.
    let mut big = MinMaxCalibrator::from_bytes(&MinMaxCalibrator::new().to_bytes()).unwrap();
    big.observe(&[2.0]).unwrap();
    let mut mb = big.to_bytes();
    mb[5..13].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut b = recipe.calibration();
    b.observe("pooler", &[2.0]).unwrap();
    b.observe("zz", &[5.0]).unwrap();
    let bb = b.to_bytes().unwrap();
    let small = MinMaxCalibrator::from_bytes(
        &mb[..5]
            .iter()
            .chain(&1u64.to_le_bytes())
            .chain(&mb[13..])
            .copied()
            .collect::<Vec<_>>(),
    )
    .unwrap()
    .to_bytes();
    let at = bb
        .windows(small.len())
        .position(|w| w == small.as_slice())
        .expect("pooler's state");
    let mut bb2 = bb.clone();
    bb2[at..at + small.len()].copy_from_slice(&mb);
    let b2 = recipe.calibration_from_bytes(&bb2).unwrap();
    let before = a.to_bytes().unwrap();
    assert_eq!(
        a.merge(&b2).err(),
        Some(SchemeError::Calib(lowbit::calib::Error::CountOverflow))
    );
    assert_eq!(a.to_bytes().unwrap(), before);
    assert!(a.layers().all(|l| l != "zz"));
}
