//! MX (MXFP8 E4M3, MXFP4) and NVFP4 quantize and dequantize of 16 M f32, against a memcpy of
//! the same input and the plain element encode (`E4M3::encode_slice`, `E2M1::encode_slice`) in
//! the same group. Throughput is bytes of f32 (input for quantize, output for dequantize).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lowbit::quant::mx::{MxElement, MxQuantizer, Nvfp4Quantizer, ScaleRule, TensorScale};
use lowbit::quant::{Quantized, Quantizer};
use lowbit::{FloatFormat, E2M1, E4M3};

const N: usize = 16 << 20;

fn input() -> Vec<f32> {
    lowbit_bench::normal_weights(N)
}

fn mx(c: &mut Criterion) {
    let src = input();
    let mut f32_dst = vec![0f32; N];
    let mut codes = vec![0u8; N];
    let cases: [(&str, Box<dyn Quantizer>); 3] = [
        (
            "mxfp8_e4m3",
            Box::new(MxQuantizer::new(MxElement::E4M3, ScaleRule::Floor).unwrap()),
        ),
        (
            "mxfp4",
            Box::new(MxQuantizer::new(MxElement::E2M1, ScaleRule::Floor).unwrap()),
        ),
        ("nvfp4", Box::new(Nvfp4Quantizer::new(TensorScale::FromAmax).unwrap())),
    ];
    for (name, q) in &cases {
        let mut packed = Quantized::empty();
        q.quantize_into(&src, &mut packed).unwrap();

        let mut g = c.benchmark_group(format!("{name}_quantize"));
        g.throughput(Throughput::Bytes((N * 4) as u64));
        g.sample_size(10);
        g.bench_function("memcpy", |b| b.iter(|| f32_dst.copy_from_slice(black_box(&src))));
        if *name == "mxfp8_e4m3" {
            g.bench_function("E4M3::encode_slice", |b| {
                b.iter(|| E4M3::encode_slice(black_box(&src), &mut codes).unwrap())
            });
        } else {
            g.bench_function("E2M1::encode_slice", |b| {
                b.iter(|| E2M1::encode_slice(black_box(&src), &mut codes).unwrap())
            });
        }
        g.bench_function("lowbit quantize_into", |b| {
            b.iter(|| q.quantize_into(black_box(&src), &mut packed).unwrap())
        });
        g.finish();

        let mut g = c.benchmark_group(format!("{name}_dequantize"));
        g.throughput(Throughput::Bytes((N * 4) as u64));
        g.sample_size(10);
        g.bench_function("memcpy", |b| b.iter(|| f32_dst.copy_from_slice(black_box(&src))));
        g.bench_function("lowbit dequantize_into", |b| {
            b.iter(|| q.dequantize_into(black_box(&packed), &mut f32_dst).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, mx);
criterion_main!(benches);
