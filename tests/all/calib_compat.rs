//! The compat calibrators against the references made with the real tools
//! (`../shared/refs/calib/`, README there): ONNX Runtime 1.32 `HistogramCollector` and NVIDIA
//! modelopt 0.47 `HistogramCalibrator(torch_hist=True)`, on three MiniLM layer-0 activations and
//! three synthetic tensors, 8 batches (`np.array_split` along axis 0) fed in order and reversed.

use crate::common::{shared_ref, Npz};
use lowbit::compat::{modelopt, ort};
use std::collections::BTreeMap;

/// `(name in the reference keys, file, key in the npz)`.
const DATA: &[(&str, &str, &str)] = &[
    ("syn_normal", "calib/synthetic_dists.npz", "syn_normal"),
    (
        "syn_laplace_outlier",
        "calib/synthetic_dists.npz",
        "syn_laplace_outlier",
    ),
    ("syn_relu_lognormal", "calib/synthetic_dists.npz", "syn_relu_lognormal"),
    ("L0.query_in", "calib/minilm_L0_query_in.npz", "x"),
    ("L0.ffn_up_in", "calib/minilm_L0_ffn_up_in.npz", "x"),
    ("L0.ffn_down_in", "calib/minilm_L0_ffn_down_in.npz", "x"),
];

/// The array as f32 and its number of rows.
pub fn load(file: &str, key: &str) -> Option<(Vec<f32>, usize)> {
    let path = shared_ref(file)?;
    let mut npz = Npz::open(&path).expect("npz");
    let arr = npz.by_name(key).expect("read").expect("key");
    let rows = arr.shape()[0] as usize;
    let v: Vec<f32> = match arr.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 2 => arr
            .into_vec::<half::f16>()
            .expect("f16")
            .into_iter()
            .map(f32::from)
            .collect(),
        _ => arr.into_vec::<f32>().expect("f32"),
    };
    Some((v, rows))
}

/// `np.array_split(x, 8)` along the first axis, in order or reversed.
pub fn batches(x: &[f32], rows: usize, rev: bool) -> Vec<&[f32]> {
    let cols = x.len() / rows;
    let (q, r) = (rows / 8, rows % 8);
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0..8 {
        let n = q + usize::from(i < r);
        out.push(&x[at * cols..(at + n) * cols]);
        at += n;
    }
    if rev {
        out.reverse();
    }
    out
}

fn refs(file: &str) -> Option<BTreeMap<String, serde_json::Value>> {
    let p = shared_ref(file)?;
    Some(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
}

fn selected() -> Vec<&'static (&'static str, &'static str, &'static str)> {
    let only = std::env::var("LOWBIT_CALIB_DATA").ok();
    DATA.iter()
        .filter(|d| only.as_deref().is_none_or(|o| d.0.starts_with(o)))
        .collect()
}

#[test]
fn ort_matches_reference() {
    let Some(refs) = refs("calib/ort_calib_refs.json") else {
        eprintln!("skipped: ../shared/refs not present");
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, file, key) in selected() {
        let (x, rows) = load(file, key).unwrap();
        for order in ["fwd", "rev"] {
            let b = batches(&x, rows, order == "rev");
            let configs: [(&str, ort::Method, bool, usize, usize, f64); 4] = [
                ("entropy_b128", ort::Method::Entropy, false, 128, 128, 0.0),
                ("entropy_b2048", ort::Method::Entropy, false, 2048, 128, 0.0),
                ("percentile99.999", ort::Method::Percentile, false, 2048, 128, 99.999),
                ("percentile99.99_sym", ort::Method::Percentile, true, 2048, 128, 99.99),
            ];
            for (cfg, m, sym, nb, nq, p) in configs {
                let mut c = ort::HistogramCollector::new(m, sym, nb, nq, p).unwrap();
                for batch in &b {
                    c.collect(batch).unwrap();
                }
                let got = c.compute().unwrap();
                let want = &refs[&format!("{name}|{order}|ort|{cfg}")];
                let want = (want[0].as_f64().unwrap() as f32, want[1].as_f64().unwrap() as f32);
                checked += 1;
                if got != want {
                    failures.push(format!("{name}|{order}|{cfg}: got {got:?}, want {want:?}"));
                }
            }
            // MinMaxCalibrater's "minmax" is the plain running min and max.
            let mut mm = lowbit::calib::MinMaxCalibrator::new();
            for batch in &b {
                lowbit::calib::Calibrator::observe(&mut mm, batch).unwrap();
            }
            let r = lowbit::calib::Calibrator::range(&mm).unwrap();
            let want = &refs[&format!("{name}|{order}|ort|minmax")];
            assert_eq!(
                (r.min, r.max),
                (want[0].as_f64().unwrap() as f32, want[1].as_f64().unwrap() as f32)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn modelopt_matches_reference() {
    let Some(refs) = refs("calib/modelopt_torch_calib_refs.json") else {
        eprintln!("skipped: ../shared/refs not present");
        return;
    };
    let (mut exact, mut total) = (0, 0);
    let mut failures = Vec::new();
    for (name, file, key) in selected() {
        let (x, rows) = load(file, key).unwrap();
        for order in ["fwd", "rev"] {
            let mut c = modelopt::HistogramCalibrator::new();
            for batch in batches(&x, rows, order == "rev") {
                c.collect(batch).unwrap();
            }
            let (_, edges) = c.histogram().unwrap();
            let width = edges[1] - edges[0];
            for (m, tag) in [
                (modelopt::Method::Entropy, "entropy"),
                (modelopt::Method::Mse, "mse"),
                (modelopt::Method::Percentile(99.99), "percentile99.99"),
                (modelopt::Method::Percentile(99.9), "percentile99.9"),
            ] {
                let got = c.compute_amax(m).unwrap();
                let want = refs[&format!("{name}|{order}|torchhist|{tag}")].as_f64().unwrap() as f32;
                total += 1;
                if got == want {
                    exact += 1;
                } else {
                    eprintln!(
                        "{name}|{order}|{tag}: got {got}, want {want} ({:+.3} bins)",
                        (got - want) / width
                    );
                }
                if (got - want).abs() > width * 1.0001 {
                    failures.push(format!("{name}|{order}|{tag}: got {got}, want {want}, bin {width}"));
                }
            }
        }
    }
    eprintln!("modelopt torchhist: {exact} of {total} exact");
    assert!(
        failures.is_empty(),
        "{} of {total} beyond one bin:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
