//! PTQ recipes, reports and the TFLite presets, against independent computations.

use crate::common::{shared_ref, Npz};
use lowbit::calib::{Method, Range};
use lowbit::format::Format;
use lowbit::quant::Granularity;
use lowbit::scheme::ptq::{
    ActivationScheme, CalibratorKind, QuantizedWeight, Recipe, TensorKind, WeightGranularity, WeightScheme,
};
use lowbit::scheme::tflite;
use lowbit::{FloatFormat, Fp16, SchemeError};

fn weight(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i / cols) as f32))
        .collect()
}

#[test]
fn tflite_dynamic_range_is_int8_per_channel_narrow() {
    let w = weight(6, 10);
    let (q, r) = tflite::dynamic_range()
        .quantize_weight("dense/kernel", &w, &[6, 10])
        .unwrap();
    let QuantizedWeight::Int(q) = q else {
        panic!("int expected")
    };
    assert_eq!(q.bits(), 8);
    assert_eq!(q.granularity(), Granularity::PerRow { cols: 10 });
    for (row, &s) in w.chunks(10).zip(q.scales()) {
        let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(s, amax / 127.0);
    }
    let codes = q.unpacked_codes();
    assert!(codes.iter().all(|&c| (c as i8) >= -127));
    assert!(codes.iter().any(|&c| c as i8 == 127 || c as i8 == -127));
    assert_eq!(r.bits_per_element, 8.0 + 32.0 / 10.0);
    // No activation rules: activations stay float.
    assert!(matches!(
        tflite::dynamic_range().calibration().observe("dense", &[1.0]),
        Err(SchemeError::UnknownLayer { .. })
    ));
}

#[test]
fn tflite_float16_casts_each_weight() {
    let w = weight(3, 7);
    let (q, r) = tflite::float16().quantize_weight("w", &w, &[3, 7]).unwrap();
    let QuantizedWeight::Float {
        format, codes, scaled, ..
    } = &q
    else {
        panic!()
    };
    assert_eq!((*format, *scaled), (Format::Fp16, false));
    for (c, &x) in codes.chunks(2).zip(&w) {
        assert_eq!(u16::from_le_bytes([c[0], c[1]]), Fp16::encode_f32(x));
    }
    assert_eq!(r.bits_per_element, 16.0);
    assert_eq!(r.bytes_after, 2 * w.len());
}

#[test]
fn tflite_full_integer_activation_params() {
    let recipe = tflite::full_integer();
    let mut cal = recipe.calibration();
    let data: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 3.0 + 1.0).collect();
    for b in data.chunks(100) {
        cal.observe("fc", b).unwrap();
    }
    let acts = cal.finish().unwrap();
    let a = &acts["fc"];
    let (lo, hi) = data.iter().fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert_eq!(a.range(), min_max(&data));
    assert!(lo < 0.0 && hi > 0.0);
    let p = a.params();
    assert_eq!((p.qmin(), p.qmax()), (0, 255));
    // torch.ao / TFLite: scale = (max - min) / 255 with the range widened to 0,
    // zero_point = round(-min / scale).
    let scale = (hi - lo) / 255.0;
    assert_eq!(p.scale(), scale);
    assert_eq!(p.zero_point(), (-lo / scale).round_ties_even() as i32);
    // Same as calib's own uint8 qparams for the same range.
    let c = a.range().affine_uint8().unwrap();
    assert_eq!((c.scale, c.zero_point), (p.scale(), p.zero_point()));
}

/// The exact min and max of the data.
fn min_max(data: &[f32]) -> Range {
    let min = data.iter().cloned().fold(f32::INFINITY, f32::min);
    let max = data.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    Range { min, max }
}

