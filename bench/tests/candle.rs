//! lowbit against candle-core's port of ggml's blocks (`compat::ggml`; the comparison with ggml's
//! own reference C functions is in lowbit's `tests/all/ggml.rs`).

use lowbit::compat::ggml;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// candle's blocks keep their fields private, so compare what they dequantize to: equal
/// values for every element mean equal scales and codes (the blocks here are never all zero).
#[test]
fn agrees_with_candle_on_random_data() {
    use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ4_1, BlockQ8_0, GgmlType};
    let mut u = lowbit_bench::uniform(0x2545_f491_4f6c_dd1d);
    let x: Vec<f32> = (0..32 * 256)
        .map(|i| u() * if i % 97 == 0 { 40.0 } else { 3.0 })
        .collect();
    let nb = x.len() / 32;
    let mut theirs = vec![0f32; x.len()];
    let mut ours = vec![0f32; x.len()];

    let mut c8 = vec![BlockQ8_0::zeros(); nb];
    BlockQ8_0::from_float(&x, &mut c8);
    BlockQ8_0::to_float(&c8, &mut theirs);
    ggml::dequantize_q8_0(&ggml::quantize_q8_0(&x).unwrap(), &mut ours).unwrap();
    assert_eq!(bits(&ours), bits(&theirs), "q8_0");

    let mut c4 = vec![BlockQ4_0::zeros(); nb];
    BlockQ4_0::from_float(&x, &mut c4);
    BlockQ4_0::to_float(&c4, &mut theirs);
    ggml::dequantize_q4_0(&ggml::quantize_q4_0(&x).unwrap(), &mut ours).unwrap();
    assert_eq!(bits(&ours), bits(&theirs), "q4_0");

    let mut c41 = vec![BlockQ4_1::zeros(); nb];
    BlockQ4_1::from_float(&x, &mut c41);
    BlockQ4_1::to_float(&c41, &mut theirs);
    ggml::dequantize_q4_1(&ggml::quantize_q4_1(&x).unwrap(), &mut ours).unwrap();
    assert_eq!(bits(&ours), bits(&theirs), "q4_1");
}
