//! The schemes: PTQ recipes (patterns, weights, activation calibration), fake quantization,
//! power-of-two / binary / ternary quantization, AMP loss scaling, SmoothQuant.

use super::formats::{format_index, with_format};
use super::{bits, f32_any, f32_finite, f32s, f32s_finite, f32s_mostly_finite, name, run, size, vec_of};
use arbitrary::{Result, Unstructured};
use lowbit::format::FloatFormat;
use std::sync::Arc;

/// A glob matcher to compare with: `*` any run of characters, `?` one character.
fn reference_glob(p: &[char], s: &[char]) -> bool {
    // dp[j]: p[..i] matches s[..j].
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    for &pc in p {
        let mut next = vec![false; s.len() + 1];
        for j in 0..=s.len() {
            next[j] = match pc {
                '*' => dp[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && dp[j - 1],
                c => j > 0 && dp[j - 1] && s[j - 1] == c,
            };
        }
        dp = next;
    }
    dp[s.len()]
}

fn weight_scheme(u: &mut Unstructured<'_>) -> Result<Option<lowbit::scheme::ptq::WeightScheme>> {
    use lowbit::compat::bnb::QuantType;
    use lowbit::format::Format;
    use lowbit::quant::mx::{MxElement, ScaleRule, TensorScale};
    use lowbit::scheme::ptq::{WeightGranularity, WeightScheme};
    let wg = match u.int_in_range(0u8..=2)? {
        0 => WeightGranularity::PerTensor,
        1 => WeightGranularity::PerChannel,
        _ => WeightGranularity::PerBlock(size(u)?),
    };
    Ok(match u.int_in_range(0u8..=7)? {
        0 => Some(WeightScheme::Keep),
        1 => WeightScheme::int(bits(u)?, wg).ok(),
        2 => WeightScheme::int_with(bits(u)?, u.arbitrary()?, wg).ok(),
        3 => {
            let format = *u.choose(&[Format::Fp16, Format::Bf16, Format::E4M3, Format::E5M2])?;
            let _ = (format.max(), format.bits(), format.name());
            Some(WeightScheme::Float {
                format,
                scaled: u.arbitrary()?,
            })
        }
        4 => Some(WeightScheme::Bnb4 {
            quant_type: if u.arbitrary()? { QuantType::Nf4 } else { QuantType::Fp4 },
            block: if u.arbitrary()? { 64 } else { size(u)? },
            double_quant: u.arbitrary()?,
        }),
        5 => Some(WeightScheme::Mx {
            element: *u.choose(&[MxElement::E4M3, MxElement::E2M1, MxElement::E3M2, MxElement::Int8])?,
            rule: *u.choose(&ScaleRule::ALL)?,
        }),
        6 => Some(WeightScheme::Nvfp4 {
            tensor_scale: match u.int_in_range(0u8..=2)? {
                0 => TensorScale::None,
                1 => TensorScale::FromAmax,
                _ => TensorScale::Fixed(f32_any(u)?),
            },
        }),
        _ => {
            let q = lowbit::quant::AbsmaxQuantizer::new(u.int_in_range(2u32..=8)?, super::granularity(u)?);
            match q {
                Ok(q) => Some(WeightScheme::Custom(Arc::new(q))),
                Err(_) => None,
            }
        }
    })
}

fn activation_scheme(u: &mut Unstructured<'_>) -> Result<Option<lowbit::scheme::ptq::ActivationScheme>> {
    use lowbit::calib::{HistogramCalibrator, Method, MinMaxCalibrator};
    use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind};
    let kind = match u.int_in_range(0u8..=3)? {
        0 => CalibratorKind::MinMax,
        1 => CalibratorKind::Histogram(Method::Percentile(f64::from(f32_any(u)?))),
        2 => CalibratorKind::Histogram(if u.arbitrary()? {
            Method::Mse { bits: bits(u)? }
        } else {
            Method::Entropy { bits: bits(u)? }
        }),
        _ => {
            if u.arbitrary()? {
                CalibratorKind::Custom(Arc::new(|| Box::new(MinMaxCalibrator::new())))
            } else {
                CalibratorKind::Custom(Arc::new(|| {
                    Box::new(HistogramCalibrator::new(Method::Mse { bits: 4 }).expect("a valid method"))
                }))
            }
        }
    };
    let Ok(a) = ActivationScheme::new(kind, bits(u)?, u.arbitrary()?) else {
        return Ok(None);
    };
    // ONNX Runtime's qparams, for a type that may or may not have the scheme's width.
    if u.ratio(1u8, 3)? {
        use lowbit::compat::ort::QuantType;
        let qtype = QuantType::ALL[u.choose_index(QuantType::ALL.len())?];
        let flavour = lowbit::scheme::ptq::QParamsFlavour::Ort {
            qtype,
            reduce_range: u.arbitrary()?,
        };
        let bits = a.bits();
        return Ok(match a.with_flavour(flavour) {
            Ok(a) => {
                assert_eq!(bits, qtype.bits());
                Some(a)
            }
            Err(_) => {
                assert_ne!(bits, qtype.bits());
                None
            }
        });
    }
    Ok(Some(a))
}

