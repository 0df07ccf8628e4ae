//! The per-layer report: one row per weight or activation ([`LayerReport`]), the error sums
//! behind it, and the whole [`Report`] as an aligned table.

use crate::metrics::{sqnr_db, ErrorMetrics};
use std::fmt;

use crate::calib::Range;

/// Whether a report row is about a weight or an activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A weight, quantized directly.
    Weight,
    /// An activation, quantized with a calibrated range.
    Activation,
}

/// One row of a [`Report`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    /// Layer (tensor) name.
    pub name: String,
    /// Weight or activation.
    pub kind: TensorKind,
    /// The scheme, as [`WeightScheme::describe`](super::WeightScheme::describe) prints it.
    pub scheme: String,
    /// Elements measured.
    pub elements: usize,
    /// Bytes in f32.
    pub bytes_before: usize,
    /// Bytes stored after quantization (codes, scales, zero points).
    pub bytes_after: usize,
    /// `8 · bytes_after / elements`.
    pub bits_per_element: f64,
    /// Mean squared error, `Σ(x - x')² / n`.
    pub mse: f64,
    /// Mean signal power, `Σx² / n` (so `sqnr_db = 10 log10(signal_power / mse)`).
    pub signal_power: f64,
    /// Signal-to-quantization-noise ratio, `10 log10(Σx² / Σ(x - x')²)` dB (infinite when exact).
    pub sqnr_db: f64,
    /// Largest `|x - x'|`.
    pub max_abs_error: f32,
    /// The calibrated range (activations).
    pub range: Option<Range>,
    /// Fraction of the values outside the range, clipped (activations).
    pub clipped_fraction: Option<f64>,
}

/// Running error sums.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ErrStats {
    pub(super) metrics: ErrorMetrics,
    pub(super) clipped: usize,
}

impl ErrStats {
    pub(super) fn add(&mut self, x: &[f32], y: &[f32]) {
        self.metrics.add(x, y);
    }
    pub(super) fn mse(&self) -> f64 {
        self.metrics.mse()
    }
    pub(super) fn power(&self) -> f64 {
        self.metrics.signal_power()
    }
    pub(super) fn sqnr(&self) -> f64 {
        self.metrics.sqnr_db()
    }
}

pub(super) fn bits_per(bytes: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        8.0 * bytes as f64 / n as f64
    }
}

/// A per-layer report, as data ([`Report::layers`]) or an aligned table (`Display`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One row per layer, in the order they were quantized.
    pub layers: Vec<LayerReport>,
}

impl Report {
    /// Total f32 bytes over the weight rows.
    pub fn weight_bytes_before(&self) -> usize {
        self.weights().map(|l| l.bytes_before).sum()
    }
    /// Total stored bytes over the weight rows.
    pub fn weight_bytes_after(&self) -> usize {
        self.weights().map(|l| l.bytes_after).sum()
    }
    /// SQNR over all weight elements together (total signal over total noise), dB.
    pub fn weight_sqnr_db(&self) -> f64 {
        let n = |l: &LayerReport| l.elements as f64;
        let signal: f64 = self.weights().map(|l| l.signal_power * n(l)).sum();
        let noise: f64 = self.weights().map(|l| l.mse * n(l)).sum();
        sqnr_db(signal, noise)
    }
    fn weights(&self) -> impl Iterator<Item = &LayerReport> {
        self.layers.iter().filter(|l| l.kind == TensorKind::Weight)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = [
            "layer",
            "kind",
            "scheme",
            "elements",
            "bytes f32",
            "bytes q",
            "bits/el",
            "MSE",
            "SQNR dB",
            "max |err|",
            "range",
            "clipped",
        ];
        let mut rows: Vec<[String; 12]> = Vec::new();
        for l in &self.layers {
            rows.push([
                l.name.clone(),
                match l.kind {
                    TensorKind::Weight => "weight".into(),
                    TensorKind::Activation => "act".into(),
                },
                l.scheme.clone(),
                l.elements.to_string(),
                l.bytes_before.to_string(),
                l.bytes_after.to_string(),
                format!("{:.3}", l.bits_per_element),
                format!("{:.3e}", l.mse),
                format!("{:.2}", l.sqnr_db),
                format!("{:.3e}", l.max_abs_error),
                l.range.map_or("-".into(), |r| format!("[{:.4}, {:.4}]", r.min, r.max)),
                l.clipped_fraction.map_or("-".into(), |c| format!("{:.4}%", 100.0 * c)),
            ]);
        }
        let wb = self.weight_bytes_before();
        if wb > 0 {
            let wa = self.weight_bytes_after();
            let n: usize = self.weights().map(|l| l.elements).sum();
            let maxe = self.weights().map(|l| l.max_abs_error).fold(0f32, f32::max);
            let mse = self.weights().map(|l| l.mse * l.elements as f64).sum::<f64>() / n.max(1) as f64;
            rows.push([
                "total (weights)".into(),
                "".into(),
                format!("{:.2}x smaller", wb as f64 / wa.max(1) as f64),
                n.to_string(),
                wb.to_string(),
                wa.to_string(),
                format!("{:.3}", bits_per(wa, n)),
                format!("{:.3e}", mse),
                format!("{:.2}", self.weight_sqnr_db()),
                format!("{:.3e}", maxe),
                "-".into(),
                "-".into(),
            ]);
        }
        let mut w = head.map(str::len);
        for r in &rows {
            for (w, c) in w.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            for (i, (c, w)) in cells.iter().zip(&w).enumerate() {
                let sep = if i == 0 { "" } else { "  " };
                // Text columns left-aligned, numbers right-aligned.
                if i < 3 {
                    write!(f, "{sep}{c:<w$}")?;
                } else {
                    write!(f, "{sep}{c:>w$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &head)?;
        let rule: Vec<String> = w.iter().map(|&n| "-".repeat(n)).collect();
        line(f, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
        for r in &rows {
            line(f, &r.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}