#[test]
fn tflite_16x8_is_int16_symmetric() {
    let recipe = tflite::int16x8();
    let mut cal = recipe.calibration();
    cal.observe("fc", &[-7.5, 2.0, 3.25]).unwrap();
    let mut acts = cal.finish().unwrap();
    let a = acts.get_mut("fc").unwrap();
    assert_eq!(a.bits(), 16);
    let p = *a.params();
    assert_eq!(
        (p.qmin(), p.qmax(), p.zero_point(), p.scale()),
        (-32767, 32767, 0, 7.5 / 32767.0)
    );
    // 16-bit activations: relative error about 2^-16 of the range.
    a.evaluate(&[-7.5, 2.0, 3.25, 1e-3]).unwrap();
    let r = a.report();
    assert!(r.max_abs_error <= p.scale() / 2.0 * 1.0001);
    assert_eq!(r.bits_per_element, 16.0);
    let (_, w) = recipe.quantize_weight("fc.weight", &weight(2, 4), &[2, 4]).unwrap();
    assert_eq!(w.bits_per_element, 8.0 + 32.0 / 4.0);
}

#[test]
fn first_matching_rule_wins_and_mixes_precisions() {
    let recipe = Recipe::new()
        .weights(
            "embeddings.*",
            WeightScheme::Float {
                format: Format::Bf16,
                scaled: false,
            },
        )
        .weights(
            "*.attention.*",
            WeightScheme::int(8, WeightGranularity::PerChannel).unwrap(),
        )
        .weights("*", WeightScheme::int(4, WeightGranularity::PerBlock(32)).unwrap());
    let w = weight(8, 64);
    let bits = |name: &str| recipe.quantize_weight(name, &w, &[8, 64]).unwrap().1.bits_per_element;
    assert_eq!(bits("embeddings.word_embeddings.weight"), 16.0);
    assert_eq!(bits("encoder.layer.0.attention.self.query.weight"), 8.0 + 0.5);
    assert_eq!(bits("encoder.layer.0.intermediate.dense.weight"), 4.0 + 1.0);
}

