//! The `rayon` feature: `format::par` and `compat::ggml::par` on a pool of 1 thread and on a
//! pool of every core, beside a memcpy of the same data (one thread).
//!
//! 16 M f32 (64 MiB, out of cache); throughput in bytes of `f32`. On the 2-core development
//! machine "all" is 2 threads.
//! Run briefly: `cargo bench -p lowbit-bench --bench threads -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lowbit::compat::ggml::{self, par as ggml_par, BlockQ4_K, BlockQ8_0, GgmlBlock};
use lowbit::format::{par, Options};
use lowbit::Fp16;

const N: usize = 1 << 24;

fn pools() -> [(String, rayon::ThreadPool); 2] {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    [1, all].map(|n| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        (format!("{n}_threads"), pool)
    })
}

fn threads(c: &mut Criterion) {
    let x = lowbit_bench::normal_weights(N);
    let mut dst = vec![0f32; N];
    let pools = pools();

    let mut g = c.benchmark_group("par_encode_fp16");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
    let mut h = vec![0u16; N];
    for (name, pool) in &pools {
        g.bench_function(name.as_str(), |b| {
            b.iter(|| pool.install(|| par::encode_slice::<Fp16>(black_box(&x), &mut h, Options::default()).unwrap()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("par_quantize_q8_0");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
    let mut q8 = ggml::quantize_q8_0(&x).unwrap();
    for (name, pool) in &pools {
        g.bench_function(name.as_str(), |b| {
            b.iter(|| pool.install(|| ggml_par::quantize_into::<BlockQ8_0>(black_box(&x), &mut q8).unwrap()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("par_dequantize_q8_0");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
    for (name, pool) in &pools {
        g.bench_function(name.as_str(), |b| {
            b.iter(|| pool.install(|| ggml_par::dequantize_into(black_box(&q8), &mut dst).unwrap()))
        });
    }
    g.finish();

    // A K-quant is compute-bound: 1 M f32 is enough to time it.
    let k = &x[..1 << 20];
    let mut g = c.benchmark_group("par_quantize_q4_K");
    g.throughput(Throughput::Bytes((k.len() * 4) as u64));
    let mut q4 = BlockQ4_K::quantize(k).unwrap();
    for (name, pool) in &pools {
        g.bench_function(name.as_str(), |b| {
            b.iter(|| pool.install(|| ggml_par::quantize_into::<BlockQ4_K>(black_box(k), &mut q4).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, threads);
criterion_main!(benches);
