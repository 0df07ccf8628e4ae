//! Properties of the default histogram calibrator: exactly the same state and range for any
//! order, split and merge tree of the batches; agreement within one bin with a one-pass
//! histogram over all the data; serialisation round trips.

use lowbit::calib::{amax_from_histogram, Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, Range};
use proptest::prelude::*;

use crate::common::Rng;

/// `n` values of distribution `kind`: normal, Laplace with a few outliers, ReLU of a
/// log-normal (many zeros), uniform, and a mixture spanning many binades (subnormals included).
pub fn gen(seed: u64, kind: u8, n: usize) -> Vec<f32> {
    let mut r = Rng(seed);
    let scale = (0.01 + 100.0 * r.unit()) as f32;
    (0..n)
        .map(|i| {
            let v = match kind {
                0 => r.normal(),
                1 => {
                    let u = r.unit() - 0.5;
                    let l = -u.signum() * (1.0 - 2.0 * u.abs()).ln();
                    if i % 997 == 0 {
                        l * 20.0
                    } else {
                        l
                    }
                }
                2 => (r.normal() * 0.8).exp() * if r.unit() < 0.5 { 0.0 } else { 1.0 },
                3 => 2.0 * r.unit() - 1.0,
                _ => r.normal() * 2f64.powi(r.below(60) as i32 - 40) + if r.unit() < 0.01 { 1e-40 } else { 0.0 },
            };
            v as f32 * scale
        })
        .collect()
}

fn shuffle<T>(v: &mut [T], r: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, r.below(i + 1));
    }
}

const METHODS: [Method; 4] = [
    Method::Percentile(99.9),
    Method::Percentile(99.99),
    Method::Entropy { bits: 8 },
    Method::Mse { bits: 8 },
];

/// Calibrate `data` in random batches (after a shuffle, the last value kept in the last batch),
/// each shard in its own calibrator, combined by a random tree of merges.
fn scattered(
    data: &[f32],
    seed: u64,
    shuffle_data: bool,
    make: &dyn Fn() -> HistogramCalibrator,
) -> HistogramCalibrator {
    let mut r = Rng(seed);
    let mut d = data.to_vec();
    if shuffle_data && d.len() > 1 {
        let last = d.len() - 1;
        shuffle(&mut d[..last], &mut r);
    }
    let mut shards = Vec::new();
    let mut at = 0;
    while at < d.len() {
        let mut c = make();
        let nb = 1 + r.below(3);
        for _ in 0..nb {
            let len = (1 + r.below(d.len() / 3 + 1)).min(d.len() - at);
            c.observe(&d[at..at + len]).unwrap();
            c.observe(&[]).unwrap();
            at += len;
        }
        shards.push(c);
    }
    while shards.len() > 1 {
        let i = r.below(shards.len());
        let b = shards.swap_remove(i);
        let j = r.below(shards.len());
        // via bytes half of the time: a shard shipped from another machine
        let b = if r.next() & 1 == 0 {
            HistogramCalibrator::from_bytes(&b.to_bytes()).unwrap()
        } else {
            b
        };
        shards[j].merge(&b).unwrap();
    }
    shards.pop().unwrap_or_else(make)
}