/// PTQ: patterns (against a reference glob), recipes, weight schemes, activation calibration.
pub fn ptq(data: &[u8]) {
    use lowbit::scheme::ptq::{Pattern, QuantizedWeight, Recipe, Report};
    run(data, |u| {
        // Patterns.
        let p = name(u)?;
        let s = name(u)?;
        let pat = Pattern::parse(&p);
        assert_eq!(pat.as_str(), p);
        let got = pat.matches(&s);
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        let want = if p.contains(['*', '?']) {
            reference_glob(&pc, &sc)
        } else {
            p == s
        };
        assert_eq!(got, want, "pattern {p:?} against {s:?}");
        assert!(Pattern::parse(&s).matches(&s), "{s:?} does not match itself");
        // A recipe.
        let mut recipe = match u.int_in_range(0u8..=4)? {
            0 => lowbit::scheme::tflite::dynamic_range(),
            1 => lowbit::scheme::tflite::float16(),
            2 => lowbit::scheme::tflite::full_integer(),
            3 => lowbit::scheme::tflite::int16x8(),
            _ => Recipe::new(),
        };
        for _ in 0..u.int_in_range(0u8..=3)? {
            if let Some(ws) = weight_scheme(u)? {
                let _ = ws.describe();
                let _ = format!("{ws:?}");
                recipe = recipe.weights(&name(u)?, ws);
            }
        }
        for _ in 0..u.int_in_range(0u8..=2)? {
            if let Some(a) = activation_scheme(u)? {
                let _ = (a.bits(), a.symmetric(), format!("{a:?}"));
                let r = lowbit::calib::Range {
                    min: f32_any(u)?,
                    max: f32_any(u)?,
                };
                let _ = a.params(r);
                recipe = recipe.activations(&name(u)?, a);
            }
        }
        let _ = (recipe.weight_rules().len(), recipe.activation_rules().len());
        // Weights.
        let n = u.int_in_range(1u8..=3)?;
        let mut tensors: Vec<(String, Vec<f32>, Vec<usize>)> = Vec::new();
        for _ in 0..n {
            let data = f32s_mostly_finite(u, 96)?;
            let shape = match u.int_in_range(0u8..=3)? {
                0 => vec![data.len()],
                1 => {
                    let c = u.int_in_range(1usize..=8)?;
                    if data.len() % c == 0 {
                        vec![data.len() / c, c]
                    } else {
                        vec![data.len()]
                    }
                }
                2 => vec![],
                _ => vec_of(u, 3, size)?,
            };
            tensors.push((name(u)?, data, shape));
        }
        let mut report = Report::default();
        for (nm, data, shape) in &tensors {
            let _ = recipe.weight_scheme(nm);
            let Ok((qw, lr)) = recipe.quantize_weight(nm, data, shape) else {
                continue;
            };
            assert_eq!(qw.len(), data.len());
            assert_eq!(qw.is_empty(), data.is_empty());
            let _ = qw.size_bytes();
            let y = qw.dequantize().expect("dequantize a quantized weight");
            assert_eq!(y.len(), data.len());
            // (F20, fixed: bnb double quantization of block maxima near f32::MAX restored an
            // infinite absmax.)
            if data.iter().all(|v| v.is_finite()) {
                assert!(!lr.mse.is_nan(), "{nm}: {lr:?}; data {data:?} -> {y:?}");
            }
            if let QuantizedWeight::Int(q) = &qw {
                assert!(lowbit::quant::Quantized::from_bytes(&q.to_bytes()).expect("bytes") == *q);
            }
            report.layers.push(lr);
        }
        let _ = (
            report.weight_bytes_before(),
            report.weight_bytes_after(),
            report.weight_sqnr_db(),
        );
        let _ = recipe.quantize_weights(tensors.iter().map(|(n, d, s)| (n.as_str(), d.as_slice(), s.as_slice())));
        // Activations.
        let mut cal = recipe.calibration();
        for _ in 0..u.int_in_range(0u8..=4)? {
            let layer = if tensors.is_empty() || u.arbitrary()? {
                name(u)?
            } else {
                tensors[u.choose_index(tensors.len())?].0.clone()
            };
            let _ = cal.observe(&layer, &f32s_mostly_finite(u, 32)?);
        }
        let _ = format!("{cal:?}");
        // The whole calibration as bytes: read back as written, merged with its copy (twice the
        // counts), and corrupted or arbitrary bytes refused or read without a panic.
        if let Ok(bytes) = cal.to_bytes() {
            let back = recipe
                .calibration_from_bytes(&bytes)
                .expect("read back what was written");
            assert!(back.to_bytes().expect("bytes") == bytes);
            for l in cal.layers() {
                assert_eq!(back.range(l).ok(), cal.range(l).ok(), "{l}");
            }
            let mut twice = recipe.calibration_from_bytes(&bytes).expect("read back");
            if twice.merge(&back).is_ok() {
                let _ = twice.to_bytes();
            }
            let mut junk = bytes.clone();
            if !junk.is_empty() {
                let at = u.choose_index(junk.len())?;
                junk[at] ^= u.arbitrary::<u8>()? | 1;
            }
            junk.truncate(u.int_in_range(0..=junk.len())?);
            if let Ok(j) = recipe.calibration_from_bytes(&junk) {
                let _ = j.to_bytes();
                for l in j.layers() {
                    let _ = j.range(l);
                }
            }
        }
        let _ = recipe.calibration_from_bytes(u.bytes(u.len().min(256))?);
        if let Ok(acts) = cal.finish() {
            for (_, mut a) in acts {
                let _ = (a.range(), a.params(), a.bits());
                let x = f32s(u, 32)?;
                let mut y = vec![0f32; if u.ratio(7u8, 8)? { x.len() } else { x.len() + 1 }];
                let _ = a.fake_quantize(&x, &mut y);
                let _ = a.evaluate(&x);
                let _ = a.report();
            }
        }
        Ok(())
    });
}

