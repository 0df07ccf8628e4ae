use super::*;

/// fuzz F32: an MXINT8 block holding `f32::MAX` got microxcaling's NaN scale.
#[test]
fn mxint8_block_at_f32_max_stays_finite() {
    let q = MxQuantizer::new(MxElement::Int8, ScaleRule::Floor).unwrap();
    for top in [f32::MAX, -f32::MAX, f32::from_bits(f32::MAX.to_bits() - 1)] {
        let mut x = vec![1.0f32; 32];
        x[5] = top;
        let z = q.quantize(&x).unwrap();
        assert_eq!(z.scale_codes()[0], 254);
        let y = q.dequantize(&z).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
        // 127/64 * 2^127: the element's saturation, within 2^-6 of the value.
        assert!((y[5] - top).abs() <= top.abs() * 2f32.powi(-6), "{} vs {top}", y[5]);
    }
    // Just below the saturated band microxcaling's exponent is kept.
    let x = [2f32.powi(127); 32];
    let z = q.quantize(&x).unwrap();
    assert_eq!(z.scale_codes()[0], 254);
    assert_eq!(q.dequantize(&z).unwrap()[0], 2f32.powi(127));
    let x = [2f32.powi(126); 32];
    assert_eq!(q.quantize(&x).unwrap().scale_codes()[0], 253);
}

/// The dispatched walker (AVX2 where the CPU has it) and the portable loop agree bit for
/// bit, on every element format and rule, with specials under `Propagate`.
#[test]
fn dispatched_equals_portable() {
    let mut rng = crate::testing::XorShift(0x2545_f491_4f6c_dd1d);
    let mut x: Vec<f32> = (0..4096)
        .map(|i| rng.centered() * 2f32.powi((i / 32 % 40) - 20))
        .collect();
    x[100] = f32::NAN;
    x[300] = f32::INFINITY;
    x[700] = 1e-40;
    x[1024..1056].fill(0.0);
    let rules = [ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::Even, ScaleRule::RCeil];
    for e in MxElement::ALL {
        for r in rules {
            let Ok(q) = MxQuantizer::new(e, r) else { continue };
            let q = q.with_non_finite(NonFinite::Propagate).unwrap();
            parity(&q, &x);
        }
    }
    let k = Nvfp4Kernel {
        tensor_scale: Some(0.01),
        non_finite: NonFinite::Propagate,
    };
    parity(&k, &x);
}

fn parity<K: Kernel>(k: &K, x: &[f32]) {
    let mut a = Quantized::empty();
    walk::quantize(k, x, &mut a).unwrap();
    let mut b = Quantized::empty();
    let (codes, mut params) = walk::reset(k, x.len(), &mut b).unwrap();
    walk::quantize_portable(k, x, codes, &mut params).unwrap();
    assert_eq!(a, b);
    let mut ya = vec![0f32; x.len()];
    let mut yb = vec![0f32; x.len()];
    walk::dequantize(k, &a, &mut ya).unwrap();
    walk::dequantize_portable(k, a.codes(), a.scales(), a.zero_points(), &mut yb);
    assert_eq!(
        ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        yb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
