//! bitsandbytes 0.50.2 (CUDA) reference: every key of `bnb_refs.npz`, bit for bit.
//!
//! Runs on the full file in `../shared/refs/bnb/` when present, and always on the subset in
//! `tests/data/bnb/bnb_refs_small.npz`.

use std::collections::BTreeMap;
use std::path::Path;

use lowbit::compat::bnb::{self, Absmax, QuantState, QuantType};
use lowbit::quant::codebook::normal_float_levels;
use lowbit::quant::double::{dynamic_map, torch_cuda_mean};
use lowbit::quant::{Quantized, Quantizer};

use crate::common::{bits, data, shared_ref, Npz};

enum Arr {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I32(Vec<i32>),
}

struct Refs(BTreeMap<String, Arr>);

impl Refs {
    fn load(path: &Path) -> Self {
        let mut z = Npz::open(path).unwrap();
        let names: Vec<String> = z.array_names().map(str::to_owned).collect();
        let mut m = BTreeMap::new();
        for n in names {
            let f = z.by_name(&n).unwrap().unwrap();
            let a = match f.dtype().descr().trim_matches('\'') {
                "<f4" => Arr::F32(f.into_vec().unwrap()),
                "|u1" => Arr::U8(f.into_vec().unwrap()),
                "<i4" => Arr::I32(f.into_vec().unwrap()),
                d => panic!("{n}: dtype {d}"),
            };
            m.insert(n, a);
        }
        Refs(m)
    }
    fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
    fn f32(&self, k: &str) -> &[f32] {
        match self.0.get(k) {
            Some(Arr::F32(v)) => v,
            _ => panic!("missing f32 key {k}"),
        }
    }
    fn u8(&self, k: &str) -> &[u8] {
        match self.0.get(k) {
            Some(Arr::U8(v)) => v,
            _ => panic!("missing u8 key {k}"),
        }
    }
    fn i32(&self, k: &str) -> &[i32] {
        match self.0.get(k) {
            Some(Arr::I32(v)) => v,
            _ => panic!("missing i32 key {k}"),
        }
    }
}

