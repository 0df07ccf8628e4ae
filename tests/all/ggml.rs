//! `compat::ggml` against blocks made by ggml's own reference C functions (see
//! `tests/data/README.md`). The comparison with candle's port is in `bench/tests/candle.rs`.

use crate::common::{bits, data, read_f32};
use lowbit::compat::ggml;

#[test]
fn q8_0_bytes_and_values_match_ggml() {
    let x = read_f32("ggml/input.f32");
    let blocks = ggml::quantize_q8_0(&x).unwrap();
    let want = std::fs::read(data("ggml/input.q8_0")).unwrap();
    let got: &[u8] = bytemuck::cast_slice(&blocks);
    for (i, (g, w)) in got.chunks(34).zip(want.chunks(34)).enumerate() {
        assert_eq!(g, w, "block {i}");
    }
    assert_eq!(got.len(), want.len());
    let mut y = vec![0f32; x.len()];
    ggml::dequantize_q8_0(bytemuck::cast_slice(&want), &mut y).unwrap();
    assert_eq!(bits(&y), bits(&read_f32("ggml/input.q8_0.deq")));
}

#[test]
fn q4_0_bytes_and_values_match_ggml() {
    let x = read_f32("ggml/input.f32");
    let blocks = ggml::quantize_q4_0(&x).unwrap();
    let want = std::fs::read(data("ggml/input.q4_0")).unwrap();
    let got: &[u8] = bytemuck::cast_slice(&blocks);
    for (i, (g, w)) in got.chunks(18).zip(want.chunks(18)).enumerate() {
        assert_eq!(g, w, "block {i}");
    }
    assert_eq!(got.len(), want.len());
    let mut y = vec![0f32; x.len()];
    ggml::dequantize_q4_0(bytemuck::cast_slice(&want), &mut y).unwrap();
    assert_eq!(bits(&y), bits(&read_f32("ggml/input.q4_0.deq")));
}

#[test]
fn q4_1_bytes_and_values_match_ggml() {
    let x = read_f32("ggml/input.f32");
    let blocks = ggml::quantize_q4_1(&x).unwrap();
    let want = std::fs::read(data("ggml/input.q4_1")).unwrap();
    let got: &[u8] = bytemuck::cast_slice(&blocks);
    for (i, (g, w)) in got.chunks(20).zip(want.chunks(20)).enumerate() {
        assert_eq!(g, w, "block {i}");
    }
    assert_eq!(got.len(), want.len());
    let mut y = vec![0f32; x.len()];
    ggml::dequantize_q4_1(bytemuck::cast_slice(&want), &mut y).unwrap();
    assert_eq!(bits(&y), bits(&read_f32("ggml/input.q4_1.deq")));
}
