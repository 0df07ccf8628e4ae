//! ONNX Runtime's `compute_scale_zp` and `quantize_nparray` against the vectors ONNX Runtime
//! itself produced (`tests/data/ort/qparams.json`, made by `tests/data/ort/make_qparams.py`):
//! every scale bit, zero point and code.

use crate::common::data;
use lowbit::calib::Range;
use lowbit::compat::ort::{compute_scale_zp, qparams, quantize_nparray, QuantType};
use serde_json::Value;

fn u32_of(v: &Value) -> u32 {
    u32::try_from(v.as_u64().expect("u32 bits")).expect("u32")
}

#[test]
fn ort_qparams_match_onnxruntime() {
    let text = std::fs::read_to_string(data("ort/qparams.json")).expect("qparams.json");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["onnxruntime"], "1.32.0");
    let cols: Vec<&str> = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "range",
            "qtype",
            "symmetric",
            "reduce_range",
            "min_real_range",
            "qmin",
            "qmax",
            "scale",
            "zero_point",
            "codes"
        ]
    );
    let ranges = doc["ranges"].as_array().unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() > 1000, "{}", vectors.len());
    let (mut checked, mut codes_checked, mut qparams_checked) = (0, 0, 0);
    for v in vectors {
        let v = v.as_array().unwrap();
        let r = &ranges[v[0].as_u64().unwrap() as usize];
        let (rmin, rmax) = (f32::from_bits(u32_of(&r["rmin"])), f32::from_bits(u32_of(&r["rmax"])));
        let qtype = QuantType::from_name(v[1].as_str().unwrap()).expect("qtype");
        let symmetric = v[2].as_u64().unwrap() == 1;
        let reduce = v[3].as_u64().unwrap() == 1;
        let mrr = (!v[4].is_null()).then(|| f32::from_bits(u32_of(&v[4])));
        let (qmin, qmax) = (v[5].as_i64().unwrap() as i32, v[6].as_i64().unwrap() as i32);
        let (scale, zp) = (u32_of(&v[7]), v[8].as_i64().unwrap() as i32);
        let what = format!("[{rmin:e}, {rmax:e}] {qtype:?} sym={symmetric} reduce={reduce} mrr={mrr:?}");

        assert_eq!(qtype.qmin_qmax(reduce, symmetric), (qmin, qmax), "{what}");
        let (z, s) = compute_scale_zp(rmin, rmax, qmin, qmax, symmetric, mrr).unwrap();
        assert_eq!((s.to_bits(), z), (scale, zp), "{what}: scale {s:e}");
        if mrr.is_none() {
            let q = qparams(Range { min: rmin, max: rmax }, qtype, symmetric, reduce).unwrap();
            assert_eq!((q.scale.to_bits(), q.zero_point), (scale, zp), "{what}");
            let q = Range { min: rmin, max: rmax }
                .ort_qparams(qtype, symmetric, reduce)
                .unwrap();
            assert_eq!((q.scale.to_bits(), q.zero_point), (scale, zp), "{what}");
            qparams_checked += 1;
        }

        let probes: Vec<f32> = r["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| f32::from_bits(u32_of(p)))
            .collect();
        let want: Vec<i32> = v[9]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_i64().unwrap() as i32)
            .collect();
        let got = quantize_nparray(qtype, &probes, f32::from_bits(scale), zp).unwrap();
        assert_eq!(got, want, "{what}: probes {probes:?}");
        codes_checked += want.len();
        checked += 1;
    }
    assert_eq!(checked, vectors.len());
    assert!(
        qparams_checked > 900 && codes_checked > 15_000,
        "{qparams_checked} {codes_checked}"
    );
}

/// An activation scheme in ONNX Runtime's flavour gives ONNX Runtime's scale and zero point,
/// with the type's full code range, for every vector (or an error where the grid's ends
/// overflow `f32`).
#[test]
fn activation_schemes_in_the_ort_flavour() {
    use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, QParamsFlavour};
    let text = std::fs::read_to_string(data("ort/qparams.json")).expect("qparams.json");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let ranges = doc["ranges"].as_array().unwrap();
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        let v = v.as_array().unwrap();
        if !v[4].is_null() {
            continue;
        }
        let r = &ranges[v[0].as_u64().unwrap() as usize];
        let range = Range {
            min: f32::from_bits(u32_of(&r["rmin"])),
            max: f32::from_bits(u32_of(&r["rmax"])),
        };
        let qtype = QuantType::from_name(v[1].as_str().unwrap()).unwrap();
        let (symmetric, reduce_range) = (v[2].as_u64() == Some(1), v[3].as_u64() == Some(1));
        let (scale, zp) = (f32::from_bits(u32_of(&v[7])), v[8].as_i64().unwrap() as i32);
        let s = ActivationScheme::new(CalibratorKind::MinMax, qtype.bits(), symmetric)
            .unwrap()
            .with_flavour(QParamsFlavour::Ort { qtype, reduce_range })
            .unwrap();
        let (lo, hi) = qtype.full_range();
        match s.params(range) {
            Ok(p) => {
                assert_eq!(
                    (p.scale().to_bits(), p.zero_point()),
                    (scale.to_bits(), zp),
                    "{range:?} {qtype:?}"
                );
                assert_eq!((p.qmin(), p.qmax()), (lo, hi));
                n += 1;
            }
            Err(e) => {
                let ends = [lo, hi].map(|q| (q as f32 - zp as f32) * scale);
                assert!(ends.iter().any(|e| !e.is_finite()), "{range:?} {qtype:?}: {e}");
            }
        }
    }
    assert!(n > 800, "{n}"); // 836 of 912: the others are the widest ranges
                             // The type's width must be the scheme's.
    let s = ActivationScheme::new(CalibratorKind::MinMax, 8, false).unwrap();
    assert!(s
        .with_flavour(QParamsFlavour::Ort {
            qtype: QuantType::QInt4,
            reduce_range: false
        })
        .is_err());
}
