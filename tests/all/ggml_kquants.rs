//! `compat::ggml`'s K-quants and 5-bit blocks against ggml's own C code: every byte of the
//! blocks `quantize_row_*_ref` and `quantize_*` with an importance matrix write, and every bit
//! of `dequantize_row_*`'s output (`tests/data/ggml_kquants/`, provenance in
//! `tests/data/README.md`).

use crate::common::{bits, data, read_f32};
use lowbit::compat::ggml::{
    quantize_with_imatrix, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K,
    BlockQ6_K, BlockQ8_0, BlockQ8_K, GgmlBlock,
};

/// Compare our blocks with ggml's, block by block; then dequantize ggml's blocks and compare
/// every bit. Returns the bytes compared.
fn compare<B: GgmlBlock>(got: &[B], want_file: &str, n: usize) -> usize {
    let want = std::fs::read(data(want_file)).unwrap();
    let got: &[u8] = bytemuck::cast_slice(got);
    let size = core::mem::size_of::<B>();
    assert_eq!(got.len(), want.len(), "{want_file}: length");
    for (i, (g, w)) in got.chunks(size).zip(want.chunks(size)).enumerate() {
        assert_eq!(g, w, "{want_file}: block {i}");
    }
    let mut blocks = vec![B::zeroed(); want.len() / size];
    bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(&want);
    let mut y = vec![0f32; n];
    B::dequantize_into(&blocks, &mut y).unwrap();
    assert_eq!(
        bits(&y),
        bits(&read_f32(&format!("{want_file}.deq"))),
        "{want_file}.deq"
    );
    assert_eq!(bits(&B::dequantize(&blocks)), bits(&y));
    want.len() + 4 * n
}

fn check<B: GgmlBlock>(name: &str, imatrix: bool) -> usize {
    let x = read_f32("ggml_kquants/input.f32");
    let mut n = compare(
        &B::quantize(&x).unwrap(),
        &format!("ggml_kquants/input.{name}"),
        x.len(),
    );
    if imatrix {
        let xi = read_f32("ggml_kquants/imatrix_x.f32");
        let w = read_f32("ggml_kquants/imatrix_w.f32");
        let got = quantize_with_imatrix::<B>(&xi, w.len(), &w).unwrap();
        n += compare(&got, &format!("ggml_kquants/imatrix.{name}"), xi.len());
    }
    n
}

#[test]
fn q5_0_matches_ggml() {
    check::<BlockQ5_0>("q5_0", true);
}

#[test]
fn q5_1_matches_ggml() {
    check::<BlockQ5_1>("q5_1", true);
}

#[test]
fn legacy_32_blocks_match_ggml_on_these_inputs_too() {
    check::<BlockQ4_0>("q4_0", true);
    check::<BlockQ4_1>("q4_1", true);
    check::<BlockQ8_0>("q8_0", false);
}

#[test]
fn q8_k_matches_ggml() {
    check::<BlockQ8_K>("q8_K", false);
}

#[test]
fn q6_k_matches_ggml() {
    check::<BlockQ6_K>("q6_K", true);
}

#[test]
fn q4_k_matches_ggml() {
    check::<BlockQ4_K>("q4_K", true);
}

#[test]
fn q5_k_matches_ggml() {
    check::<BlockQ5_K>("q5_K", true);
}

#[test]
fn q3_k_matches_ggml() {
    check::<BlockQ3_K>("q3_K", true);
}

#[test]
fn q2_k_matches_ggml() {
    check::<BlockQ2_K>("q2_K", true);
}

mod props {
    use super::*;
    use lowbit::QuantError;
    use proptest::prelude::*;

    /// Round-trip error bound per block (super-block for the K-quants), as a fraction of the
    /// block's largest magnitude, for inputs whose half scales are normal numbers. From the
    /// code spacing for the 32-element types (half a step, or a whole one where ggml clamps
    /// the top code, plus the half rounding of the scale and minimum, which the codes do not
    /// see: up to 2^-11 of the largest magnitude each); for the K-quants, whose scales are searched and then quantized, about
    /// 1.5 × the worst seen over 300 varied super-blocks.
    fn bound<B: GgmlBlock>() -> f32 {
        use lowbit::compat::ggml::GgmlType as T;
        match B::TYPE {
            T::Q4_0 => 0.126,
            T::Q4_1 => 0.069,
            T::Q5_0 => 0.0635,
            T::Q5_1 => 0.0345,
            T::Q8_0 => 0.0045,
            T::Q8_K => 0.004,
            T::Q6_K => 0.09,
            T::Q5_K => 0.12,
            T::Q4_K => 0.13,
            T::Q3_K => 0.34,
            _ => 0.55,
        }
    }

    fn roundtrip_bounded<B: GgmlBlock>(x: &[f32]) -> Result<(), TestCaseError> {
        let y = B::dequantize(&B::quantize(x).unwrap());
        for (i, (xb, yb)) in x.chunks(B::BLOCK).zip(y.chunks(B::BLOCK)).enumerate() {
            let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let err = xb.iter().zip(yb).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            prop_assert!(
                err <= bound::<B>() * amax,
                "{:?} block {}: error {} > {} × {}",
                B::TYPE,
                i,
                err,
                bound::<B>(),
                amax
            );
        }
        Ok(())
    }

