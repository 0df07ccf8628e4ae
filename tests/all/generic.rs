//! Every generic function of the crate, instantiated with every format it ships (including
//! `Fp64` and `Fp32`, which are outside the small-format lists): it must compile and work.

use lowbit::format::{cast, FloatFormat, Options, Overflow, Rounding};
use lowbit::scheme::amp::MasterWeights;
use lowbit::scheme::fake_quant;
use lowbit::{Bf16, E4M3Fnuz, E5M2Fnuz, Fp16, Fp32, Fp64, Tf32, E2M1, E2M3, E3M2, E3M4, E4M3, E5M2, E8M0};

fn every_function<F: FloatFormat>() {
    let x = [0.0f32, 1.0, -0.5, 3.25, 1e-3];
    let mut codes = vec![F::Code::default(); x.len()];
    F::encode_slice(&x, &mut codes).unwrap();
    let mut back = [0f32; 5];
    F::decode_slice(&codes, &mut back).unwrap();
    let mut back64 = [0f64; 5];
    F::decode_slice_f64(&codes, &mut back64).unwrap();
    for opts in [
        Options::default(),
        Options::default().with_overflow(Overflow::Saturate),
        Options::rounding(Rounding::TowardZero),
        Options::rounding(Rounding::NearestAway),
    ] {
        let mut c2 = vec![F::Code::default(); x.len()];
        F::encode_slice_with(&x, &mut c2, opts).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        F::encode_slice_f64(&x64, &mut c2, opts).unwrap();
    }
    let mut c3 = vec![F::Code::default(); x.len()];
    F::encode_slice_stochastic(&x, &[7; 5], &mut c3, Overflow::Native).unwrap();
    let mut b16 = [0u16; 5];
    cast::<F, Bf16>(&codes, &mut b16, Options::default()).unwrap();
    let mut c4 = vec![F::Code::default(); x.len()];
    cast::<Bf16, F>(&b16, &mut c4, Options::default()).unwrap();
    let _ = F::decompose(codes[1]).to_string();
    let mut y = [0f32; 5];
    fake_quant::forward_float::<F>(&x, 1.0, &mut y).unwrap();
    let mut dx = [0f32; 5];
    fake_quant::backward_float::<F>(&x, &[1.0; 5], 1.0, &mut dx).unwrap();
    let _ = MasterWeights::<F>::new(&x);
    // Encoding round-trips every representable value it was given.
    for (&v, &b) in x.iter().zip(&back) {
        if F::decode_f32(F::encode_f32(v)) == v {
            assert_eq!(b, v, "{}", F::NAME);
        }
    }
}

#[test]
fn every_generic_function_with_every_format() {
    every_function::<Fp64>();
    every_function::<Fp32>();
    every_function::<Tf32>();
    every_function::<Bf16>();
    every_function::<Fp16>();
    every_function::<E4M3>();
    every_function::<E5M2>();
    every_function::<E4M3Fnuz>();
    every_function::<E5M2Fnuz>();
    every_function::<E3M4>();
    every_function::<E8M0>();
    every_function::<E3M2>();
    every_function::<E2M3>();
    every_function::<E2M1>();
}

#[test]
fn fp64_saturates_like_the_others() {
    let sat = Options::default().with_overflow(Overflow::Saturate);
    assert_eq!(Fp64::encode_f64_with(f64::INFINITY, sat), f64::MAX.to_bits());
    assert_eq!(Fp64::encode_f64_with(f64::NEG_INFINITY, sat), (-f64::MAX).to_bits());
    assert_eq!(Fp32::encode_f64_with(f64::INFINITY, sat), f32::MAX.to_bits());
    assert_eq!(Fp64::encode_f64(f64::INFINITY), f64::INFINITY.to_bits());
}

#[test]
fn signalling_nan_gets_one_code_on_every_path() {
    let snan = f32::from_bits(0x7f80_0001 | 0x0010_0000);
    assert!(snan.is_nan());
    let a = Fp16::encode_f32(snan);
    let b = Fp16::encode_f32_with(snan, Options::default());
    let mut c = [0u16; 1];
    Fp16::encode_slice(&[snan], &mut c).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c[0]);
    assert_eq!(
        Fp64::encode_f32(snan) >> 51 & 1,
        0,
        "binary64 keeps a signalling NaN signalling"
    );
}

#[test]
fn half_and_bytemuck_are_reexported() {
    let blocks = lowbit::compat::ggml::quantize_q8_0(&[1.0; 32]).unwrap();
    let bytes: &[u8] = lowbit::bytemuck::cast_slice(&blocks);
    assert_eq!(bytes.len(), 34);
    assert_eq!(blocks[0].d, lowbit::half::f16::from_f32(1.0 / 127.0));
}