#[test]
fn report_statistics_match_an_independent_computation() {
    let recipe = Recipe::new().weights(
        "*",
        WeightScheme::int_with(3, false, WeightGranularity::PerBlock(16)).unwrap(),
    );
    let w = weight(5, 20);
    let (q, r) = recipe.quantize_weight("w", &w, &[5, 20]).unwrap();
    let y = q.dequantize().unwrap();
    let noise: f64 = w
        .iter()
        .zip(&y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    let signal: f64 = w.iter().map(|&a| f64::from(a).powi(2)).sum();
    let maxe = w.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!((r.mse - noise / 100.0).abs() <= 1e-12 * r.mse.max(1e-30));
    assert!((r.sqnr_db - 10.0 * (signal / noise).log10()).abs() < 1e-9);
    assert_eq!(r.max_abs_error, maxe);
    // 3-bit codes, 7 blocks: packed codes, f32 scales and u8 zero points.
    assert_eq!(r.bytes_after, (100 * 3usize).div_ceil(8) + 7 * 4 + 7);
    assert_eq!(r.kind, TensorKind::Weight);
    assert_eq!(r.scheme, "int3 affine block 16");
}

#[test]
fn bad_input_is_typed() {
    let recipe = Recipe::new()
        .weights(
            "l1.weight",
            WeightScheme::int(8, WeightGranularity::PerChannel).unwrap(),
        )
        .weights("l2.*", WeightScheme::Keep)
        .activations("l1", ActivationScheme::new(CalibratorKind::MinMax, 8, true).unwrap())
        .activations(
            "l2",
            ActivationScheme::new(CalibratorKind::Histogram(Method::Mse { bits: 8 }), 8, true).unwrap(),
        );
    let w = weight(2, 3);
    // Unknown layer names.
    assert!(matches!(
        recipe.quantize_weight("l3.weight", &w, &[2, 3]),
        Err(SchemeError::UnknownLayer { .. })
    ));
    let typo = [
        ("l1.wieght", &w[..], &[2usize, 3][..]),
        ("l2.weight", &w[..], &[2, 3][..]),
    ];
    assert!(matches!(recipe.quantize_weights(typo), Err(SchemeError::UnknownLayer { name }) if name == "l1.wieght"));
    let ok = [("l1.weight", &w[..], &[2usize, 3][..]), ("l2.weight", &w[..], &[6][..])];
    let (out, report) = recipe.quantize_weights(ok).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(report.layers[1].sqnr_db, f64::INFINITY);
    // Shape mismatch, NaN.
    assert!(matches!(
        recipe.quantize_weight("l1.weight", &w, &[4, 3]),
        Err(SchemeError::Shape { .. })
    ));
    let mut bad = w.clone();
    bad[1] = f32::NAN;
    assert!(matches!(
        recipe.quantize_weight("l1.weight", &bad, &[2, 3]),
        Err(SchemeError::NonFinite { .. })
    ));
    // Empty calibration: a layer with only empty batches, and an exact rule never fed.
    let mut cal = recipe.calibration();
    cal.observe("l1", &[]).unwrap();
    cal.observe("l2", &[1.0]).unwrap();
    assert!(matches!(cal.finish(), Err(SchemeError::EmptyCalibration { layer }) if layer == "l1"));
    let mut cal = recipe.calibration();
    cal.observe("l1", &[1.0]).unwrap();
    assert!(matches!(cal.finish(), Err(SchemeError::EmptyCalibration { layer }) if layer == "l2"));
    let mut cal = recipe.calibration();
    assert!(matches!(
        cal.observe("l1", &[f32::INFINITY]),
        Err(SchemeError::Calib(_))
    ));
    // Impossible widths.
    assert!(matches!(
        WeightScheme::int(0, WeightGranularity::PerTensor),
        Err(SchemeError::Bits { .. })
    ));
    assert!(matches!(
        ActivationScheme::new(CalibratorKind::MinMax, 32, false),
        Err(SchemeError::Bits { .. })
    ));
}

#[test]
fn clipped_fraction_counts_values_outside_the_range() {
    let recipe = Recipe::new().activations("*", ActivationScheme::new(CalibratorKind::MinMax, 8, true).unwrap());
    let mut cal = recipe.calibration();
    cal.observe("a", &[-1.0, 1.0]).unwrap();
    let mut acts = cal.finish().unwrap();
    let a = acts.get_mut("a").unwrap();
    // Scale 1/127: |x| >= 127.5/127 clips. 3 of 8 values are beyond.
    a.evaluate(&[0.0, 0.5, -0.99, 1.0, 1.003, 2.0, -5.0, 1.1]).unwrap();
    let r = a.report();
    assert_eq!(r.clipped_fraction, Some(3.0 / 8.0));
    assert_eq!(r.max_abs_error, 4.0);
}

#[test]
fn report_table_is_aligned() {
    let recipe = tflite::full_integer();
    let (_, r1) = recipe.quantize_weight("a.weight", &weight(4, 8), &[4, 8]).unwrap();
    let (_, r2) = recipe
        .quantize_weight("a_much_longer_layer_name.weight", &weight(2, 8), &[2, 8])
        .unwrap();
    let mut cal = recipe.calibration();
    cal.observe("a", &[-1.0, 3.0]).unwrap();
    let mut acts = cal.finish().unwrap();
    acts.get_mut("a").unwrap().evaluate(&[0.5, 4.0]).unwrap();
    let report = lowbit::scheme::ptq::Report {
        layers: vec![r1, r2, acts["a"].report()],
    };
    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 3 + 1); // header, rule, rows, total
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width), "{text}");
    assert!(lines[4].contains("50.0000%"), "{text}");
    assert!(text.contains("total (weights)"));
}

