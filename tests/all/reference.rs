//! Encode and decode against ml_dtypes' reference vectors (`tests/data/floats/`, a subset of
//! `../shared/refs/floats/`; the full set is checked too when it is beside the repository).

use crate::common::{data, read_words, shared_ref};
use lowbit::format::*;
use std::path::Path;

fn code_width(bits: u32) -> usize {
    match bits {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

fn check_dir<F: FloatFormat>(dir: &Path, name: &str) -> usize {
    let w = code_width(F::BITS);
    let mut checked = 0;
    // Decode table (not for tf32, which has none).
    let dec = dir.join(format!("{name}.decode"));
    if dec.exists() {
        let table = read_words(&dec, 4);
        assert_eq!(table.len(), 1 << F::BITS, "{name}");
        for (code, &bits) in table.iter().enumerate() {
            let c = F::Code::from_u64(code as u64);
            let want = f32::from_bits(bits as u32);
            let got = F::decode_f32(c);
            if want.is_nan() {
                assert!(got.is_nan(), "{name} decode {code:#x}: got {got}");
                assert!(F::decode_f64(c).is_nan());
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{name} decode {code:#x}: got {got}, want {want}"
                );
                assert_eq!(F::decode_f64(c), f64::from(want), "{name} decode_f64 {code:#x}");
            }
        }
        checked += table.len();
    }
    // f32 inputs: scalar, slice (fast path) and portable slice all agree with the reference.
    let inp: Vec<f32> = read_words(&dir.join(format!("{name}.in32")), 4)
        .iter()
        .map(|&b| f32::from_bits(b as u32))
        .collect();
    let out = read_words(&dir.join(format!("{name}.out32")), w);
    assert_eq!(inp.len(), out.len());
    let mut slice = vec![F::Code::default(); inp.len()];
    F::encode_slice(&inp, &mut slice).unwrap();
    let mut portable = vec![F::Code::default(); inp.len()];
    encode_slice_portable::<F>(&inp, &mut portable).unwrap();
    let mut bad = Vec::new();
    for (i, (&x, &want)) in inp.iter().zip(&out).enumerate() {
        let got = F::encode_f32(x).to_u64();
        // Widening a signalling NaN to f64 quiets it, so NaNs are checked on the f32 paths only.
        let via64 = if x.is_nan() {
            want
        } else {
            F::encode_f64(f64::from(x)).to_u64()
        };
        if got != want || via64 != want || slice[i].to_u64() != want || portable[i].to_u64() != want {
            bad.push(format!(
                "{x:e} ({:#010x}): want {want:#x}, scalar {got:#x}, f64 {via64:#x}, slice {:#x}, portable {:#x}",
                x.to_bits(),
                slice[i].to_u64(),
                portable[i].to_u64()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {} of {} f32 inputs wrong, e.g.\n{}",
        bad.len(),
        inp.len(),
        bad[..bad.len().min(12)].join("\n")
    );
    checked += inp.len();
    // f64 inputs: correctly rounded.
    let inp: Vec<f64> = read_words(&dir.join(format!("{name}.in64")), 8)
        .iter()
        .map(|&b| f64::from_bits(b))
        .collect();
    let out = read_words(&dir.join(format!("{name}.out64")), w);
    let mut bad = Vec::new();
    for (&x, &want) in inp.iter().zip(&out) {
        let got = F::encode_f64(x).to_u64();
        if got != want {
            bad.push(format!("{x:e} ({:#018x}): want {want:#x}, got {got:#x}", x.to_bits()));
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {} of {} f64 inputs wrong, e.g.\n{}",
        bad.len(),
        inp.len(),
        bad[..bad.len().min(12)].join("\n")
    );
    checked + inp.len()
}

fn check<F: FloatFormat>(name: &str) {
    let n = check_dir::<F>(&data("floats"), name);
    assert!(n > 1000, "{name}: only {n} vectors");
    if let Some(full) = shared_ref("floats") {
        check_dir::<F>(&full, name);
    }
}

macro_rules! reference_tests {
    ($($test:ident: $f:ty = $name:literal;)*) => {$(
        #[test]
        fn $test() {
            check::<$f>($name);
        }
    )*};
}

reference_tests! {
    bf16: Bf16 = "bf16";
    fp16: Fp16 = "fp16";
    tf32: Tf32 = "tf32";
    e4m3: E4M3 = "e4m3";
    e5m2: E5M2 = "e5m2";
    e4m3fnuz: E4M3Fnuz = "e4m3fnuz";
    e5m2fnuz: E5M2Fnuz = "e5m2fnuz";
    e3m4: E3M4 = "e3m4";
    e8m0: E8M0 = "e8m0";
    e3m2: E3M2 = "e3m2";
    e2m3: E2M3 = "e2m3";
    e2m1: E2M1 = "e2m1";
}