/// One-pass `n`-bin histogram of `|x|` over `[0, max|x|]`.
pub fn one_pass(data: &[f32], n: usize) -> (Vec<u64>, f32) {
    let amax = data.iter().fold(0f32, |a, x| a.max(x.abs()));
    let mut h = vec![0u64; n];
    for x in data {
        let i = if amax > 0.0 {
            (f64::from(x.abs()) / f64::from(amax) * n as f64) as usize
        } else {
            0
        };
        h[i.min(n - 1)] += 1;
    }
    (h, amax)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn histogram_is_order_independent(
        seed in any::<u64>(),
        kind in 0u8..5,
        n in 1usize..6000,
        outlier in prop_oneof![Just(None), Just(Some(1e30f32)), Just(Some(-3.0e5f32)), Just(Some(f32::MAX))],
        symmetric in any::<bool>(),
    ) {
        let mut data = gen(seed, kind, n);
        if let Some(o) = outlier {
            data.push(o); // a huge outlier in the last batch
        }
        let make = || HistogramCalibrator::new(Method::Entropy { bits: 8 }).unwrap().with_symmetric(symmetric);
        let mut whole = make();
        whole.observe(&data).unwrap();
        let a = scattered(&data, seed ^ 1, true, &make);
        let b = scattered(&data, seed ^ 2, false, &make);
        // The whole state is the same, byte for byte ...
        prop_assert_eq!(a.to_bytes(), whole.to_bytes());
        prop_assert_eq!(b.to_bytes(), whole.to_bytes());
        // ... and so is every range, bit for bit.
        let bits = |r: Range| (r.min.to_bits(), r.max.to_bits());
        for m in [METHODS[0], METHODS[2], METHODS[3]] {
            let w = bits(whole.range_with(m, symmetric).unwrap());
            prop_assert_eq!(bits(a.range_with(m, symmetric).unwrap()), w);
        }
        prop_assert_eq!(bits(b.range().unwrap()), bits(whole.range().unwrap()));
        // MinMax too.
        let mut m1 = MinMaxCalibrator::new();
        m1.observe(&data).unwrap();
        let mut m2 = MinMaxCalibrator::new();
        for c in data.rchunks(7) {
            m2.observe(c).unwrap();
        }
        prop_assert_eq!(bits(m1.range().unwrap()), bits(m2.range().unwrap()));
    }

    /// The percentile is within one bin of a one-pass histogram's, for any f32 data: every
    /// value lands at most one linear bin from its one-pass bin.
    #[test]
    fn percentile_within_one_bin_of_one_pass(
        seed in any::<u64>(),
        kind in 0u8..5,
        n in 1usize..30000,
        p in 50.0f64..=100.0,
        outlier in prop_oneof![Just(None), Just(Some(1e4f32)), Just(Some(-50.0f32)), Just(Some(3e38f32))],
    ) {
        let mut data = gen(seed, kind, n);
        if let Some(o) = outlier {
            data.push(o);
        }
        let mut h = HistogramCalibrator::new(Method::Percentile(p)).unwrap();
        for c in data.chunks(1000) {
            h.observe(c).unwrap();
        }
        let (counts, amax) = one_pass(&data, 2048);
        let bin = amax / 2048.0;
        for m in [Method::Percentile(p), Method::Percentile(99.9), Method::Percentile(99.99)] {
            let ours = h.range_with(m, true).unwrap().max;
            let exact = amax_from_histogram(m, &counts, amax).unwrap();
            prop_assert!((ours - exact).abs() <= bin * 1.001, "{:?}: ours {} one-pass {} bin {}", m, ours, exact, bin);
        }
    }

    /// For values with at most 11 significant bits (f16, bf16 and FP8 activations), every fine
    /// bin holds one distinct value: the re-binned histogram *is* the one-pass histogram and
    /// every method gives exactly the one-pass result.
    #[test]
    fn half_precision_data_is_exact_for_every_method(
        seed in any::<u64>(),
        kind in 0u8..5,
        n in 1usize..30000,
        bf16 in any::<bool>(),
        outlier in prop_oneof![Just(None), Just(Some(1e4f32)), Just(Some(-50.0f32))],
    ) {
        let mut data = gen(seed, kind, n);
        if let Some(o) = outlier {
            data.push(o);
        }
        for x in data.iter_mut() {
            *x = if bf16 { half::bf16::from_f32(*x).to_f32() } else { half::f16::from_f32(*x).to_f32() };
            if !x.is_finite() {
                *x = 0.0;
            }
        }
        let mut h = HistogramCalibrator::new(Method::Percentile(99.9)).unwrap();
        for c in data.chunks(777) {
            h.observe(c).unwrap();
        }
        let (counts, amax) = one_pass(&data, 2048);
        for m in METHODS {
            let ours = h.range_with(m, true).unwrap().max;
            let exact = amax_from_histogram(m, &counts, amax).unwrap();
            prop_assert_eq!(ours, exact, "{:?}", m);
        }
    }
}

#[test]
fn minilm_is_order_independent_and_accurate() {
    let mut exact_matches = 0;
    let mut total = 0;
    for (file, key) in [
        ("calib/minilm_L0_ffn_up_in.npz", "x"),
        ("calib/minilm_L0_ffn_down_in.npz", "x"),
        ("calib/minilm_L0_query_in.npz", "x"),
        ("calib/synthetic_dists.npz", "syn_laplace_outlier"),
    ] {
        let Some((x, rows)) = crate::calib_compat::load(file, key) else {
            eprintln!("skipped: ../shared/refs not present");
            return;
        };
        let (counts, amax) = one_pass(&x, 2048);
        let bin = amax / 2048.0;
        let cal = |rev| {
            let mut c = HistogramCalibrator::new(Method::Entropy { bits: 8 }).unwrap();
            for b in crate::calib_compat::batches(&x, rows, rev) {
                c.observe(b).unwrap();
            }
            c
        };
        let (fwd, rev) = (cal(false), cal(true));
        assert_eq!(fwd.to_bytes(), rev.to_bytes());
        for m in METHODS {
            let a = fwd.range_with(m, true).unwrap();
            assert_eq!(a, rev.range_with(m, true).unwrap());
            let exact = amax_from_histogram(m, &counts, amax).unwrap();
            assert!(
                (a.max - exact).abs() <= bin * 1.001,
                "{file} {m:?}: {} vs one-pass {exact}",
                a.max
            );
            total += 1;
            exact_matches += usize::from(a.max == exact);
        }
    }
    eprintln!("lowbit histogram vs one-pass: {exact_matches} of {total} identical");
}