    /// `dequantize ∘ quantize` is a projection for the 32-element types: quantizing the
    /// dequantized values gives the same values again (the K-quants' searches need not).
    fn stable<B: GgmlBlock>(x: &[f32]) -> Result<(), TestCaseError> {
        let y = B::dequantize(&B::quantize(x).unwrap());
        let y2 = B::dequantize(&B::quantize(&y).unwrap());
        prop_assert_eq!(bits(&y), bits(&y2), "{:?}", B::TYPE);
        Ok(())
    }

    /// Any input: a typed error or blocks that dequantize to finite values; never a panic.
    fn total<B: GgmlBlock>(x: &[f32], w: &[f32]) -> Result<(), TestCaseError> {
        match B::quantize(x) {
            Ok(b) => {
                prop_assert!(x.len().is_multiple_of(B::BLOCK) && x.iter().all(|v| v.is_finite()));
                prop_assert!(B::dequantize(&b).iter().all(|v| v.is_finite()), "{:?}", B::TYPE);
                let mut short = vec![0f32; x.len().saturating_sub(1)];
                if !b.is_empty() {
                    let r = B::dequantize_into(&b, &mut short);
                    prop_assert!(matches!(r, Err(QuantError::LengthMismatch { .. })), "{:?}", r);
                }
            }
            Err(QuantError::NotWholeBlocks { len, block }) => {
                prop_assert_eq!((len, block), (x.len(), B::BLOCK));
                prop_assert!(!x.len().is_multiple_of(B::BLOCK));
            }
            Err(QuantError::NonFinite { group, index }) => {
                prop_assert!(!x[index].is_finite() && index / B::BLOCK == group);
                prop_assert!(x[..group * B::BLOCK].iter().all(|v| v.is_finite()));
            }
            Err(QuantError::ScaleOutOfRange { group, .. }) => {
                let amax = x[group * B::BLOCK..][..B::BLOCK]
                    .iter()
                    .fold(0.0f32, |a, v| a.max(v.abs()));
                prop_assert!(amax > 6e4, "{:?}: scale out of range for absmax {}", B::TYPE, amax);
            }
            Err(e) => prop_assert!(false, "{:?}: unexpected {:?}", B::TYPE, e),
        }
        // With one row of the whole input and the given weights.
        if !x.is_empty() {
            let r = quantize_with_imatrix::<B>(x, x.len(), w);
            if x.len().is_multiple_of(B::BLOCK) && w.len() == x.len() && w.iter().all(|v| v.is_finite()) {
                if let Ok(b) = r {
                    prop_assert!(B::dequantize(&b).iter().all(|v| v.is_finite()));
                }
            } else {
                prop_assert!(r.is_err());
            }
        }
        // Arbitrary bytes are valid blocks: dequantizing them never panics.
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = bytes.len() / core::mem::size_of::<B>();
        let mut blocks = vec![B::zeroed(); n];
        bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(&bytes[..n * core::mem::size_of::<B>()]);
        let _ = B::dequantize(&blocks);
        Ok(())
    }

    macro_rules! each {
        ($f:ident, $($args:expr),*) => {{
            $f::<BlockQ4_0>($($args),*)?;
            $f::<BlockQ4_1>($($args),*)?;
            $f::<BlockQ5_0>($($args),*)?;
            $f::<BlockQ5_1>($($args),*)?;
            $f::<BlockQ8_0>($($args),*)?;
            $f::<BlockQ8_K>($($args),*)?;
            $f::<BlockQ6_K>($($args),*)?;
            $f::<BlockQ5_K>($($args),*)?;
            $f::<BlockQ4_K>($($args),*)?;
            $f::<BlockQ3_K>($($args),*)?;
            $f::<BlockQ2_K>($($args),*)?;
        }};
    }

    /// Super-blocks of values of magnitude 0.5 to 1000, with an offset, cubed or with outliers.
    fn blocks() -> impl Strategy<Value = Vec<f32>> {
        (1usize..3, 0.5f32..1000.0, -1.0f32..1.0, any::<bool>(), any::<u64>()).prop_map(
            |(n, scale, shift, cube, seed)| {
                let mut s = seed | 1;
                (0..n * 256)
                    .map(|i| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        let v = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                        let v = if cube { v * v * v } else { v };
                        (v + shift) * scale * if i % 61 == 0 { 3.0 } else { 1.0 }
                    })
                    .collect()
            },
        )
    }

    /// Values from every binade, NaN and infinities included, at any length.
    fn anything() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(
            prop_oneof![
                4 => -2.0f32..2.0,
                1 => any::<u32>().prop_map(f32::from_bits),
                1 => Just(0.0f32),
                1 => -1e-38f32..1e-38,
            ],
            0..600,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn roundtrip_error_is_bounded(x in blocks()) {
            each!(roundtrip_bounded, &x);
        }

        #[test]
        fn legacy_roundtrip_is_stable(x in blocks()) {
            stable::<BlockQ4_0>(&x)?;
            stable::<BlockQ4_1>(&x)?;
            stable::<BlockQ5_0>(&x)?;
            stable::<BlockQ5_1>(&x)?;
            stable::<BlockQ8_0>(&x)?;
        }

        #[test]
        fn any_input_gives_a_typed_error_or_finite_blocks(x in anything(), w in prop::collection::vec(any::<u32>().prop_map(f32::from_bits), 0..2)) {
            // Weights: the right length (finite or not) half the time.
            let w: Vec<f32> = if w.len() == 1 { x.iter().map(|v| v.abs() * w[0].abs().min(1.0)).collect() } else { w };
            each!(total, &x, &w);
        }
    }
}
