//! ggml's K-quants `Q4_K` and `Q6_K` (super-blocks of 256): lowbit's `compat::ggml` against
//! candle's port, ggml's own C (with `LOWBIT_GGML_DIR` set, see `build.rs`) and a memcpy.
//!
//! 1 M roughly normal f32 (4 MiB, in cache); throughput in bytes of `f32` (input for quantize,
//! output for dequantize). ggml's CPU `from_float` for these types calls the reference
//! quantizer, so `ggml_ref` is what llama.cpp runs too.
//! Run briefly: `cargo bench -p lowbit-bench --bench kquant -- --warm-up-time 1 --measurement-time 3`.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, GgmlType};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lowbit::compat::ggml::{BlockQ4_K, BlockQ6_K, GgmlBlock};

const N: usize = 1 << 20;

fn quantize(c: &mut Criterion) {
    let x = lowbit_bench::normal_weights(N);
    let mut dst = vec![0f32; N];

    let mut g = c.benchmark_group("quantize_q4_K");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
    let mut ob = BlockQ4_K::quantize(&x).unwrap();
    g.bench_function("lowbit", |b| {
        b.iter(|| BlockQ4_K::quantize_into(black_box(&x), &mut ob).unwrap())
    });
    let mut cb = vec![BlockQ4K::zeros(); N / 256];
    g.bench_function("candle", |b| b.iter(|| BlockQ4K::from_float(black_box(&x), &mut cb)));
    #[cfg(ggml)]
    g.bench_function("ggml_ref", |b| {
        b.iter(|| lowbit_bench::ggml::reference::quantize_q4_k(black_box(&x), &mut ob))
    });
    g.finish();

    let mut g = c.benchmark_group("quantize_q6_K");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
    let mut ob = BlockQ6_K::quantize(&x).unwrap();
    g.bench_function("lowbit", |b| {
        b.iter(|| BlockQ6_K::quantize_into(black_box(&x), &mut ob).unwrap())
    });
    let mut cb = vec![BlockQ6K::zeros(); N / 256];
    g.bench_function("candle", |b| b.iter(|| BlockQ6K::from_float(black_box(&x), &mut cb)));
    #[cfg(ggml)]
    g.bench_function("ggml_ref", |b| {
        b.iter(|| lowbit_bench::ggml::reference::quantize_q6_k(black_box(&x), &mut ob))
    });
    g.finish();
}

fn dequantize(c: &mut Criterion) {
    let x = lowbit_bench::normal_weights(N);
    let mut y = vec![0f32; N];

    let mut g = c.benchmark_group("dequantize_q4_K");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
    let ob = BlockQ4_K::quantize(&x).unwrap();
    g.bench_function("lowbit", |b| {
        b.iter(|| BlockQ4_K::dequantize_into(black_box(&ob), &mut y).unwrap())
    });
    let mut cb = vec![BlockQ4K::zeros(); N / 256];
    BlockQ4K::from_float(&x, &mut cb);
    g.bench_function("candle", |b| b.iter(|| BlockQ4K::to_float(black_box(&cb), &mut y)));
    #[cfg(ggml)]
    g.bench_function("ggml", |b| {
        b.iter(|| lowbit_bench::ggml::reference::dequantize_q4_k(black_box(&ob), &mut y))
    });
    g.finish();

    let mut g = c.benchmark_group("dequantize_q6_K");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
    let ob = BlockQ6_K::quantize(&x).unwrap();
    g.bench_function("lowbit", |b| {
        b.iter(|| BlockQ6_K::dequantize_into(black_box(&ob), &mut y).unwrap())
    });
    let mut cb = vec![BlockQ6K::zeros(); N / 256];
    BlockQ6K::from_float(&x, &mut cb);
    g.bench_function("candle", |b| b.iter(|| BlockQ6K::to_float(black_box(&cb), &mut y)));
    #[cfg(ggml)]
    g.bench_function("ggml", |b| {
        b.iter(|| lowbit_bench::ggml::reference::dequantize_q6_k(black_box(&ob), &mut y))
    });
    g.finish();
}

criterion_group!(benches, quantize, dequantize);
criterion_main!(benches);
