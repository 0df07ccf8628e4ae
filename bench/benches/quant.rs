//! Block-32 symmetric quantization against candle's ggml blocks and a memcpy.
//!
//! Throughput is in bytes of `f32` (input for quantize, output for dequantize).
//! Run briefly: `cargo bench -p lowbit-bench --bench quant -- --warm-up-time 1 --measurement-time 3`.

use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ8_0, GgmlType};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lowbit::compat::ggml;
use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantized, Quantizer};

const N: usize = 1 << 20;

fn input() -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..N)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        })
        .collect()
}

fn quantize(c: &mut Criterion) {
    let x = input();
    for bits in [8u32, 4] {
        let mut g = c.benchmark_group(format!("quantize_int{bits}_block32"));
        g.throughput(Throughput::Bytes((N * 4) as u64));
        let mut dst = vec![0f32; N];
        g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&x))));
        let q = AbsmaxQuantizer::new(bits, Granularity::PerBlock(32)).unwrap();
        let mut z = Quantized::empty();
        g.bench_function("lowbit_absmax", |b| {
            b.iter(|| q.quantize_into(black_box(&x), &mut z).unwrap())
        });
        if bits == 8 {
            let mut cb = vec![BlockQ8_0::zeros(); N / 32];
            g.bench_function("candle_q8_0", |b| {
                b.iter(|| BlockQ8_0::from_float(black_box(&x), &mut cb))
            });
            let mut ob = ggml::quantize_q8_0(&x).unwrap();
            g.bench_function("lowbit_ggml_q8_0", |b| {
                b.iter(|| ggml::quantize_q8_0_into(black_box(&x), &mut ob).unwrap())
            });
        } else {
            let mut cb = vec![BlockQ4_0::zeros(); N / 32];
            g.bench_function("candle_q4_0", |b| {
                b.iter(|| BlockQ4_0::from_float(black_box(&x), &mut cb))
            });
            let mut ob = ggml::quantize_q4_0(&x).unwrap();
            g.bench_function("lowbit_ggml_q4_0", |b| {
                b.iter(|| ggml::quantize_q4_0_into(black_box(&x), &mut ob).unwrap())
            });
        }
        g.finish();
    }
}

fn dequantize(c: &mut Criterion) {
    let x = input();
    for bits in [8u32, 4] {
        let mut g = c.benchmark_group(format!("dequantize_int{bits}_block32"));
        g.throughput(Throughput::Bytes((N * 4) as u64));
        let mut y = vec![0f32; N];
        g.bench_function("memcpy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
        let q = AbsmaxQuantizer::new(bits, Granularity::PerBlock(32)).unwrap();
        let z = q.quantize(&x).unwrap();
        g.bench_function("lowbit_absmax", |b| {
            b.iter(|| q.dequantize_into(black_box(&z), &mut y).unwrap())
        });
        if bits == 8 {
            let mut cb = vec![BlockQ8_0::zeros(); N / 32];
            BlockQ8_0::from_float(&x, &mut cb);
            g.bench_function("candle_q8_0", |b| {
                b.iter(|| BlockQ8_0::to_float(black_box(&cb), &mut y))
            });
            let ob = ggml::quantize_q8_0(&x).unwrap();
            g.bench_function("lowbit_ggml_q8_0", |b| {
                b.iter(|| ggml::dequantize_q8_0(black_box(&ob), &mut y).unwrap())
            });
        } else {
            let mut cb = vec![BlockQ4_0::zeros(); N / 32];
            BlockQ4_0::from_float(&x, &mut cb);
            g.bench_function("candle_q4_0", |b| {
                b.iter(|| BlockQ4_0::to_float(black_box(&cb), &mut y))
            });
            let ob = ggml::quantize_q4_0(&x).unwrap();
            g.bench_function("lowbit_ggml_q4_0", |b| {
                b.iter(|| ggml::dequantize_q4_0(black_box(&ob), &mut y).unwrap())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, quantize, dequantize);
criterion_main!(benches);