#[test]
fn real_minilm_activations_full_integer() {
    let Some(path) = shared_ref("calib/minilm_L0_query_in.npz") else {
        return;
    };
    let mut npz = Npz::open(path).unwrap();
    let x: Vec<f32> = npz
        .by_name("x")
        .unwrap()
        .unwrap()
        .into_vec::<npyz::half::f16>()
        .unwrap()
        .into_iter()
        .map(f32::from)
        .collect();
    let recipe = tflite::full_integer();
    let mut cal = recipe.calibration();
    for b in x.chunks(384 * 256) {
        cal.observe("q", b).unwrap();
    }
    let mut acts = cal.finish().unwrap();
    let a = acts.get_mut("q").unwrap();
    let exact = min_max(&x);
    assert_eq!(a.range(), exact);
    a.evaluate(&x).unwrap();
    let r = a.report();
    assert_eq!(r.clipped_fraction, Some(0.0)); // min/max calibration clips nothing it saw
    assert!(r.max_abs_error <= a.params().scale() / 2.0 * 1.0001);
    assert!(r.sqnr_db > 25.0, "{}", r.sqnr_db);
}

#[test]
fn nf4_double_quant_storage_and_bnb_equality() {
    use lowbit::compat::bnb::{dequantize_4bit, quantize_4bit, QuantType};
    let w = weight(64, 256); // 16384 elements: 256 blocks of 64, one nested block
    let scheme = |double_quant| WeightScheme::Bnb4 {
        quant_type: QuantType::Nf4,
        block: 64,
        double_quant,
    };
    let (q, r) = Recipe::new()
        .weights("*", scheme(false))
        .quantize_weight("w", &w, &[64, 256])
        .unwrap();
    assert_eq!(r.bits_per_element, 4.5);
    // The recipe's output is bitsandbytes' layout: same bytes as compat::bnb directly.
    let (packed, state) = quantize_4bit(&w, 64, QuantType::Nf4, false).unwrap();
    let QuantizedWeight::Bnb4 { packed: p2, state: s2 } = &q else {
        panic!()
    };
    assert_eq!((p2, s2), (&packed, &state));
    assert_eq!(q.dequantize().unwrap(), dequantize_4bit(&packed, &state).unwrap());
    let (_, r) = Recipe::new()
        .weights("*", scheme(true))
        .quantize_weight("w", &w, &[64, 256])
        .unwrap();
    // 4 bits + an 8-bit code per 64 + one f32 per 256 blocks + the f32 offset.
    assert_eq!(r.bytes_after, 16384 / 2 + 256 + 4 + 4);
    // 4.129 here; QLoRA's 4.127 leaves out the per-tensor offset.
    assert_eq!(r.bits_per_element, 8.0 * (8192.0 + 264.0) / 16384.0);
    assert_eq!(r.scheme, "nf4 block 64 double-quant");
    // bitsandbytes' block sizes only.
    let bad = WeightScheme::Bnb4 {
        quant_type: QuantType::Nf4,
        block: 48,
        double_quant: false,
    };
    assert!(matches!(
        Recipe::new().weights("*", bad).quantize_weight("w", &w, &[64, 256]),
        Err(SchemeError::Quant(_))
    ));
}

#[test]
fn whole_model_sqnr_and_shadowed_exact_rules() {
    let recipe = Recipe::new()
        .weights("*", WeightScheme::int(4, WeightGranularity::PerChannel).unwrap())
        .weights("b", WeightScheme::Keep); // shadowed by "*", but names a tensor that exists
    let (a, b) = (weight(4, 16), weight(2, 16));
    let (out, report) = recipe
        .quantize_weights([("a", &a[..], &[4usize, 16][..]), ("b", &b[..], &[2, 16][..])])
        .unwrap();
    let (mut signal, mut noise) = (0f64, 0f64);
    for ((_, q), x) in out.iter().zip([&a, &b]) {
        for (&u, &v) in x.iter().zip(&q.dequantize().unwrap()) {
            signal += f64::from(u).powi(2);
            noise += (f64::from(u) - f64::from(v)).powi(2);
        }
    }
    assert!((report.weight_sqnr_db() - 10.0 * (signal / noise).log10()).abs() < 1e-9);
    assert_eq!(report.weight_bytes_before(), 4 * 96);
}

