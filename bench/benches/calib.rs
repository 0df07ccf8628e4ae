//! Calibration speed: histogram collection of 16 M f32 (against a memcpy of the same data), and
//! range selection from a collected histogram (entropy, MSE), with the compat reproductions of
//! NVIDIA modelopt and ONNX Runtime timed on the same input.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lowbit::calib::{amax_from_histogram, Calibrator, HistogramCalibrator, Method, MinMaxCalibrator};
use lowbit::compat::{modelopt, ort};
use std::hint::black_box;

/// Deterministic Laplace-like activations with a few outliers.
fn data(n: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
            let l = -u.signum() * (1.0 - 2.0 * u.abs()).ln();
            (if i % 100_003 == 0 { l * 30.0 } else { l }) as f32
        })
        .collect()
}

fn collect(c: &mut Criterion) {
    let n = 16 << 20;
    let src = data(n);
    let mut dst = vec![0f32; n];
    let mut g = c.benchmark_group("calib_collect_16M_f32");
    g.throughput(Throughput::Bytes((n * 4) as u64));
    g.sample_size(10);
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 }).unwrap();
    g.bench_function("lowbit_histogram_observe", |b| {
        b.iter(|| h.observe(black_box(&src)).unwrap())
    });
    let mut m = MinMaxCalibrator::new();
    g.bench_function("lowbit_minmax_observe", |b| {
        b.iter(|| m.observe(black_box(&src)).unwrap())
    });
    g.bench_function("compat_modelopt_collect", |b| {
        b.iter_batched(
            modelopt::HistogramCalibrator::new,
            |mut c| c.collect(black_box(&src)).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("compat_ort_collect_2048", |b| {
        b.iter_batched(
            || ort::HistogramCollector::new(ort::Method::Entropy, false, 2048, 128, 0.0).unwrap(),
            |mut c| c.collect(black_box(&src)).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn range(c: &mut Criterion) {
    let src = data(4 << 20);
    let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 }).unwrap();
    h.observe(&src).unwrap();
    let amax = h.amax().unwrap();
    // The 2048-bin histogram of |x| the methods work on.
    let mut counts = vec![0u64; 2048];
    for x in &src {
        counts[((f64::from(x.abs()) / f64::from(amax) * 2048.0) as usize).min(2047)] += 1;
    }
    let mut copy = vec![0u64; 2048];
    let mut g = c.benchmark_group("calib_range_2048_bins");
    g.throughput(Throughput::Bytes(2048 * 8));
    g.bench_function("memcpy", |b| b.iter(|| copy.copy_from_slice(black_box(&counts))));
    g.bench_function("lowbit_entropy", |b| {
        b.iter(|| amax_from_histogram(Method::Entropy { bits: 8 }, black_box(&counts), amax).unwrap())
    });
    // Every candidate evaluated: no empty bins anywhere.
    let dense: Vec<u64> = (0..2048u64).map(|j| 1000 + (j * 7919) % 100).collect();
    g.bench_function("lowbit_entropy_dense", |b| {
        b.iter(|| amax_from_histogram(Method::Entropy { bits: 8 }, black_box(&dense), amax).unwrap())
    });
    g.bench_function("lowbit_mse_dense", |b| {
        b.iter(|| amax_from_histogram(Method::Mse { bits: 8 }, black_box(&dense), amax).unwrap())
    });
    g.bench_function("lowbit_mse", |b| {
        b.iter(|| amax_from_histogram(Method::Mse { bits: 8 }, black_box(&counts), amax).unwrap())
    });
    g.bench_function("lowbit_percentile", |b| {
        b.iter(|| amax_from_histogram(Method::Percentile(99.99), black_box(&counts), amax).unwrap())
    });
    g.bench_function("lowbit_range_entropy_with_rebin", |b| {
        b.iter(|| black_box(&h).range().unwrap())
    });
    g.sample_size(10);
    let mut mo = modelopt::HistogramCalibrator::new();
    mo.collect(&src).unwrap();
    g.bench_function("compat_modelopt_entropy", |b| {
        b.iter(|| mo.compute_amax(modelopt::Method::Entropy).unwrap())
    });
    g.bench_function("compat_modelopt_mse", |b| {
        b.iter(|| mo.compute_amax(modelopt::Method::Mse).unwrap())
    });
    let mut o = ort::HistogramCollector::new(ort::Method::Entropy, false, 2048, 128, 0.0).unwrap();
    o.collect(&src).unwrap();
    g.bench_function("compat_ort_entropy_2048", |b| b.iter(|| o.compute().unwrap()));
    g.finish();
}

criterion_group!(benches, collect, range);
criterion_main!(benches);
