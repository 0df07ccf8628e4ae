//! The ggml peer is wired right: lowbit's blocks are the bytes of ggml's reference quantizers
//! and its dequantized values the bits of ggml's `dequantize_row_*`, on random data, through
//! the same bindings the benches call. Only with `LOWBIT_GGML_DIR` set (`cfg(ggml)`).
#![cfg(ggml)]

use bytemuck::Zeroable;
use lowbit::compat::ggml::{self, BlockQ4_K, BlockQ6_K, GgmlBlock};
use lowbit::{Bf16, FloatFormat, Fp16};
use lowbit_bench::ggml::{reference, Ggml};

/// 64 K values: uniform, scaled per 256-element stretch over 1e-3..1e3, a few outliers.
fn input() -> Vec<f32> {
    let mut u = lowbit_bench::uniform(0x2545_f491_4f6c_dd1d);
    let mut x = lowbit_bench::normal_weights(1 << 16);
    for (i, v) in x.iter_mut().enumerate() {
        let scale = 10f32.powi((i / 256 % 7) as i32 - 3);
        *v = (*v + u()) * scale * if i % 211 == 0 { 30.0 } else { 1.0 };
    }
    x
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Byte-compare two block slices, naming the first block that differs.
fn same_blocks<B: bytemuck::Pod>(ours: &[B], theirs: &[B], what: &str) {
    let size = std::mem::size_of::<B>();
    let (a, b): (&[u8], &[u8]) = (bytemuck::cast_slice(ours), bytemuck::cast_slice(theirs));
    assert_eq!(a.len(), b.len());
    if let Some(i) = a.chunks(size).zip(b.chunks(size)).position(|(p, q)| p != q) {
        panic!("{what}: block {i} of {} differs", ours.len());
    }
}

#[test]
fn q8_0_q4_0_q4_1_are_ggml_reference_bytes() {
    let x = input();
    let n = x.len();
    let (mut y, mut z) = (vec![0f32; n], vec![0f32; n]);

    let ours = ggml::quantize_q8_0(&x).unwrap();
    let mut theirs = vec![ggml::BlockQ8_0::zeroed(); n / 32];
    reference::quantize_q8_0(&x, &mut theirs);
    same_blocks(&ours, &theirs, "q8_0");
    ggml::dequantize_q8_0(&ours, &mut y).unwrap();
    reference::dequantize_q8_0(&theirs, &mut z);
    assert_eq!(bits(&y), bits(&z), "q8_0 dequantize");
    // On x86-64 the generic build's from_float is the reference; the native one is SIMD and
    // may differ from the reference in a rare block, never by more than one code.
    Ggml::generic().quantize_q8_0(&x, &mut theirs);
    same_blocks(&ours, &theirs, "q8_0 generic from_float");
    Ggml::native().quantize_q8_0(&x, &mut theirs);
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a.d.to_bits(), b.d.to_bits(), "q8_0 native scale");
        assert!(a.qs.iter().zip(&b.qs).all(|(p, q)| (*p as i32 - *q as i32).abs() <= 1));
    }

    let ours = ggml::quantize_q4_0(&x).unwrap();
    let mut theirs = vec![ggml::BlockQ4_0::zeroed(); n / 32];
    reference::quantize_q4_0(&x, &mut theirs);
    same_blocks(&ours, &theirs, "q4_0");
    for g in Ggml::both() {
        g.quantize_q4_0(&x, &mut theirs);
        same_blocks(&ours, &theirs, "q4_0 from_float");
    }
    ggml::dequantize_q4_0(&ours, &mut y).unwrap();
    reference::dequantize_q4_0(&theirs, &mut z);
    assert_eq!(bits(&y), bits(&z), "q4_0 dequantize");

    let ours = ggml::quantize_q4_1(&x).unwrap();
    let mut theirs = vec![ggml::BlockQ4_1::zeroed(); n / 32];
    reference::quantize_q4_1(&x, &mut theirs);
    same_blocks(&ours, &theirs, "q4_1");
    ggml::dequantize_q4_1(&ours, &mut y).unwrap();
    reference::dequantize_q4_1(&theirs, &mut z);
    assert_eq!(bits(&y), bits(&z), "q4_1 dequantize");
}

#[test]
fn q4_k_q6_k_are_ggml_reference_bytes() {
    let x = input();
    let n = x.len();
    let (mut y, mut z) = (vec![0f32; n], vec![0f32; n]);

    let ours = BlockQ4_K::quantize(&x).unwrap();
    let mut theirs = vec![BlockQ4_K::zeroed(); n / 256];
    reference::quantize_q4_k(&x, &mut theirs);
    same_blocks(&ours, &theirs, "q4_K");
    for g in Ggml::both() {
        g.quantize_q4_k(&x, &mut theirs);
        same_blocks(&ours, &theirs, "q4_K from_float");
    }
    BlockQ4_K::dequantize_into(&ours, &mut y).unwrap();
    reference::dequantize_q4_k(&theirs, &mut z);
    assert_eq!(bits(&y), bits(&z), "q4_K dequantize");

    let ours = BlockQ6_K::quantize(&x).unwrap();
    let mut theirs = vec![BlockQ6_K::zeroed(); n / 256];
    reference::quantize_q6_k(&x, &mut theirs);
    same_blocks(&ours, &theirs, "q6_K");
    for g in Ggml::both() {
        g.quantize_q6_k(&x, &mut theirs);
        same_blocks(&ours, &theirs, "q6_K from_float");
    }
    BlockQ6_K::dequantize_into(&ours, &mut y).unwrap();
    reference::dequantize_q6_k(&theirs, &mut z);
    assert_eq!(bits(&y), bits(&z), "q6_K dequantize");
}

/// Finite values only: ggml quiets signalling NaNs, which lowbit keeps.
#[test]
fn half_conversions_agree_with_ggml() {
    let x = input();
    let n = x.len();
    let (mut ours, mut theirs) = (vec![0u16; n], vec![0u16; n]);
    let (mut y, mut z) = (vec![0f32; n], vec![0f32; n]);
    for g in Ggml::both() {
        Fp16::encode_slice(&x, &mut ours).unwrap();
        g.fp32_to_fp16(&x, &mut theirs);
        assert_eq!(ours, theirs, "fp16 encode, {}", g.name);
        Fp16::decode_slice(&ours, &mut y).unwrap();
        g.fp16_to_fp32(&ours, &mut z);
        assert_eq!(bits(&y), bits(&z), "fp16 decode, {}", g.name);

        Bf16::encode_slice(&x, &mut ours).unwrap();
        g.fp32_to_bf16(&x, &mut theirs);
        assert_eq!(ours, theirs, "bf16 encode, {}", g.name);
        Bf16::decode_slice(&ours, &mut y).unwrap();
        g.bf16_to_fp32(&ours, &mut z);
        assert_eq!(bits(&y), bits(&z), "bf16 decode, {}", g.name);
    }
}
