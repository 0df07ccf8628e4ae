//! Throughput of the scheme module's slice kernels, each against a memcpy of the same input.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lowbit::scheme::amp::{has_non_finite, GradScaler};
use lowbit::scheme::fake_quant::{self, IntParams};
use lowbit::{Bf16, FloatFormat, E4M3};

const N: usize = 1 << 22;

fn data() -> Vec<f32> {
    (0..N)
        .map(|i| ((i.wrapping_mul(2654435761) % 20001) as f32 - 10000.0) / 3000.0)
        .collect()
}

fn amp(c: &mut Criterion) {
    let x = data();
    let codes: Vec<u16> = x.iter().map(|&v| Bf16::encode_f32(v)).collect();
    let mut g = c.benchmark_group("amp");
    g.throughput(Throughput::Bytes((2 * N) as u64));
    g.bench_function(BenchmarkId::new("has_non_finite", "bf16"), |b| {
        b.iter(|| has_non_finite::<Bf16>(black_box(&codes)))
    });
    let mut dst = vec![0u16; N];
    g.bench_function(BenchmarkId::new("memcpy", "u16"), |b| {
        b.iter(|| dst.copy_from_slice(black_box(&codes)))
    });
    g.throughput(Throughput::Bytes((4 * N) as u64));
    let mut grads = x.clone();
    let mut s = GradScaler::new();
    g.bench_function(BenchmarkId::new("unscale", "f32"), |b| {
        b.iter(|| s.unscale(black_box(&mut grads)))
    });
    let mut d32 = vec![0f32; N];
    g.bench_function(BenchmarkId::new("memcpy", "f32"), |b| {
        b.iter(|| d32.copy_from_slice(black_box(&x)))
    });
    g.finish();
}

fn qat(c: &mut Criterion) {
    let x = data();
    let mut y = vec![0f32; N];
    let p = IntParams::symmetric(8, 3.4 / 127.0).unwrap();
    let mut g = c.benchmark_group("fake_quant");
    g.throughput(Throughput::Bytes((4 * N) as u64));
    g.bench_function("int8_forward", |b| {
        b.iter(|| fake_quant::forward(black_box(&x), &p, &mut y).unwrap())
    });
    let dy = x.clone();
    let mut dx = vec![0f32; N];
    g.bench_function("int8_backward_lsq", |b| {
        b.iter(|| fake_quant::backward_lsq(black_box(&x), &dy, &p, 1.0, &mut dx).unwrap())
    });
    g.bench_function("e4m3_forward", |b| {
        b.iter(|| fake_quant::forward_float::<E4M3>(black_box(&x), 0.01, &mut y).unwrap())
    });
    g.bench_function("memcpy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
    g.finish();
}

criterion_group!(benches, amp, qat);
criterion_main!(benches);