/// Count of bit-identical values, and the largest difference in ulps among the others.
fn exact_count(got: &[f32], want: &[f32]) -> (usize, u32) {
    assert_eq!(got.len(), want.len());
    let mut n = 0;
    let mut worst = 0;
    for (a, b) in got.iter().zip(want) {
        if a.to_bits() == b.to_bits() {
            n += 1;
        } else {
            worst = worst.max((a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32);
        }
    }
    (n, worst)
}

/// Checks every key present; returns (keys checked, deq values compared, deq values exact).
fn check_all(r: &Refs) -> (usize, usize, usize) {
    let mut keys = 0;
    let (mut deq_n, mut deq_exact) = (0, 0);
    // Maps.
    assert_eq!(bits(&dynamic_map()), bits(r.f32("map_create_dynamic_map")));
    keys += 1;
    let normal_map = r.f32("map_create_normal_map");
    let mut nz: Vec<f32> = normal_map.iter().copied().filter(|v| *v != 0.0).collect();
    nz.push(0.0);
    nz.sort_by(f32::total_cmp);
    assert_eq!(
        bits(&nz),
        bits(&normal_float_levels(4).unwrap()),
        "create_normal_map's 16 values"
    );
    keys += 1;
    let fp8 = bnb::create_fp8_map(true, 5, 2, 8).unwrap();
    assert_eq!(bits(&fp8), bits(r.f32("map_create_fp8_map")), "create_fp8_map");
    keys += 1;

    for set in ["normal", "edge", "tail"] {
        let key = format!("in_{set}");
        if !r.has(&key) {
            continue;
        }
        let x = r.f32(&key);
        for (qt, name) in [(QuantType::Nf4, "nf4"), (QuantType::Fp4, "fp4")] {
            for bs in [32usize, 64, 128, 256, 4096] {
                let p = format!("{set}_{name}_b{bs}");
                if !r.has(&format!("{p}_sq_packed")) {
                    continue;
                }
                // Without double quantization.
                let (packed, st) = bnb::quantize_4bit(x, bs, qt, false).unwrap();
                assert_eq!(packed, r.u8(&format!("{p}_sq_packed")), "{p}_sq_packed");
                check_quantizer_path(
                    x,
                    &packed,
                    &st,
                    false,
                    r.has(&format!("{p}_sq_deq")).then(|| r.f32(&format!("{p}_sq_deq"))),
                );
                let Absmax::Plain(am) = st.scales() else { panic!() };
                assert_eq!(bits(am), bits(r.f32(&format!("{p}_sq_absmax"))), "{p}_sq_absmax");
                assert_eq!(bits(&qt.code()), bits(r.f32(&format!("{p}_sq_code"))), "{p}_sq_code");
                keys += 3;
                if r.has(&format!("{p}_sq_deq")) {
                    let y = bnb::dequantize_4bit(&packed, &st).unwrap();
                    let (e, worst) = exact_count(&y, r.f32(&format!("{p}_sq_deq")));
                    assert_eq!(e, y.len(), "{p}_sq_deq: {} of {} exact, worst {worst} ulp", e, y.len());
                    deq_n += y.len();
                    deq_exact += e;
                    keys += 1;
                }
                // With double quantization.
                let (packed, st) = bnb::quantize_4bit(x, bs, qt, true).unwrap();
                assert_eq!(packed, r.u8(&format!("{p}_dq_packed")), "{p}_dq_packed");
                check_quantizer_path(
                    x,
                    &packed,
                    &st,
                    true,
                    r.has(&format!("{p}_dq_deq")).then(|| r.f32(&format!("{p}_dq_deq"))),
                );
                let Absmax::Double(dq) = st.scales() else { panic!() };
                assert_eq!(dq.codes(), r.u8(&format!("{p}_dq_absmax_codes")), "{p}_dq_absmax_codes");
                assert_eq!(
                    bits(dq.absmax2()),
                    bits(r.f32(&format!("{p}_dq_absmax2"))),
                    "{p}_dq_absmax2"
                );
                assert_eq!(
                    dq.offset().to_bits(),
                    r.f32(&format!("{p}_dq_offset"))[0].to_bits(),
                    "{p}_dq_offset"
                );
                assert_eq!(dq.blocksize2() as i32, r.i32(&format!("{p}_dq_blocksize2"))[0]);
                assert_eq!(bits(&qt.code()), bits(r.f32(&format!("{p}_dq_code"))), "{p}_dq_code");
                assert_eq!(
                    bits(&dynamic_map()),
                    bits(r.f32(&format!("{p}_dq_code2"))),
                    "{p}_dq_code2"
                );
                keys += 7;
                if r.has(&format!("{p}_dq_deq")) {
                    let y = bnb::dequantize_4bit(&packed, &st).unwrap();
                    let (e, worst) = exact_count(&y, r.f32(&format!("{p}_dq_deq")));
                    assert_eq!(e, y.len(), "{p}_dq_deq: {} of {} exact, worst {worst} ulp", e, y.len());
                    deq_n += y.len();
                    deq_exact += e;
                    keys += 1;
                }
            }
        }
        for bs in [64usize, 256, 4096] {
            let p = format!("{set}_blockwise8_b{bs}");
            if !r.has(&format!("{p}_q")) {
                continue;
            }
            let (q, st) = bnb::quantize_blockwise(x, bs).unwrap();
            assert_eq!(q, r.u8(&format!("{p}_q")), "{p}_q");
            assert_eq!(bits(&st.absmax), bits(r.f32(&format!("{p}_absmax"))), "{p}_absmax");
            assert_eq!(bits(&st.code), bits(r.f32(&format!("{p}_code"))), "{p}_code");
            keys += 3;
            if r.has(&format!("{p}_deq")) {
                let y = bnb::dequantize_blockwise(&q, &st).unwrap();
                let (e, worst) = exact_count(&y, r.f32(&format!("{p}_deq")));
                assert_eq!(e, y.len(), "{p}_deq: {} of {} exact, worst {worst} ulp", e, y.len());
                deq_n += y.len();
                deq_exact += e;
                keys += 1;
            }
        }
    }
    (keys, deq_n, deq_exact)
}

/// lowbit's own quantizer, configured as bitsandbytes ([`QuantState::quantizer`]), stores the
/// same bytes and scales, dequantizes to the reference, and its `Quantized` (double-quantized
/// scales included) survives `to_bytes` / `from_bytes`.
fn check_quantizer_path(x: &[f32], packed: &[u8], st: &QuantState, double: bool, deq: Option<&[f32]>) {
    let quantizer = QuantState::quantizer(st.blocksize(), st.quant_type(), double).unwrap();
    let q = quantizer.quantize(x).unwrap();
    let (p2, st2) = QuantState::from_quantized(&q).unwrap();
    assert_eq!((p2.as_slice(), &st2), (packed, st));
    assert_eq!(st.to_quantized(packed.to_vec()).unwrap(), q);
    assert_eq!(Quantized::from_bytes(&q.to_bytes()).unwrap(), q);
    assert_eq!(q.bits_per_element(), st.bits_per_element());
    if let Some(want) = deq {
        assert_eq!(bits(&quantizer.dequantize(&q).unwrap()), bits(want));
    }
}

#[test]
fn bnb_reference_subset() {
    let r = Refs::load(&data("bnb/bnb_refs_small.npz"));
    let (keys, n, e) = check_all(&r);
    eprintln!("bnb subset: {keys} keys bit-exact; dequantized {e} of {n} bit-exact");
    assert!(keys > 150, "{keys}");
}

#[test]
fn bnb_reference_full() {
    let Some(p) = shared_ref("bnb/bnb_refs.npz") else {
        eprintln!("../shared/refs/bnb/bnb_refs.npz not present: skipped");
        return;
    };
    let r = Refs::load(&p);
    let (keys, n, e) = check_all(&r);
    eprintln!("bnb full: {keys} keys bit-exact; dequantized {e} of {n} bit-exact");
    assert_eq!(keys, r.0.len() - 3, "every key but the three inputs is checked");
}

#[test]
fn torch_mean_orders() {
    // Small sums are exact whatever the order; the order matters once rounding does.
    let x: Vec<f32> = (0..300).map(|i| 1.0 + i as f32 * 1e-3).collect();
    let m = torch_cuda_mean(&x);
    let exact = x.iter().map(|&v| f64::from(v)).sum::<f64>() / 300.0;
    assert!((f64::from(m) - exact).abs() < 1e-6);
}
