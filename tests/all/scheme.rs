//! lowbit::scheme against independent computations: a NumPy reference
//! (`tests/data/scheme/gen_scheme_refs.py`), exact f64 arithmetic, and finite differences.

use crate::common::{data, Npz};
use lowbit::scheme::amp::{count_non_finite, find_non_finite, GradScaler, MasterWeights};
use lowbit::scheme::binary::Binary;
use lowbit::scheme::fake_quant::{self, IntParams};
use lowbit::scheme::log2::Log2Quantizer;
use lowbit::scheme::smooth::{self, SmoothQuant};
use lowbit::scheme::ternary::Ternary;
use lowbit::{Bf16, FloatFormat, Fp16, E4M3, E5M2};
use proptest::prelude::*;

fn refs() -> Npz {
    Npz::open(data("scheme/scheme_refs.npz")).unwrap()
}

fn arr<T: npyz::Deserialize>(name: &str) -> Vec<T> {
    refs()
        .by_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name}"))
        .into_vec()
        .unwrap()
}

#[test]
fn binary_matches_numpy_xnor() {
    let w: Vec<f32> = arr("w");
    let b = Binary::quantize(&w, 6).unwrap();
    assert_eq!(b.alphas(), arr::<f32>("bin_alpha").as_slice());
    let mut y = vec![0.0; w.len()];
    b.dequantize(&mut y).unwrap();
    // NumPy gives sign(0) = 0 * ... = +alpha via where(w < 0): same convention.
    assert_eq!(y, arr::<f32>("bin_deq"));
    assert_eq!(b.packed().len(), 30);
    assert_eq!(b.bits_per_element(), 8.0 * (30.0 + 24.0) / 240.0);
}

#[test]
fn ternary_matches_numpy_twn() {
    let w: Vec<f32> = arr("w");
    let t = Ternary::quantize(&w, 6).unwrap();
    assert_eq!(t.alphas(), arr::<f32>("ter_alpha").as_slice());
    let mut y = vec![0.0; w.len()];
    t.dequantize(&mut y).unwrap();
    assert_eq!(y, arr::<f32>("ter_deq"));
    assert_eq!(t.packed().len(), 60); // two bits per element
}

#[test]
fn log2_matches_numpy_frexp() {
    let x: Vec<f32> = arr("log_x");
    let q = Log2Quantizer::new(3).unwrap().quantize(&x).unwrap();
    assert_eq!(q.e_max(), arr::<i32>("log_emax")[0]);
    let mut y = vec![0.0; x.len()];
    q.dequantize(&mut y).unwrap();
    assert_eq!(y, arr::<f32>("log_deq"));
    assert_eq!(q.packed().len(), 250); // 4 bits per element
}

#[test]
fn smoothquant_scales_match_numpy() {
    let x: Vec<f32> = arr("sq_x");
    let w: Vec<f32> = arr("sq_w");
    let act = smooth::column_absmax(&x, 24).unwrap();
    // The same maxima from the per-channel calibrator fed in batches.
    let mut cal = lowbit::calib::PerChannelMinMaxCalibrator::new(24).unwrap();
    assert!(matches!(
        smooth::absmax_from_calibrator(&cal),
        Err(lowbit::SchemeError::EmptyCalibration { .. })
    ));
    for batch in x.chunks(24 * 5) {
        lowbit::calib::Calibrator::observe(&mut cal, batch).unwrap();
    }
    assert_eq!(smooth::absmax_from_calibrator(&cal).unwrap(), act);
    for (alpha, key) in [(0.5, "sq_s05"), (0.8, "sq_s08")] {
        let s = SmoothQuant::new(alpha).unwrap().scales(&act, &w).unwrap();
        assert_eq!(s, arr::<f32>(key), "alpha {alpha}");
    }
}

