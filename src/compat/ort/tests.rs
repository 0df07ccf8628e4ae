use super::*;

/// SplitMix64, for test data.
fn rng(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The prefix-sum entropy loop gives the per-window loop's threshold, bit for bit, on
/// histograms with empty stretches, outliers and odd sizes.
#[test]
fn entropy_matches_the_per_window_loop() {
    let mut seed = 5u64;
    for case in 0..60 {
        let n = [128usize, 129, 130, 200, 255, 256, 300, 517][case % 8];
        let nq = [128usize, 128, 64, 2, 3, 100, 128, 7][case / 8 % 8].min(n);
        let mut hist: Vec<u64> = (0..n)
            .map(|j| {
                let r = rng(&mut seed);
                let centre = (j as f64 - n as f64 / 2.0).abs() / n as f64;
                let v = (1000.0 * (-8.0 * centre).exp()) as u64 + r % 7;
                if r.is_multiple_of(5) || (case % 3 == 0 && j % 11 < 4) {
                    0
                } else {
                    v
                }
            })
            .collect();
        if case % 4 == 1 {
            hist[0] = 3;
            hist[n - 1] = 9;
        }
        if case % 7 == 2 {
            hist.iter_mut().for_each(|h| *h = 0);
            hist[n / 2] = 5;
        }
        let t = 1.0f32 + case as f32;
        let c = HistogramCollector::new(Method::Entropy, false, n, nq, 0.0).unwrap();
        let s = State {
            edges: crate::compat::numpy::linspace_f32(-t, t, n + 1),
            hist,
            min: -t,
            max: t,
            threshold: t,
        };
        let (a, b) = (c.entropy(&s), c.entropy_reference(&s));
        assert_eq!(
            (a.0.to_bits(), a.1.to_bits()),
            (b.0.to_bits(), b.1.to_bits()),
            "case {case}"
        );
    }
}

fn snapshot(c: &HistogramCollector) -> Option<(Vec<u64>, Vec<f32>)> {
    c.histogram().map(|(h, e)| (h.to_vec(), e.to_vec()))
}

/// Growth ONNX Runtime cannot bound (or cannot do: a zero bin width) is refused before
/// anything is allocated, the state unchanged.
#[test]
fn unbounded_growth_is_refused() {
    let cases: [(Method, bool, &[f32], &[f32]); 7] = [
        (Method::Entropy, false, &[1e-6], &[1e6]),         // 2^50 bins
        (Method::Entropy, false, &[1e-30], &[1e30]),       // overflowed usize
        (Method::Entropy, false, &[1e-45], &[1.0]),        // zero stride
        (Method::Percentile, false, &[1e-6], &[1e6]),      // signed, percentile
        (Method::Percentile, true, &[1e-6], &[1e6]),       // |x|, arange
        (Method::Percentile, true, &[0.0, 1e-44], &[1.0]), // zero width
        (Method::Entropy, false, &[-1.0, 1.0], &[1e3]),    // 128 * 1000 > MAX_ENTROPY_BINS
    ];
    for (k, (m, sym, first, second)) in cases.into_iter().enumerate() {
        let mut c = HistogramCollector::new(m, sym, 128, 128, 99.0).unwrap();
        c.collect(first).unwrap();
        let before = snapshot(&c);
        let e = c.collect(second).unwrap_err();
        assert!(matches!(e, Error::TooManyBins { .. }), "case {k}: {e:?}");
        assert_eq!(snapshot(&c), before, "case {k}");
        assert!(c.compute().is_ok(), "case {k}");
    }
    // Growth within the limits is ONNX Runtime's.
    let mut c = HistogramCollector::new(Method::Entropy, false, 128, 128, 0.0).unwrap();
    c.collect(&[-1.0, 1.0]).unwrap();
    c.collect(&[100.0]).unwrap();
    assert_eq!(c.histogram().unwrap().0.len(), 128 + 2 * 6337); // floor(99 / (1/64)) + 1 a side
    let mut c = HistogramCollector::new(Method::Percentile, true, 2048, 128, 99.0).unwrap();
    c.collect(&[1e-3, 1.0]).unwrap();
    c.collect(&[1000.0]).unwrap();
    assert!(c.histogram().unwrap().0.len() > 2_000_000);
}

/// The signed histogram spans [-t, t] in f32: magnitudes above f32::MAX / 2 are refused.
#[test]
fn magnitudes_whose_span_overflows_are_refused() {
    let mut c = HistogramCollector::new(Method::Entropy, false, 128, 128, 0.0).unwrap();
    assert!(matches!(c.collect(&[3e38]), Err(Error::MagnitudeTooLarge { .. })));
    assert!(c.histogram().is_none());
    c.collect(&[1e38, -1.5e38]).unwrap();
    let before = snapshot(&c);
    assert!(matches!(c.collect(&[1.7e38]), Err(Error::MagnitudeTooLarge { .. })));
    assert_eq!(snapshot(&c), before);
    let (lo, hi) = c.compute().unwrap();
    assert!(lo.is_finite() && hi.is_finite());
    // |x| is histogrammed over [min|x|, max|x|]: any finite value.
    let mut p = HistogramCollector::new(Method::Percentile, true, 2048, 128, 99.0).unwrap();
    p.collect(&[f32::MAX, -1.0]).unwrap();
    let (lo, hi) = p.compute().unwrap();
    assert!(hi > 3e38 && hi <= f32::MAX && lo == -1.0, "{lo} {hi}"); // clipped to the data
}

/// Entropy histograms are bounded by `MAX_ENTROPY_BINS` (ONNX Runtime documents no bound;
/// 2^16 and 2^24 bins were accepted and ran for minutes), percentile ones by `MAX_BINS`.
#[test]
fn bin_counts_are_bounded() {
    for n in [1 << 24, 1 << 16, MAX_ENTROPY_BINS + 1] {
        assert!(matches!(
            HistogramCollector::new(Method::Entropy, false, n, 128, 0.0),
            Err(Error::InvalidBins {
                max: MAX_ENTROPY_BINS,
                ..
            })
        ));
    }
    assert!(HistogramCollector::new(Method::Percentile, false, MAX_BINS, 128, 99.0).is_ok());
    assert!(HistogramCollector::new(Method::Percentile, false, MAX_BINS + 1, 128, 99.0).is_err());
    assert!(HistogramCollector::new(Method::Entropy, false, 128, 1, 0.0).is_err());
    assert!(HistogramCollector::new(Method::Percentile, false, 128, 0, f64::NAN).is_err());
}

/// The largest entropy histogram takes time, not forever: 2^14 bins in about a second
/// (half a minute unoptimized, hence release builds only).
#[test]
#[cfg_attr(debug_assertions, ignore = "30 s unoptimized: run with --release")]
fn largest_entropy_histogram_finishes() {
    let n = MAX_ENTROPY_BINS;
    let mut c = HistogramCollector::new(Method::Entropy, false, n, 128, 0.0).unwrap();
    let mut seed = 1u64;
    let batch: Vec<f32> = (0..200_000)
        .map(|_| {
            let u = (rng(&mut seed) >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            (-u.signum() * (1.0 - 2.0 * u.abs()).max(1e-12).ln()) as f32
        })
        .collect();
    c.collect(&batch).unwrap();
    let t = std::time::Instant::now();
    let (lo, hi) = c.compute().unwrap();
    assert!(lo < 0.0 && hi > 0.0);
    eprintln!("entropy over {n} bins: {:?}", t.elapsed());
}
