use super::*;
use crate::quant::{AbsmaxQuantizer, AffineQuantizer, Codebook, CodebookQuantizer, Granularity};

fn portable<K: Kernel>(k: &K, x: &[f32]) -> Quantized {
    let mut q = Quantized::empty();
    let (codes, mut params) = reset(k, x.len(), &mut q).unwrap();
    quantize_portable(k, x, codes, &mut params).unwrap();
    q
}

fn parity<K: Kernel>(k: &K, x: &[f32]) {
    let mut a = Quantized::empty();
    quantize(k, x, &mut a).unwrap();
    assert_eq!(a, portable(k, x));
    let (mut ya, mut yb) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    dequantize(k, &a, &mut ya).unwrap();
    dequantize_portable(k, a.codes(), a.scales(), a.zero_points(), &mut yb);
    assert_eq!(
        ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        yb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

/// The dispatched (AVX2 where the CPU has it) build agrees bit for bit with the portable one.
#[test]
fn dispatched_equals_portable() {
    let x: Vec<f32> = (0..5000).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.013).collect();
    for g in [
        Granularity::PerBlock(32),
        Granularity::PerBlock(64),
        Granularity::PerBlock(33),
        Granularity::PerRow { cols: 100 },
        Granularity::PerColumn { cols: 50 },
        Granularity::PerTensor,
    ] {
        for bits in [2, 3, 4, 8] {
            parity(&AbsmaxQuantizer::new(bits, g).unwrap(), &x);
            parity(&AffineQuantizer::new(bits, g).unwrap(), &x);
        }
        if !matches!(g, Granularity::PerColumn { .. }) {
            parity(
                &CodebookQuantizer::new(Codebook::normal_float(3).unwrap(), g).unwrap(),
                &x,
            );
        }
    }
}

#[test]
fn pad_bytes() {
    assert_eq!(pad_byte(BitOrder::MsbFirst, 4, 4, 7), 0x07);
    assert_eq!(pad_byte(BitOrder::LsbFirst, 4, 4, 7), 0x70);
    assert_eq!(pad_byte(BitOrder::MsbFirst, 3, 6, 7), 0b11);
    assert_eq!(pad_byte(BitOrder::MsbFirst, 2, 2, 1), 0b0001_0101);
    assert_eq!(pad_byte(BitOrder::LsbFirst, 2, 2, 1), 0b0101_0100);
}