/// Fuzz findings (fuzz/FINDINGS.md F1, F12–F15, F17): each was a debug panic or a wrong value.
#[test]
fn fuzz_findings_are_errors_or_right() {
    use lowbit::format::{Layout, NanRule, Specials};
    // F1: values beyond f64's range; F17: a payload rule without IEEE specials.
    assert!(Layout::try_new(8, 23, -1000, Specials::Finite, NanRule::Canonical).is_err());
    assert!(Layout::try_new(6, 1, -1000, Specials::Ieee, NanRule::Canonical).is_err());
    assert!(Layout::try_new(4, 3, 7, Specials::FiniteNan, NanRule::Payload { quiet: false }).is_err());
    assert!(Layout::try_new(5, 10, 15, Specials::Ieee, NanRule::Payload { quiet: false }).is_ok());
    // F12, F13.
    assert_eq!(lowbit::quant::mx_math::msx_scale_code(3e9), 255);
    assert!(lowbit::quant::codebook::normal_float_offset(32).is_finite());
    // F14.
    let r = lowbit::calib::amax_from_histogram(lowbit::calib::Method::Percentile(99.0), &[u64::MAX, 1], 1.0);
    assert!(r.is_err());
    // F15.
    use lowbit::quant::mx::{MxElement, MxQuantizer, ScaleRule};
    assert!(MxQuantizer::new(MxElement::E4M3, ScaleRule::Floor)
        .unwrap()
        .with_block_size(usize::MAX)
        .is_err());
}

/// F18: `create_fp8_map` with widths whose sum overflows `u32` is refused (bitsandbytes'
/// assertion `e + p == total_bits - has_sign`), not a debug panic or a wrapped sum.
#[test]
fn fuzz_f18_fp8_map_widths_do_not_overflow() {
    use lowbit::compat::bnb::create_fp8_map;
    use lowbit::QuantError;
    for (signed, e, p, t) in [
        (false, u32::MAX, 1, 8),
        (true, u32::MAX, 0, 8),
        (true, 1, u32::MAX, 8),
        (true, u32::MAX, u32::MAX, 6),
        (false, 1 << 31, 1 << 31, 0),
    ] {
        assert!(
            matches!(create_fp8_map(signed, e, p, t), Err(QuantError::InvalidBits { .. })),
            "{signed} {e} {p} {t}"
        );
    }
    assert_eq!(create_fp8_map(true, 2, 1, 4).unwrap().len(), 256);
}

/// F19: an `eps` whose `qmax` steps overflow `f32` is refused; the largest accepted one keeps
/// finite data finite.
#[test]
fn fuzz_f19_affine_eps_is_bounded() {
    use lowbit::quant::{AffineQuantizer, Granularity, Quantizer};
    let q = AffineQuantizer::new(7, Granularity::PerTensor).unwrap();
    assert!(q.with_eps(5.0819484e37).is_err());
    assert!(q.with_eps(f32::MAX).is_err());
    let eps = f32::MAX / 128.0;
    let q = q.with_eps(eps).unwrap();
    for x in [[-f32::MAX, 1e-38], [0.0, f32::MAX], [-1.0, 1.0]] {
        let y = q.dequantize(&q.quantize(&x).unwrap()).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{x:?} -> {y:?}");
    }
    // 8 bits: qmax 255.
    let q8 = AffineQuantizer::new(8, Granularity::PerTensor).unwrap();
    assert!(q8.with_eps(f32::MAX / 200.0).is_err());
    assert!(q8.with_eps(f32::MAX / 256.0).is_ok());
}

/// F20: bnb double quantization of block maxima near `f32::MAX` restores finite scales
/// (saturated at `f32::MAX` where bitsandbytes restores infinity), so finite data
/// dequantizes to finite values; ordinary data keeps bitsandbytes' scales bit for bit (the
/// reference data of `tests/all/bnb.rs`).
#[test]
fn fuzz_f20_double_quant_restores_finite_scales() {
    use lowbit::compat::bnb::{dequantize_4bit, quantize_4bit, QuantType};
    use lowbit::quant::double::DoubleQuant;
    let mut x = vec![0f32; 65];
    x[43] = f32::MAX;
    x[64] = 6.1122547e37;
    for qt in [QuantType::Fp4, QuantType::Nf4] {
        let (packed, st) = quantize_4bit(&x, 64, qt, true).unwrap();
        let a = st.absmax().unwrap();
        assert_eq!(a[0], f32::MAX, "{qt:?}: {a:?}");
        assert!(a.iter().all(|v| v.is_finite()), "{qt:?}: {a:?}");
        let y = dequantize_4bit(&packed, &st).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{qt:?}: {y:?}");
        assert_eq!(y[43], f32::MAX);
    }
    // Parts from a checkpoint: code 255 is the map's 1.0.
    let dq = DoubleQuant::from_parts(vec![255, 0], vec![f32::MAX], f32::MAX, 256).unwrap();
    let r = dq.restore().unwrap();
    assert_eq!(r[0], f32::MAX);
    assert!(r[1].is_finite());
    let dq = DoubleQuant::from_parts(vec![0], vec![f32::MAX], -f32::MAX, 256).unwrap();
    assert_eq!(dq.restore().unwrap(), [-f32::MAX]);
}

