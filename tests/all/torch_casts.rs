//! torch 2.11's CPU casts of f32 probes (`tests/data/torch/casts.npz`, a subset of
//! `../shared/refs/torch/torch_refs.npz`). torch agrees with ml_dtypes, and so with us, on
//! every number; where it differs on NaN and E8M0 the test pins the documented difference.

use crate::common::{data, Npz};
use lowbit::format::*;

fn array<T: npyz::Deserialize>(name: &str) -> Vec<T> {
    let mut npz = Npz::open(data("torch/casts.npz")).unwrap();
    npz.by_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name}"))
        .into_vec::<T>()
        .unwrap()
}

fn agree<F: FloatFormat>(probe: &[f32], torch: &[u64], name: &str) {
    let mut mismatches = 0;
    for (&x, &t) in probe.iter().zip(torch) {
        let ours = F::encode_f32(x).to_u64();
        if x.is_nan() {
            // Documented: torch's NaN codes differ from ml_dtypes' in bf16 (0xffff) and E5M2
            // (0x7f); ours follow ml_dtypes. Both are NaN.
            assert!(
                F::is_nan(F::Code::from_u64(t)) && F::is_nan(F::Code::from_u64(ours)),
                "{name}"
            );
        } else if ours != t {
            mismatches += 1;
            eprintln!("{name}: {x:e} ({:#x}) ours {ours:#x} torch {t:#x}", x.to_bits());
        }
    }
    assert_eq!(mismatches, 0, "{name}");
}

#[test]
fn torch_cpu_casts() {
    let probe: Vec<f32> = array("probe");
    let wide = |v: Vec<i16>| v.into_iter().map(|c| u64::from(c as u16)).collect::<Vec<_>>();
    let narrow = |v: Vec<u8>| v.into_iter().map(u64::from).collect::<Vec<_>>();
    agree::<Fp16>(&probe, &wide(array("float16")), "float16");
    agree::<Bf16>(&probe, &wide(array("bfloat16")), "bfloat16");
    agree::<E4M3>(&probe, &narrow(array("float8_e4m3fn")), "float8_e4m3fn");
    agree::<E5M2>(&probe, &narrow(array("float8_e5m2")), "float8_e5m2");
    agree::<E4M3Fnuz>(&probe, &narrow(array("float8_e4m3fnuz")), "float8_e4m3fnuz");
    agree::<E5M2Fnuz>(&probe, &narrow(array("float8_e5m2fnuz")), "float8_e5m2fnuz");
}

#[test]
fn torch_e8m0_takes_the_magnitude() {
    // torch's E8M0 cast ignores the sign; ml_dtypes (and so lowbit) sends negatives to NaN.
    // On positive finite probes the two agree.
    let probe: Vec<f32> = array("probe");
    let torch: Vec<u8> = array("float8_e8m0fnu");
    let mut positive = 0;
    for (&x, &t) in probe.iter().zip(&torch) {
        if x > 0.0 && x.is_finite() {
            assert_eq!(E8M0::encode_f32(x), t, "{x:e}");
            positive += 1;
        } else if x < 0.0 && x.is_finite() {
            assert_eq!(E8M0::encode_f32(x), 0xff);
            assert_eq!(E8M0::encode_f32(-x), t, "torch uses |x| for {x:e}");
        }
    }
    assert!(positive > 1000);
}