/// `X·Wᵀ` in f64 and the bound `Σ|x||w|` for the error check.
fn matmul_t(x: &[f32], w: &[f32], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![];
    let mut bound = vec![];
    for xr in x.chunks_exact(cols) {
        for wr in w.chunks_exact(cols) {
            y.push(xr.iter().zip(wr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum());
            bound.push(
                xr.iter()
                    .zip(wr)
                    .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                    .sum(),
            );
        }
    }
    (y, bound)
}

fn spread(m: &[f32]) -> f32 {
    let max = m.iter().cloned().fold(0f32, f32::max);
    let min = m.iter().cloned().fold(f32::MAX, f32::min);
    max / min
}

#[test]
fn smoothquant_keeps_the_product_and_flattens_outliers() {
    let mut x: Vec<f32> = arr("sq_x");
    let mut w: Vec<f32> = arr("sq_w");
    let (y0, bound) = matmul_t(&x, &w, 24);
    let act = smooth::column_absmax(&x, 24).unwrap();
    let s = SmoothQuant::default().scales(&act, &w).unwrap();
    smooth::apply(&mut x, &mut w, &s).unwrap();
    let (y1, _) = matmul_t(&x, &w, 24);
    for ((a, b), m) in y0.iter().zip(&y1).zip(&bound) {
        // Each of x/s and w·s is rounded once: relative error at most 2^-24 each.
        assert!((a - b).abs() <= 2.5 * f64::from(f32::EPSILON) / 2.0 * m, "{a} {b}");
    }
    // Column 5 of W is zero: that channel's weight maximum clamps at 1e-5 and its activation
    // is divided by a huge factor (harmless, it meets only zero weights). Measure the rest.
    let after = smooth::column_absmax(&x, 24).unwrap();
    let live = |m: &[f32]| {
        m.iter()
            .enumerate()
            .filter(|(j, _)| *j != 5)
            .map(|(_, &v)| v)
            .collect::<Vec<_>>()
    };
    let (before, after) = (spread(&live(&act)), spread(&live(&after)));
    assert!(after < before / 5.0, "{before} -> {after}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn smoothquant_invariance(
        rows in 1usize..6, cols in 1usize..12, outs in 1usize..6, alpha in 0f32..=1.0,
        seed in prop::collection::vec(-3f32..3.0, 6 * 12 + 6 * 12),
        outlier in 1f32..200.0,
    ) {
        let mut x: Vec<f32> = seed[..rows * cols].to_vec();
        let mut w: Vec<f32> = seed[72..72 + outs * cols].iter().map(|v| v * 0.1).collect();
        for r in x.chunks_exact_mut(cols) { r[0] *= outlier; }
        let (y0, bound) = matmul_t(&x, &w, cols);
        let act = smooth::column_absmax(&x, cols).unwrap();
        let s = SmoothQuant::new(alpha).unwrap().scales(&act, &w).unwrap();
        smooth::apply(&mut x, &mut w, &s).unwrap();
        let (y1, _) = matmul_t(&x, &w, cols);
        for ((a, b), m) in y0.iter().zip(&y1).zip(&bound) {
            prop_assert!((a - b).abs() <= 2.5 * f64::from(f32::EPSILON) / 2.0 * m + 1e-30);
        }
    }

    /// Integer fake quant against an exact f64 computation, away from rounding ties.
    #[test]
    fn fake_quant_int_exact(
        bits in 2u32..=8, scale in 0.001f32..10.0, zp_frac in 0f64..1.0, affine in any::<bool>(),
        ks in prop::collection::vec((-300i32..300, -0.45f64..0.45), 1..64),
    ) {
        let p = if affine {
            let zp = (zp_frac * f64::from((1 << bits) - 1)).round() as i32;
            IntParams::affine(bits, scale, zp).unwrap()
        } else {
            IntParams::symmetric(bits, scale).unwrap()
        };
        let x: Vec<f32> = ks.iter().map(|&(k, u)| ((f64::from(k) + u) * f64::from(scale)) as f32).collect();
        let mut y = vec![0.0; x.len()];
        fake_quant::forward(&x, &p, &mut y).unwrap();
        let dy: Vec<f32> = (0..x.len()).map(|i| 1.0 + i as f32).collect();
        let mut dx = vec![0.0; x.len()];
        fake_quant::backward(&x, &dy, &p, &mut dx).unwrap();
        let (z, lo, hi) = (f64::from(p.zero_point()), f64::from(p.qmin()), f64::from(p.qmax()));
        for (i, &xi) in x.iter().enumerate() {
            let r = (f64::from(xi) / f64::from(scale)).round() + z;
            let q = r.clamp(lo, hi);
            prop_assert_eq!(y[i], ((q - z) * f64::from(scale)) as f32);
            prop_assert_eq!(dx[i], if r == q { dy[i] } else { 0.0 });
        }
    }

    /// LSQ's scale gradient = d/ds of the forward with the codes held fixed, minus the
    /// STE's term Σ_in dy·x/s: checked by a central finite difference.
    #[test]
    fn lsq_scale_gradient_by_finite_difference(
        bits in 2u32..=8, scale in 0.01f32..4.0,
        ks in prop::collection::vec((-200i32..200, -0.4f64..0.4, -2f32..2.0), 1..48),
    ) {
        let p = IntParams::symmetric(bits, scale).unwrap();
        let x: Vec<f32> = ks.iter().map(|&(k, u, _)| ((f64::from(k) + u) * f64::from(scale)) as f32).collect();
        let dy: Vec<f32> = ks.iter().map(|&(_, _, d)| d).collect();
        let loss = |s: f32| -> f64 {
            let p = IntParams::symmetric(bits, s).unwrap();
            let mut y = vec![0.0; x.len()];
            fake_quant::forward(&x, &p, &mut y).unwrap();
            y.iter().zip(&dy).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
        };
        let h = scale * 1e-4;
        let fd = (loss(scale + h) - loss(scale - h)) / f64::from(2.0 * h);
        let mut dx = vec![0.0; x.len()];
        let g = fake_quant::backward_lsq(&x, &dy, &p, 1.0, &mut dx).unwrap();
        let ste: f64 = x.iter().zip(&dy).zip(&dx)
            .filter(|(_, &d)| d != 0.0)
            .map(|((&x, &dy), _)| f64::from(dy) * f64::from(x) / f64::from(scale)).sum();
        let expect = fd - ste;
        let mag: f64 = dy.iter().map(|d| f64::from(d.abs())).sum::<f64>() * f64::from(p.qmax());
        prop_assert!((f64::from(g.scale) - expect).abs() <= 1e-3 * mag + 1e-3, "{} vs {}", g.scale, expect);
    }

    /// Float fake quant: the STE mask is exactly |x/s| <= MAX, the output saturates, and the
    /// LSQ scale gradient matches the finite difference (values kept away from midpoints).
    #[test]
    fn fake_quant_float_mask_and_lsq(
        codes in prop::collection::vec((any::<u8>(), -0.02f64..0.02, -2f32..2.0), 1..48),
        scale in 0.01f32..8.0, over in prop::collection::vec(1.05f64..50.0, 0..4),
    ) {
        let mut x: Vec<f32> = codes.iter()
            .map(|&(c, _, _)| E4M3::decode_f64(c))
            .zip(codes.iter().map(|c| c.1))
            .filter(|(v, _)| v.is_finite())
            .map(|(v, u)| (v * (1.0 + u) * f64::from(scale)) as f32)
            .collect();
        for (i, o) in over.iter().enumerate() {
            x.push(((if i % 2 == 0 { 1.0 } else { -1.0 }) * E4M3::MAX * o * f64::from(scale)) as f32);
        }
        let dy: Vec<f32> = (0..x.len()).map(|i| codes[i % codes.len()].2).collect();
        let mut y = vec![0.0; x.len()];
        fake_quant::forward_float::<E4M3>(&x, scale, &mut y).unwrap();
        let mut dx = vec![0.0; x.len()];
        let g = fake_quant::backward_float_lsq::<E4M3>(&x, &dy, scale, 1.0, &mut dx).unwrap();
        let mut dx2 = vec![0.0; x.len()];
        fake_quant::backward_float::<E4M3>(&x, &dy, scale, &mut dx2).unwrap();
        prop_assert_eq!(&dx, &dx2);
        for (i, &xi) in x.iter().enumerate() {
            let inside = (f64::from(xi) / f64::from(scale)).abs() <= E4M3::MAX;
            prop_assert_eq!(dx[i], if inside { dy[i] } else { 0.0 });
            prop_assert!(f64::from(y[i].abs()) <= E4M3::MAX * f64::from(scale) * (1.0 + 1e-6));
        }
        let loss = |s: f32| -> f64 {
            let mut y = vec![0.0; x.len()];
            fake_quant::forward_float::<E4M3>(&x, s, &mut y).unwrap();
            y.iter().zip(&dy).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
        };
        let h = scale * 1e-4;
        let fd = (loss(scale + h) - loss(scale - h)) / f64::from(2.0 * h);
        let ste: f64 = x.iter().zip(&dy).zip(&dx).filter(|(_, &d)| d != 0.0)
            .map(|((&x, &dy), _)| f64::from(dy) * f64::from(x) / f64::from(scale)).sum();
        let mag: f64 = dy.iter().map(|d| f64::from(d.abs())).sum::<f64>() * E4M3::MAX;
        prop_assert!((f64::from(g.scale) - (fd - ste)).abs() <= 1e-3 * mag + 1e-3, "{} vs {}", g.scale, fd - ste);
    }

    /// Binary and ternary reconstructions are the least-squares ones their papers derive.
    #[test]
    fn binary_alpha_is_least_squares(x in prop::collection::vec(-5f32..5.0, 1..64)) {
        let b = Binary::quantize(&x, 1).unwrap();
        let a = f64::from(b.alphas()[0]);
        let err = |a: f64| x.iter().map(|&v| { let s = if v < 0.0 { -a } else { a }; (f64::from(v) - s).powi(2) }).sum::<f64>();
        prop_assert!(err(a) <= err(a * 1.01) + 1e-9 && err(a) <= err(a * 0.99) + 1e-9);
    }

    #[test]
    fn ternary_error_is_least_squares_in_alpha(x in prop::collection::vec(-5f32..5.0, 1..64)) {
        let t = Ternary::quantize(&x, 1).unwrap();
        let mut y = vec![0.0; x.len()];
        t.dequantize(&mut y).unwrap();
        let a = t.alphas()[0];
        let d = t.deltas()[0];
        for (&v, &q) in x.iter().zip(&y) {
            prop_assert_eq!(q, if v.abs() > d { a.copysign(v) } else { 0.0 });
        }
    }

    #[test]
    fn log2_values_are_the_nearest_grid_point(x in prop::collection::vec(-100f32..100.0, 1..64), k in 1u32..=5) {
        let q = Log2Quantizer::new(k).unwrap().quantize(&x).unwrap();
        let mut y = vec![0.0; x.len()];
        q.dequantize(&mut y).unwrap();
        let top = (1i32 << k) - 1;
        let mut grid = vec![0f64];
        grid.extend((1..=top).map(|c| 2f64.powi(q.e_max() - (top - c))));
        for (&v, &r) in x.iter().zip(&y) {
            let a = f64::from(v.abs());
            let best = grid.iter().map(|g| (g - a).abs()).fold(f64::MAX, f64::min);
            prop_assert!(((f64::from(r.abs())) - a).abs() <= best, "{v} -> {r}");
            prop_assert!(r == 0.0 || r.signum() == v.signum());
        }
    }
}

#[test]
fn gradscaler_schedule_matches_torch_update() {
    let flags: Vec<u8> = arr("gs_flags");
    let want: Vec<f32> = arr("gs_scales");
    let mut s = GradScaler::new();
    for (i, (&f, &w)) in flags.iter().zip(&want).enumerate() {
        let mut g = [1.0f32, if f == 1 { f32::NAN } else { 2.0 }];
        let had = s.unscale(&mut g);
        assert_eq!(had, f == 1);
        let out = s.update();
        assert_eq!(out.skipped, f == 1, "step {i}");
        assert_eq!(out.scale, w, "step {i}");
    }
}

#[test]
fn gradscaler_defaults_and_growth() {
    let mut s = GradScaler::new();
    assert_eq!(s.scale(), 65536.0);
    for _ in 0..1999 {
        assert!(!s.update().skipped);
    }
    assert_eq!((s.scale(), s.growth_tracker()), (65536.0, 1999));
    assert_eq!(s.update().scale, 131072.0); // the 2000th clean step grows
    assert_eq!(s.growth_tracker(), 0);
    // Inf in one bf16 gradient tensor: skip and back off.
    let grads = [Bf16::encode_f32(1.0), Bf16::encode_f32(f32::INFINITY)];
    let mut out = [0.0; 2];
    assert!(s.unscale_codes::<Bf16>(&grads, &mut out).unwrap());
    assert_eq!(out[0], 1.0 / 131072.0);
    let o = s.update();
    assert!(o.skipped);
    assert_eq!(o.scale, 65536.0);
    assert!(!s.found_inf());
}

#[test]
fn non_finite_finder() {
    let mut g: Vec<u16> = (0..1000).map(|i| Fp16::encode_f32(i as f32 * 0.01)).collect();
    assert_eq!(find_non_finite::<Fp16>(&g), None);
    g[700] = Fp16::encode_f32(f32::NAN);
    g[900] = 0xfc00; // -inf
    assert_eq!(find_non_finite::<Fp16>(&g), Some(700));
    assert_eq!(count_non_finite::<Fp16>(&g), 2);
    let e5: Vec<u8> = vec![0x3c, E5M2::infinity().unwrap()];
    assert_eq!(find_non_finite::<E5M2>(&e5), Some(1));
}

#[test]
fn master_weights_keep_small_updates() {
    // Pure bf16 SGD loses an update of 1e-3 at 1.0 (half a step is 2^-8); the master copy keeps it.
    let mut pure = Bf16::encode_f32(1.0);
    let mut w = MasterWeights::<Bf16>::new(&[1.0, -4.0]).unwrap();
    for _ in 0..200 {
        pure = Bf16::encode_f32(Bf16::decode_f32(pure) + 1e-3);
        w.sgd_step(&[-1e-3, 1e-3], 1.0).unwrap();
    }
    assert_eq!(Bf16::decode_f32(pure), 1.0);
    let mut y = [0.0; 2];
    w.working_f32(&mut y).unwrap();
    assert_eq!(
        y,
        [
            Bf16::decode_f32(Bf16::encode_f32(w.master()[0])),
            Bf16::decode_f32(Bf16::encode_f32(w.master()[1]))
        ]
    );
    assert!((w.master()[0] - 1.2).abs() < 1e-4 && (y[0] - 1.2).abs() < 0.01);
    let back = MasterWeights::<Fp16>::from_working(&[Fp16::encode_f32(0.5)]).unwrap();
    assert_eq!(back.master(), &[0.5]);
}
