//! Calibrate one tensor with every histogram method, batches in order and reversed, with
//! lowbit's order-independent histogram and the reproductions of NVIDIA modelopt and ONNX
//! Runtime, and print the ranges side by side.
//!
//! ```text
//! cargo run --release --example calibrate [file.npy]
//! ```
//!
//! The `.npy` (f32 or f16, any shape) is split into 8 batches along its first axis, as
//! `numpy.array_split(x, 8)`. Without an argument it reads a real activation shipped with the
//! crate: the input of MiniLM-L6 layer 0's FFN up-projection, every 8th of 8192 token rows
//! (1024 × 384, f16).

use lowbit::calib::{Calibrator, HistogramCalibrator, Method};
use lowbit::compat::{modelopt, ort};

fn load(path: &str) -> Result<(Vec<f32>, usize), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let npy = npyz::NpyFile::new(&bytes[..])?;
    let rows = npy.shape().first().copied().unwrap_or(1).max(1) as usize;
    let data = match npy.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 2 => {
            npy.into_vec::<half::f16>()?.into_iter().map(f32::from).collect()
        }
        npyz::DType::Plain(t) if t.size_field() == 8 => npy.into_vec::<f64>()?.into_iter().map(|x| x as f32).collect(),
        _ => npy.into_vec::<f32>()?,
    };
    Ok((data, rows))
}

/// `numpy.array_split(x, 8)` along the first axis.
fn batches(x: &[f32], rows: usize) -> Vec<&[f32]> {
    let cols = x.len() / rows;
    let (q, r) = (rows / 8, rows % 8);
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0..8 {
        let n = q + usize::from(i < r);
        if n > 0 {
            out.push(&x[at * cols..(at + n) * cols]);
        }
        at += n;
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/minilm_L0_ffn_up_in_1024x384.npy"
    );
    let path = std::env::args().nth(1).unwrap_or_else(|| default.to_string());
    let (x, rows) = load(&path)?;
    let fwd = batches(&x, rows);
    let rev: Vec<&[f32]> = fwd.iter().rev().copied().collect();
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    println!("{path}");
    println!(
        "{} values, {} batches, max|x| = {amax}, one bin = max|x|/2048 = {:.5}\n",
        x.len(),
        fwd.len(),
        amax / 2048.0
    );

    // Collect once per order; every method reads the same collected state.
    let mut ours = Vec::new();
    let mut mo = Vec::new();
    for order in [&fwd, &rev] {
        let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 })?;
        let mut m = modelopt::HistogramCalibrator::new();
        for b in order.iter() {
            h.observe(b)?;
            m.collect(b)?;
        }
        ours.push(h);
        mo.push(m);
    }
    let ort_range = |order: &[&[f32]], method, sym, bins, p| -> Result<String, lowbit::calib::Error> {
        let mut c = ort::HistogramCollector::new(method, sym, bins, 128, p)?;
        for b in order {
            c.collect(b)?;
        }
        let (lo, hi) = c.compute()?;
        Ok(format!("[{lo:.4}, {hi:.4}]"))
    };

    println!(
        "| {:<17} | {:<5} | {:>16} | {:>16} | {:>24} |",
        "method", "order", "lowbit (default)", "modelopt 0.47", "ONNX Runtime 1.32"
    );
    println!("|{:-<19}|{:-<7}|{:->18}|{:->18}|{:->26}|", "", "", "", "", "");
    type Row = (
        &'static str,
        Method,
        Option<modelopt::Method>,
        Option<(ort::Method, bool, usize, f64)>,
    );
    let rows_: [Row; 4] = [
        (
            "entropy (8 bit)",
            Method::Entropy { bits: 8 },
            Some(modelopt::Method::Entropy),
            Some((ort::Method::Entropy, false, 2048, 0.0)),
        ),
        (
            "mse (8 bit)",
            Method::Mse { bits: 8 },
            Some(modelopt::Method::Mse),
            None,
        ),
        (
            "percentile 99.99",
            Method::Percentile(99.99),
            Some(modelopt::Method::Percentile(99.99)),
            Some((ort::Method::Percentile, true, 2048, 99.99)),
        ),
        (
            "percentile 99.9",
            Method::Percentile(99.9),
            Some(modelopt::Method::Percentile(99.9)),
            Some((ort::Method::Percentile, true, 2048, 99.9)),
        ),
    ];
    let mut moved = [false; 3];
    for (name, ours_m, mo_m, ort_m) in rows_ {
        let mut cells = Vec::new();
        for (i, order) in [&fwd, &rev].into_iter().enumerate() {
            let a = format!("{:.4}", ours[i].range_with(ours_m, true)?.max);
            let b = match mo_m {
                Some(m) => format!("{:.4}", mo[i].compute_amax(m)?),
                None => "-".into(),
            };
            let c = match ort_m {
                Some((m, sym, bins, p)) => ort_range(order, m, sym, bins, p)?,
                None => "(no MSE)".into(),
            };
            cells.push((a, b, c));
        }
        for (i, label) in ["fwd", "rev"].into_iter().enumerate() {
            let (a, b, c) = &cells[i];
            println!(
                "| {:<17} | {:<5} | {:>16} | {:>16} | {:>24} |",
                if i == 0 { name } else { "" },
                label,
                a,
                b,
                c
            );
        }
        moved[0] |= cells[0].0 != cells[1].0;
        moved[1] |= cells[0].1 != cells[1].1;
        moved[2] |= cells[0].2 != cells[1].2;
    }
    println!();
    for (tool, m) in ["lowbit (default)", "modelopt 0.47", "ONNX Runtime 1.32"]
        .iter()
        .zip(moved)
    {
        println!(
            "{tool:<18} {}",
            if m {
                "moves with batch order"
            } else {
                "same in both orders"
            }
        );
    }
    Ok(())
}
