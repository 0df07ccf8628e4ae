//! NF4 quantize and dequantize of 16 M f32 in blocks of 64, against a memcpy of the same
//! input. Throughput is bytes of f32 (input for quantize, output for dequantize).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lowbit::compat::bnb::{self, QuantType};
use lowbit::quant::{Codebook, CodebookQuantizer, Granularity, Quantized, Quantizer};

const N: usize = 16 << 20;

fn input() -> Vec<f32> {
    lowbit_bench::normal_weights(N)
}

fn nf4(c: &mut Criterion) {
    let src = input();
    let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64)).unwrap();
    let mut packed = Quantized::empty();
    q.quantize_into(&src, &mut packed).unwrap();
    let mut bytes = vec![0u8; N / 2];

    let mut g = c.benchmark_group("nf4_quantize_b64");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.sample_size(10);
    let mut f32_dst = vec![0f32; N];
    g.bench_function("memcpy", |b| b.iter(|| f32_dst.copy_from_slice(black_box(&src))));
    g.bench_function("lowbit CodebookQuantizer nf4", |b| {
        b.iter(|| q.quantize_into(black_box(&src), &mut packed).unwrap())
    });
    g.bench_function("lowbit compat::bnb::quantize_4bit_into nf4", |b| {
        b.iter(|| bnb::quantize_4bit_into(black_box(&src), 64, QuantType::Nf4, false, &mut bytes).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("nf4_dequantize_b64");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.sample_size(10);
    g.bench_function("memcpy", |b| b.iter(|| f32_dst.copy_from_slice(black_box(&src))));
    g.bench_function("lowbit CodebookQuantizer nf4", |b| {
        b.iter(|| q.dequantize_into(black_box(&packed), &mut f32_dst).unwrap())
    });
    g.finish();
}

criterion_group!(benches, nf4);
criterion_main!(benches);
