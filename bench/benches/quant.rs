//! Block-32 symmetric quantization against candle's ggml blocks, ggml's own C (with
//! `LOWBIT_GGML_DIR` set, see `build.rs`) and a memcpy.
//!
//! Throughput is in bytes of `f32` (input for quantize, output for dequantize). Every group
//! runs at 1 M f32 (4 MiB, in cache) and again at 16 M f32 (the `_64MiB` groups, out of cache).
//! Run briefly: `cargo bench -p lowbit-bench --bench quant -- --warm-up-time 1 --measurement-time 3`.

use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ8_0, GgmlType};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use lowbit::compat::ggml;
use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantized, Quantizer};

/// Element counts and group-name suffixes: 4 MiB and 64 MiB of f32.
const SIZES: [(usize, &str); 2] = [(1 << 20, ""), (16 << 20, "_64MiB")];

fn input(n: usize) -> Vec<f32> {
    let mut u = lowbit_bench::uniform(0x9e37_79b9_7f4a_7c15);
    (0..n).map(|_| u() * 4.0).collect()
}

fn group<'a>(c: &'a mut Criterion, name: String, n: usize) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes((n * 4) as u64));
    if n > 1 << 20 {
        g.sample_size(10);
    }
    g
}

fn quantize(c: &mut Criterion) {
    for (n, suffix) in SIZES {
        let x = input(n);
        for bits in [8u32, 4] {
            let mut g = group(c, format!("quantize_int{bits}_block32{suffix}"), n);
            let mut dst = vec![0f32; n];
            g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
            let q = AbsmaxQuantizer::new(bits, Granularity::PerBlock(32)).unwrap();
            let mut z = Quantized::empty();
            g.bench_function("lowbit_absmax", |b| {
                b.iter(|| q.quantize_into(black_box(&x), &mut z).unwrap())
            });
            if bits == 8 {
                let mut cb = vec![BlockQ8_0::zeros(); n / 32];
                g.bench_function("candle_q8_0", |b| {
                    b.iter(|| BlockQ8_0::from_float(black_box(&x), &mut cb))
                });
                let mut ob = ggml::quantize_q8_0(&x).unwrap();
                g.bench_function("lowbit_ggml_q8_0", |b| {
                    b.iter(|| ggml::quantize_q8_0_into(black_box(&x), &mut ob).unwrap())
                });
                #[cfg(ggml)]
                {
                    use lowbit_bench::ggml::{reference, Ggml};
                    // The CPU backend's from_float: SIMD in the native build, the reference
                    // in the generic one (x86-64 without AVX).
                    for peer in Ggml::both() {
                        g.bench_function(format!("ggml_{}_q8_0", peer.name), |b| {
                            b.iter(|| peer.quantize_q8_0(black_box(&x), &mut ob))
                        });
                    }
                    g.bench_function("ggml_ref_q8_0", |b| {
                        b.iter(|| reference::quantize_q8_0(black_box(&x), &mut ob))
                    });
                }
            } else {
                let mut cb = vec![BlockQ4_0::zeros(); n / 32];
                g.bench_function("candle_q4_0", |b| {
                    b.iter(|| BlockQ4_0::from_float(black_box(&x), &mut cb))
                });
                let mut ob = ggml::quantize_q4_0(&x).unwrap();
                g.bench_function("lowbit_ggml_q4_0", |b| {
                    b.iter(|| ggml::quantize_q4_0_into(black_box(&x), &mut ob).unwrap())
                });
                #[cfg(ggml)]
                {
                    use lowbit_bench::ggml::{reference, Ggml};
                    // from_float calls the reference (compiled without arch flags, as
                    // ggml-base is) in every build; the native one is what llama.cpp runs.
                    let peer = Ggml::native();
                    g.bench_function("ggml_native_q4_0", |b| {
                        b.iter(|| peer.quantize_q4_0(black_box(&x), &mut ob))
                    });
                    g.bench_function("ggml_ref_q4_0", |b| {
                        b.iter(|| reference::quantize_q4_0(black_box(&x), &mut ob))
                    });
                }
            }
            g.finish();
        }
    }
}

fn dequantize(c: &mut Criterion) {
    for (n, suffix) in SIZES {
        let x = input(n);
        for bits in [8u32, 4] {
            let mut g = group(c, format!("dequantize_int{bits}_block32{suffix}"), n);
            let mut y = vec![0f32; n];
            g.bench_function("memcpy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
            let q = AbsmaxQuantizer::new(bits, Granularity::PerBlock(32)).unwrap();
            let z = q.quantize(&x).unwrap();
            g.bench_function("lowbit_absmax", |b| {
                b.iter(|| q.dequantize_into(black_box(&z), &mut y).unwrap())
            });
            if bits == 8 {
                let mut cb = vec![BlockQ8_0::zeros(); n / 32];
                BlockQ8_0::from_float(&x, &mut cb);
                g.bench_function("candle_q8_0", |b| {
                    b.iter(|| BlockQ8_0::to_float(black_box(&cb), &mut y))
                });
                let ob = ggml::quantize_q8_0(&x).unwrap();
                g.bench_function("lowbit_ggml_q8_0", |b| {
                    b.iter(|| ggml::dequantize_q8_0(black_box(&ob), &mut y).unwrap())
                });
                #[cfg(ggml)]
                g.bench_function("ggml_q8_0", |b| {
                    b.iter(|| lowbit_bench::ggml::reference::dequantize_q8_0(black_box(&ob), &mut y))
                });
            } else {
                let mut cb = vec![BlockQ4_0::zeros(); n / 32];
                BlockQ4_0::from_float(&x, &mut cb);
                g.bench_function("candle_q4_0", |b| {
                    b.iter(|| BlockQ4_0::to_float(black_box(&cb), &mut y))
                });
                let ob = ggml::quantize_q4_0(&x).unwrap();
                g.bench_function("lowbit_ggml_q4_0", |b| {
                    b.iter(|| ggml::dequantize_q4_0(black_box(&ob), &mut y).unwrap())
                });
                #[cfg(ggml)]
                g.bench_function("ggml_q4_0", |b| {
                    b.iter(|| lowbit_bench::ggml::reference::dequantize_q4_0(black_box(&ob), &mut y))
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, quantize, dequantize);
criterion_main!(benches);