mod props {
    use super::*;
    use lowbit::compat::bnb::QuantType;
    use proptest::prelude::*;

    fn schemes() -> Vec<WeightScheme> {
        vec![
            WeightScheme::Keep,
            WeightScheme::int(8, WeightGranularity::PerChannel).unwrap(),
            WeightScheme::int(3, WeightGranularity::PerTensor).unwrap(),
            WeightScheme::int_with(5, false, WeightGranularity::PerBlock(7)).unwrap(),
            WeightScheme::Float {
                format: Format::E4M3,
                scaled: true,
            },
            WeightScheme::Float {
                format: Format::E5M2,
                scaled: false,
            },
            WeightScheme::Bnb4 {
                quant_type: QuantType::Nf4,
                block: 32,
                double_quant: true,
            },
            WeightScheme::Bnb4 {
                quant_type: QuantType::Fp4,
                block: 64,
                double_quant: false,
            },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any scheme on any shape: a consistent report row, or a typed error, never a panic.
        #[test]
        fn report_rows_are_consistent(
            rows in 0usize..9, cols in 0usize..70, which in 0usize..8, bad_shape in any::<bool>(),
            seed in prop::collection::vec(-4f32..4.0, 9 * 70),
        ) {
            let scheme = schemes()[which].clone();
            let w = &seed[..rows * cols];
            let shape = if bad_shape { vec![rows + 1, cols] } else { vec![rows, cols] };
            let res = Recipe::new().weights("*", scheme).quantize_weight("w", w, &shape);
            if bad_shape && cols > 0 {
                let is_shape = matches!(res, Err(SchemeError::Shape { .. }));
                prop_assert!(is_shape, "{:?}", res.err());
                return Ok(());
            }
            let (q, r) = match res {
                Ok(v) => v,
                Err(e) => {
                    let typed = matches!(e, SchemeError::Quant(_) | SchemeError::Shape { .. });
                    prop_assert!(typed, "{:?}", e);
                    return Ok(());
                }
            };
            prop_assert_eq!(r.elements, w.len());
            prop_assert_eq!(r.bytes_before, 4 * w.len());
            prop_assert_eq!(r.bytes_after, q.size_bytes());
            let y = q.dequantize().unwrap();
            prop_assert_eq!(y.len(), w.len());
            let noise: f64 = w.iter().zip(&y).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
            if !w.is_empty() {
                prop_assert!((r.mse - noise / w.len() as f64).abs() <= 1e-9 * (1.0 + r.mse));
                prop_assert_eq!(r.bits_per_element, 8.0 * r.bytes_after as f64 / w.len() as f64);
            }
        }
    }
}

#[test]
fn fp8_scale_never_underflows() {
    let recipe = Recipe::new().weights(
        "*",
        WeightScheme::Float {
            format: Format::E4M3,
            scaled: true,
        },
    );
    for w in [[1e-44f32, 0.0, -1e-44], [0.0; 3], [f32::MAX, -f32::MAX, 1.0]] {
        let (q, r) = recipe.quantize_weight("w", &w, &[3]).unwrap();
        assert!(q.dequantize().unwrap().iter().all(|v| v.is_finite()), "{w:?}");
        assert!(r.mse.is_finite());
    }
}

#[test]
fn shapes_whose_product_overflows_are_errors() {
    use lowbit::scheme::ptq::{WeightGranularity, WeightScheme};
    let s = WeightScheme::int(8, WeightGranularity::PerChannel).unwrap();
    assert!(lowbit::scheme::ptq::quantize_weight_with(&s, "w", &[], &[1 << 32, 1 << 32]).is_err());
    assert!(lowbit::scheme::ptq::quantize_weight_with(&s, "w", &[1.0], &[usize::MAX, 2]).is_err());
}
