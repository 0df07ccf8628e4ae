//! Slice encode f32 → format and decode back, 16 M elements, against `half`, `float8`,
//! `minifloat`, ggml's own row conversions (with `LOWBIT_GGML_DIR` set, see `build.rs`) and a
//! memcpy of the same input. Throughput is bytes of f32 (input for encode, output for decode),
//! so every figure in a group compares directly. The `_4MiB` groups repeat FP16 and BF16 on
//! 1 M elements, which stay in cache.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use half::slice::HalfFloatSliceExt;
use lowbit::{Bf16, FloatFormat, Fp16, E2M1, E4M3, E5M2};

const N: usize = 16 << 20;
/// The in-cache size of the `_4MiB` groups.
const N_SMALL: usize = 1 << 20;

fn input(n: usize) -> Vec<f32> {
    // Deterministic values over a wide range, with a sprinkle of specials.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
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
    let src = input(N);
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
    #[cfg(ggml)]
    ggml_encode(&mut g, &src, &mut u16_dst);
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
    let src = input(N);
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
    #[cfg(ggml)]
    ggml_decode(&mut g, &src, &mut out);
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

/// FP16 and BF16 on 4 MiB of f32, in cache.
fn in_cache(c: &mut Criterion) {
    let src = input(N_SMALL);
    let mut g = c.benchmark_group("encode_f32_4MiB");
    g.throughput(Throughput::Bytes((N_SMALL * 4) as u64));
    let mut f32_dst = vec![0f32; N_SMALL];
    g.bench_function("memcpy", |b| b.iter(|| f32_dst.copy_from_slice(black_box(&src))));
    let mut u16_dst = vec![0u16; N_SMALL];
    g.bench_function("lowbit Fp16", |b| {
        b.iter(|| Fp16::encode_slice(black_box(&src), &mut u16_dst).unwrap())
    });
    let mut h = vec![half::f16::ZERO; N_SMALL];
    g.bench_function("half f16", |b| b.iter(|| h.convert_from_f32_slice(black_box(&src))));
    g.bench_function("lowbit Bf16", |b| {
        b.iter(|| Bf16::encode_slice(black_box(&src), &mut u16_dst).unwrap())
    });
    let mut hb = vec![half::bf16::ZERO; N_SMALL];
    g.bench_function("half bf16", |b| b.iter(|| hb.convert_from_f32_slice(black_box(&src))));
    #[cfg(ggml)]
    ggml_encode(&mut g, &src, &mut u16_dst);
    g.finish();

    let mut g = c.benchmark_group("decode_f32_4MiB");
    g.throughput(Throughput::Bytes((N_SMALL * 4) as u64));
    let mut out = vec![0f32; N_SMALL];
    g.bench_function("memcpy", |b| b.iter(|| out.copy_from_slice(black_box(&src))));
    Fp16::encode_slice(&src, &mut u16_dst).unwrap();
    g.bench_function("lowbit Fp16", |b| {
        b.iter(|| Fp16::decode_slice(black_box(&u16_dst), &mut out).unwrap())
    });
    let h: Vec<half::f16> = u16_dst.iter().map(|&c| half::f16::from_bits(c)).collect();
    g.bench_function("half f16", |b| b.iter(|| black_box(&h).convert_to_f32_slice(&mut out)));
    Bf16::encode_slice(&src, &mut u16_dst).unwrap();
    g.bench_function("lowbit Bf16", |b| {
        b.iter(|| Bf16::decode_slice(black_box(&u16_dst), &mut out).unwrap())
    });
    let hb: Vec<half::bf16> = u16_dst.iter().map(|&c| half::bf16::from_bits(c)).collect();
    g.bench_function("half bf16", |b| {
        b.iter(|| black_box(&hb).convert_to_f32_slice(&mut out))
    });
    #[cfg(ggml)]
    ggml_decode(&mut g, &src, &mut out);
    g.finish();
}

/// ggml's CPU row conversions (`ggml_cpu_fp32_to_fp16`, `ggml_cpu_fp32_to_bf16`), both builds.
#[cfg(ggml)]
fn ggml_encode(g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>, src: &[f32], dst: &mut [u16]) {
    for peer in lowbit_bench::ggml::Ggml::both() {
        g.bench_function(format!("ggml {} f16", peer.name), |b| {
            b.iter(|| peer.fp32_to_fp16(black_box(src), dst))
        });
        g.bench_function(format!("ggml {} bf16", peer.name), |b| {
            b.iter(|| peer.fp32_to_bf16(black_box(src), dst))
        });
    }
}

/// ggml's `ggml_cpu_fp16_to_fp32` and `ggml_cpu_bf16_to_fp32` of `src`'s codes, both builds.
#[cfg(ggml)]
fn ggml_decode(g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>, src: &[f32], out: &mut [f32]) {
    let mut f16s = vec![0u16; src.len()];
    Fp16::encode_slice(src, &mut f16s).unwrap();
    let mut bf16s = vec![0u16; src.len()];
    Bf16::encode_slice(src, &mut bf16s).unwrap();
    for peer in lowbit_bench::ggml::Ggml::both() {
        g.bench_function(format!("ggml {} f16", peer.name), |b| {
            b.iter(|| peer.fp16_to_fp32(black_box(&f16s), out))
        });
        g.bench_function(format!("ggml {} bf16", peer.name), |b| {
            b.iter(|| peer.bf16_to_fp32(black_box(&bf16s), out))
        });
    }
}

criterion_group!(benches, encode, decode, in_cache);
criterion_main!(benches);