fn float_fake_quant<F: FloatFormat>(u: &mut Unstructured<'_>, x: &[f32], dy: &[f32]) -> Result<()> {
    use lowbit::scheme::fake_quant as fq;
    let scale = f32_any(u)?;
    let mut y = vec![0f32; x.len()];
    let _ = fq::forward_float::<F>(x, scale, &mut y);
    let mut dx = vec![0f32; x.len()];
    let _ = fq::backward_float::<F>(x, dy, scale, &mut dx);
    let _ = fq::backward_float_lsq::<F>(x, dy, scale, f32_any(u)?, &mut dx);
    Ok(())
}

/// Fake quantization: integer (forward, STE and LSQ backward) and float formats.
pub fn fake_quant(data: &[u8]) {
    use lowbit::scheme::fake_quant::{self as fq, IntParams};
    run(data, |u| {
        let p = match u.int_in_range(0u8..=2)? {
            0 => IntParams::new(f32_any(u)?, u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            1 => IntParams::symmetric(bits(u)?, f32_any(u)?),
            _ => IntParams::affine(bits(u)?, f32_any(u)?, u.int_in_range(-300i32..=300)?),
        };
        let x = f32s_mostly_finite(u, 64)?;
        let dy = if u.ratio(7u8, 8)? {
            let mut d = f32s(u, 0)?;
            for _ in 0..x.len() {
                d.push(f32_any(u)?);
            }
            d
        } else {
            f32s(u, 64)?
        };
        if let Ok(p) = p {
            let _ = (p.scale(), p.zero_point(), p.qmin(), p.qmax());
            let mut y = vec![0f32; x.len()];
            if fq::forward(&x, &p, &mut y).is_ok() {
                // Finite in, no NaN out (F10: a subnormal scale).
                for (v, w) in x.iter().zip(&y) {
                    assert!(!w.is_nan(), "{p:?}: {v} -> {w}");
                }
            }
            let mut dx = vec![0f32; x.len()];
            let _ = fq::backward(&x, &dy, &p, &mut dx);
            let _ = fq::backward_lsq(&x, &dy, &p, f32_any(u)?, &mut dx);
        }
        let _ = fq::lsq_grad_factor(size(u)?, u.arbitrary()?);
        // Every format, float-format fake quantization.
        let i = format_index(u)?;
        with_format!(i, F => float_fake_quant::<F>(u, &x, &dy))
    });
}

/// Power-of-two (log2), binary and ternary quantization.
pub fn lowbit_schemes(data: &[u8]) {
    use lowbit::scheme::binary::Binary;
    use lowbit::scheme::log2::Log2Quantizer;
    use lowbit::scheme::ternary::Ternary;
    run(data, |u| {
        let x = f32s_mostly_finite(u, 96)?;
        let channels = if u.arbitrary()? {
            size(u)?
        } else {
            u.int_in_range(1usize..=4)?
        };
        let wrong = u.ratio(1u8, 8)?;
        let mut out = vec![0f32; x.len() + usize::from(wrong)];
        match u.int_in_range(0u8..=2)? {
            0 => {
                if let Ok(q) = Log2Quantizer::new(bits(u)?) {
                    if let Ok(z) = q.quantize(&x) {
                        assert_eq!(z.len(), x.len());
                        assert_eq!(z.codes().len(), x.len());
                        let _ = (
                            z.is_empty(),
                            z.e_max(),
                            z.exp_bits(),
                            z.packed(),
                            z.size_bytes(),
                            z.bits_per_element(),
                        );
                        assert_eq!(z.dequantize(&mut out).is_ok(), !wrong);
                        if !wrong {
                            // Every value is 0 or ± a power of two.
                            for v in &out {
                                let a = v.abs();
                                assert!(
                                    a == 0.0
                                        || (a.is_finite() && (a.to_bits() & 0x007f_ffff) == 0 || a < f32::MIN_POSITIVE),
                                    "log2: {v}"
                                );
                            }
                        }
                    }
                }
            }
            1 => {
                if let Ok(z) = Binary::quantize(&x, channels) {
                    assert_eq!(z.len(), x.len());
                    let _ = (
                        z.is_empty(),
                        z.alphas(),
                        z.packed(),
                        z.size_bytes(),
                        z.bits_per_element(),
                    );
                    assert_eq!(z.dequantize(&mut out).is_ok(), !wrong);
                    if !wrong && !x.is_empty() {
                        let per = x.len() / z.alphas().len().max(1);
                        for (i, v) in out.iter().enumerate() {
                            let a = z.alphas()[(i / per.max(1)).min(z.alphas().len() - 1)];
                            assert!(v.abs() == a.abs() || v.is_nan(), "binary: {v} vs alpha {a}");
                        }
                    }
                }
            }
            _ => {
                let r = if u.arbitrary()? {
                    Ternary::quantize(&x, channels)
                } else {
                    Ternary::quantize_with(&x, channels, f32_any(u)?)
                };
                if let Ok(z) = r {
                    assert_eq!(z.len(), x.len());
                    let _ = (
                        z.is_empty(),
                        z.alphas(),
                        z.deltas(),
                        z.packed(),
                        z.size_bytes(),
                        z.bits_per_element(),
                    );
                    assert_eq!(z.dequantize(&mut out).is_ok(), !wrong);
                }
            }
        }
        Ok(())
    });
}

fn amp_codes<F: FloatFormat>(u: &mut Unstructured<'_>, scaler: &mut lowbit::scheme::amp::GradScaler) -> Result<()> {
    use lowbit::format::Code;
    use lowbit::scheme::amp::{self as amp, MasterWeights};
    let grads = f32s(u, 32)?;
    let mut codes = vec![F::Code::default(); grads.len()];
    F::encode_slice(&grads, &mut codes).expect("same length");
    let count = amp::count_non_finite::<F>(&codes);
    let want = codes.iter().filter(|&&c| !F::decode_f64(c).is_finite()).count();
    assert_eq!(count, want, "{}: count_non_finite", F::NAME);
    assert_eq!(amp::has_non_finite::<F>(&codes), want > 0);
    let first = amp::find_non_finite::<F>(&codes);
    assert_eq!(first, codes.iter().position(|&c| !F::decode_f64(c).is_finite()));
    let mut out = vec![0f32; if u.ratio(7u8, 8)? { codes.len() } else { 1 }];
    if let Ok(found) = scaler.unscale_codes::<F>(&codes, &mut out) {
        if want > 0 {
            assert!(found, "{}: unscale_codes missed a non-finite gradient", F::NAME);
        }
    }
    let _ = F::Code::default().to_u64();
    // Master weights.
    let init = f32s(u, 16)?;
    if let Ok(mut m) = MasterWeights::<F>::new(&init) {
        let g = f32s(u, 16)?;
        let _ = m.sgd_step(&g, f32_any(u)?);
        let _ = m.update(|w| {
            for v in w.iter_mut() {
                *v *= 0.5;
            }
            Ok::<(), lowbit::SchemeError>(())
        });
        let _ = m.update(|_| Err::<(), lowbit::SchemeError>(lowbit::SchemeError::NonFinite { what: "fuzz", index: 0 }));
        let mut out = vec![0f32; m.working().len()];
        m.working_f32(&mut out).expect("working_f32");
        assert_eq!(m.master().len(), m.working().len());
    }
    if let Ok(w) = MasterWeights::<F>::from_working(&codes) {
        assert_eq!(w.master().len(), codes.len());
    }
    Ok(())
}

/// AMP: the scaler with NaN and infinite gradients, unscaling codes of every format, master
/// weights.
pub fn amp(data: &[u8]) {
    use lowbit::scheme::amp::GradScaler;
    run(data, |u| {
        let mut s = if u.arbitrary()? {
            GradScaler::new()
        } else {
            let gf = if u.arbitrary()? { 2.0 } else { f64::from(f32_any(u)?) };
            let bf = if u.arbitrary()? { 0.5 } else { f64::from(f32_any(u)?) };
            let gi = if u.arbitrary()? {
                u.int_in_range(1u32..=3)?
            } else {
                u.arbitrary()?
            };
            match GradScaler::with_params(f32_any(u)?, gf, bf, gi) {
                Ok(s) => s,
                Err(_) => return Ok(()),
            }
        };
        for _ in 0..u.int_in_range(0u8..=8)? {
            let _ = (s.scale(), s.growth_tracker(), s.inv_scale(), s.scale_loss(f32_any(u)?));
            match u.int_in_range(0u8..=3)? {
                0 => {
                    let mut g = f32s(u, 32)?;
                    let bad = g.iter().any(|v| !v.is_finite());
                    let found = s.unscale(&mut g);
                    if bad {
                        assert!(found, "unscale missed a non-finite gradient");
                    }
                }
                1 => s.record_inf(),
                2 => {
                    let i = format_index(u)?;
                    with_format!(i, F => amp_codes::<F>(u, &mut s))?;
                }
                _ => {
                    let had = s.found_inf();
                    let o = s.update();
                    assert_eq!(o.skipped, had);
                    assert_eq!(o.scale.to_bits(), s.scale().to_bits());
                    assert!(!s.found_inf());
                    assert!(!o.scale.is_nan() && o.scale >= 0.0, "scale {}", o.scale);
                }
            }
        }
        Ok(())
    });
}

/// SmoothQuant: factors from activation and weight maxima, smoothing, column maxima.
pub fn smooth(data: &[u8]) {
    use lowbit::scheme::smooth::{self as sm, SmoothQuant};
    run(data, |u| {
        let alpha = if u.arbitrary()? { 0.5 } else { f32_any(u)? };
        let cols = if u.arbitrary()? {
            u.int_in_range(1usize..=6)?
        } else {
            size(u)?
        };
        let act = vec_of(u, 6, |u| {
            if u.ratio(1u8, 8)? {
                f32_any(u)
            } else {
                Ok(f32_finite(u)?.abs())
            }
        })?;
        let w = f32s_mostly_finite(u, 48)?;
        if let Ok(sq) = SmoothQuant::new(alpha) {
            let _ = sq.alpha();
            if let Ok(s) = sq.scales(&act, &w) {
                assert_eq!(s.len(), act.len());
                if act.iter().chain(&w).all(|v| v.is_finite()) {
                    assert!(s.iter().all(|v| v.is_finite() && *v > 0.0), "smooth factors {s:?}");
                }
                let mut x = f32s_finite(u, 48)?;
                let mut w2 = w.clone();
                let _ = sm::smooth_activations(&mut x, &s);
                let _ = sm::smooth_weights(&mut w2, &s);
                let _ = sm::apply(&mut x, &mut w2, &s);
            }
            let w2 = f32s_mostly_finite(u, 24)?;
            let _ = sq.scales_shared(&act, &[&w, &w2]);
            let _ = sq.scales_shared(&act, &[]);
        }
        if let Ok(m) = sm::column_absmax(&w, cols) {
            assert_eq!(m.len(), cols);
        }
        let s = f32s(u, 8)?;
        let mut x = f32s(u, 48)?;
        let _ = sm::smooth_activations(&mut x, &s);
        let _ = sm::smooth_weights(&mut x, &s);
        let (lo, hi) = (f32s(u, 6)?, f32s(u, 6)?);
        let _ = sm::absmax_from_ranges(&lo, &hi);
        Ok(())
    });
}