/// F16: the MSE search visits only the levels that hold bins, so 16 bits cost the same as the
/// bins allow (a debug build calibrates in well under a second with the default bins), and
/// configurations past `MSE_MAX_STEPS` are refused up front.
#[test]
fn fuzz_f16_mse_search_cost_is_bounded() {
    use lowbit::calib::{Calibrator, Error, HistogramCalibrator, Method, MSE_MAX_STEPS};
    assert_eq!(MSE_MAX_STEPS, 1 << 26);
    let x: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    let start = std::time::Instant::now();
    let mut c = HistogramCalibrator::new(Method::Mse { bits: 16 }).unwrap();
    c.observe(&x).unwrap();
    let r16 = c.range().unwrap();
    assert!(r16.max > 0.9 && r16.max <= 1.0 + 1e-6, "{r16:?}");
    // 8192 bins: every width still allowed.
    let mut c = HistogramCalibrator::new(Method::Mse { bits: 16 })
        .unwrap()
        .with_bins(8192)
        .unwrap();
    c.observe(&x).unwrap();
    c.range().unwrap();
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    // The finding's configuration: 65536 bins at 16 bits (2^32 steps) is refused, as are
    // 16384 at 14; 65536 bins at 11 bits and 16384 at 13 are the widest allowed.
    let bits_err = |r: Result<HistogramCalibrator, Error>| matches!(r, Err(Error::InvalidBits { .. }));
    assert!(bits_err(
        HistogramCalibrator::new(Method::Mse { bits: 16 })
            .unwrap()
            .with_bins(65536)
    ));
    assert!(bits_err(
        HistogramCalibrator::new(Method::Mse { bits: 14 })
            .unwrap()
            .with_bins(16384)
    ));
    assert!(HistogramCalibrator::new(Method::Mse { bits: 13 })
        .unwrap()
        .with_bins(16384)
        .is_ok());
    assert!(HistogramCalibrator::new(Method::Mse { bits: 11 })
        .unwrap()
        .with_bins(65536)
        .is_ok());
    let wide = HistogramCalibrator::new(Method::Mse { bits: 8 })
        .unwrap()
        .with_bins(65536)
        .unwrap();
    assert!(bits_err(wide.with_method(Method::Mse { bits: 12 })));
    let counts = vec![1u64; 65536];
    assert!(lowbit::calib::amax_from_histogram(Method::Mse { bits: 16 }, &counts, 1.0).is_err());
    assert!(lowbit::calib::amax_from_histogram(Method::Mse { bits: 16 }, &counts[..8192], 1.0).is_ok());
}

/// F29 (found by the stable harness at seed 1, 20000 inputs, `calib_minmax`): f32 rounding of
/// the moving averages left the min above the max (`Range { min: 0.0, max: -10.0078125 }`);
/// the two are then averaged exactly enough to keep their order.
#[test]
fn fuzz_f29_moving_average_keeps_min_below_max() {
    use lowbit::calib::{Calibrator, MovingAverageMinMaxCalibrator, Range};
    let mut c = MovingAverageMinMaxCalibrator::new(1.0).unwrap();
    c.observe(&[-3e38, -10.0]).unwrap();
    c.observe(&[-10.0078125]).unwrap();
    // c = 1: the last batch's range.
    assert_eq!(
        c.range().unwrap(),
        Range {
            min: -10.0078125,
            max: -10.0078125
        }
    );
    for k in [0.5f32, 0.999, 1e-3] {
        let mut c = MovingAverageMinMaxCalibrator::new(k).unwrap();
        c.observe(&[-3e38, -10.0]).unwrap();
        c.observe(&[-10.0078125]).unwrap();
        let r = c.range().unwrap();
        assert!(r.min <= r.max && r.min.is_finite(), "{k}: {r:?}");
    }
    // Ordinary data: torch's f32 arithmetic, unchanged.
    let mut c = MovingAverageMinMaxCalibrator::new(0.5).unwrap();
    c.observe(&[0.0, 4.0]).unwrap();
    c.observe(&[-2.0, 2.0]).unwrap();
    assert_eq!(c.range().unwrap(), Range { min: -1.0, max: 3.0 });
}
