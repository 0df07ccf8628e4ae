//! Slice encode f32 → format and decode back, 16 M elements, against `half`, `float8`,
//! `minifloat` and a memcpy of the same input. Throughput is bytes of f32 (input for encode,
//! output for decode), so every figure in a group compares directly.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use half::slice::HalfFloatSliceExt;
use lowbit::{Bf16, FloatFormat, Fp16, E2M1, E4M3, E5M2};

const N: usize = 16 << 20;

fn input() -> Vec<f32> {
    // Deterministic values over a wide range, with a sprinkle of specials.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..N)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            let e = ((s >> 8) % 24) as i32 - 12;
            let v = (u - 0.5) * 2f32.powi(e);
            if i % 4099 == 0 {
                f32::NAN
            } else {
                v
            }
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let src = input();
    let mut g = c.benchmark_group("encode_f32");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.sample_size(10);
    let mut f32_dst = vec![0f32; N];
    g.bench_function("memcpy", |b| b.iter(|| f32_dst.copy_from_slice(black_box(&src))));
    let mut u16_dst = vec![0u16; N];
    g.bench_function("lowbit Fp16", |b| {
        b.iter(|| Fp16::encode_slice(black_box(&src), &mut u16_dst).unwrap())
    });
    let mut h = vec![half::f16::ZERO; N];
    g.bench_function("half f16", |b| b.iter(|| h.convert_from_f32_slice(black_box(&src))));
    g.bench_function("lowbit Bf16", |b| {
        b.iter(|| Bf16::encode_slice(black_box(&src), &mut u16_dst).unwrap())
    });
    let mut hb = vec![half::bf16::ZERO; N];
    g.bench_function("half bf16", |b| b.iter(|| hb.convert_from_f32_slice(black_box(&src))));
    let mut u8_dst = vec![0u8; N];
    g.bench_function("lowbit E4M3", |b| {
        b.iter(|| E4M3::encode_slice(black_box(&src), &mut u8_dst).unwrap())
    });
    g.bench_function("float8 F8E4M3 loop", |b| {
        b.iter(|| {
            for (d, &x) in u8_dst.iter_mut().zip(black_box(&src)) {
                *d = float8::F8E4M3::from_f32(x).to_bits();
            }
        })
    });
    g.bench_function("minifloat F8E4M3FN loop", |b| {
        b.iter(|| {
            for (d, &x) in u8_dst.iter_mut().zip(black_box(&src)) {
                *d = minifloat::F8E4M3FN::from_f32(x).to_bits();
            }
        })
    });
    g.bench_function("lowbit E5M2", |b| {
        b.iter(|| E5M2::encode_slice(black_box(&src), &mut u8_dst).unwrap())
    });
    g.bench_function("lowbit E2M1", |b| {
        b.iter(|| E2M1::encode_slice(black_box(&src), &mut u8_dst).unwrap())
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let src = input();
    let mut g = c.benchmark_group("decode_f32");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.sample_size(10);
    let mut out = vec![0f32; N];
    g.bench_function("memcpy", |b| b.iter(|| out.copy_from_slice(black_box(&src))));
    let mut u16s = vec![0u16; N];
    Fp16::encode_slice(&src, &mut u16s).unwrap();
    g.bench_function("lowbit Fp16", |b| {
        b.iter(|| Fp16::decode_slice(black_box(&u16s), &mut out).unwrap())
    });
    let h: Vec<half::f16> = u16s.iter().map(|&c| half::f16::from_bits(c)).collect();
    g.bench_function("half f16", |b| b.iter(|| black_box(&h).convert_to_f32_slice(&mut out)));
    Bf16::encode_slice(&src, &mut u16s).unwrap();
    g.bench_function("lowbit Bf16", |b| {
        b.iter(|| Bf16::decode_slice(black_box(&u16s), &mut out).unwrap())
    });
    let hb: Vec<half::bf16> = u16s.iter().map(|&c| half::bf16::from_bits(c)).collect();
    g.bench_function("half bf16", |b| {
        b.iter(|| black_box(&hb).convert_to_f32_slice(&mut out))
    });
    let mut u8s = vec![0u8; N];
    E4M3::encode_slice(&src, &mut u8s).unwrap();
    g.bench_function("lowbit E4M3", |b| {
        b.iter(|| E4M3::decode_slice(black_box(&u8s), &mut out).unwrap())
    });
    g.bench_function("float8 F8E4M3 loop", |b| {
        b.iter(|| {
            for (d, &c) in out.iter_mut().zip(black_box(&u8s)) {
                *d = float8::F8E4M3::from_bits(c).to_f32();
            }
        })
    });
    g.bench_function("minifloat F8E4M3FN loop", |b| {
        b.iter(|| {
            for (d, &c) in out.iter_mut().zip(black_box(&u8s)) {
                *d = minifloat::F8E4M3FN::from_bits(c).to_f32();
            }
        })
    });
    E5M2::encode_slice(&src, &mut u8s).unwrap();
    g.bench_function("lowbit E5M2", |b| {
        b.iter(|| E5M2::decode_slice(black_box(&u8s), &mut out).unwrap())
    });
    E2M1::encode_slice(&src, &mut u8s).unwrap();
    g.bench_function("lowbit E2M1", |b| {
        b.iter(|| E2M1::decode_slice(black_box(&u8s), &mut out).unwrap())
    });
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
