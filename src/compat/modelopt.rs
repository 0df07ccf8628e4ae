//! NVIDIA modelopt's histogram calibration, reproduced: `modelopt.torch.quantization.calib.
//! HistogramCalibrator` (modelopt 0.47, `num_bits=8, axis=None, unsigned=False,
//! num_bins=2048, torch_hist=True`), including its dependence on batch order.
//!
//! modelopt builds 2048 bins over `[0, max|x|]` of the *first* batch; a later batch with a
//! larger magnitude adds bins of the same width. The same data in another order gives another
//! histogram and another amax: 11.03 and 10.86 by entropy for the real MiniLM layer-0 FFN input
//! fed in order and reversed. Use this module to get modelopt's numbers; use
//! [`crate::calib::HistogramCalibrator`] for a range that does not depend on the order.
//!
//! The steps are modelopt's: `collect` takes `|x|` if the batch has a negative value, counts
//! with `torch.histc` (bin `trunc(x * bins / max)` in `f32`) over `[0, max]`, and grows the
//! edges with `torch.arange(0, max + width, width)`; `compute_amax` runs
//! `_compute_amax_entropy` (from bin 128, with `bins[0] = bins[1]`, the last smallest
//! divergence), `_compute_amax_mse` (fake-quantizes the bin centres for every candidate from
//! bin 128, first smallest error) or `_compute_amax_percentile` (lower edge of the bin where
//! the CDF reaches `p`). The references ran on a GPU, whose `histc` and reductions may differ
//! from this CPU emulation in the last bit, so agreement is to within one bin width (and
//! exact in most cases, see `tests/all/calib_compat.rs`).
//!
//! Not reproduced: `skip_zeros`, `unsigned=True`, `num_bits` other than 8, FP8 `num_bits`,
//! `torch_hist=False`; NaN and infinities are an error here.
//!
//! # Examples
//!
//! ```
//! use lowbit::compat::modelopt::{HistogramCalibrator, Method};
//!
//! let mut c = HistogramCalibrator::new();
//! let batch: Vec<f32> = (0..10_000).map(|i| ((i as f32) * 0.01).sin() * 2.0).collect();
//! c.collect(&batch)?;
//! let amax = c.compute_amax(Method::Percentile(99.99))?;
//! assert!(amax > 1.9 && amax <= 2.0);
//! # Ok::<(), lowbit::calib::Error>(())
//! ```

use super::numpy::{cdf, np_sum, pairwise_sum, rel_entr, searchsorted_left};
use crate::calib::Error;

/// The amax method of `compute_amax`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// `"entropy"` (`start_bin=128`, `stride=1`).
    Entropy,
    /// `"mse"` (`start_bin=128`, `stride=1`).
    Mse,
    /// `"percentile"` with the given percentile in `[0, 100]`.
    Percentile(f64),
}

/// modelopt's `HistogramCalibrator` with `torch_hist=True`.
#[derive(Debug, Clone)]
pub struct HistogramCalibrator {
    num_bins: usize,
    hist: Vec<u64>,
    /// `None` before the first batch.
    edges: Option<Vec<f32>>,
}

impl Default for HistogramCalibrator {
    fn default() -> Self {
        Self::new()
    }
}

/// `torch.histc(x, bins, min=0, max)` as the CUDA kernel computes it: values in `[0, max]`,
/// bin `trunc(x * bins / max)` in `f32`, the top edge in the last bin.
fn histc(x: &[f32], bins: usize, max: f32) -> Vec<u64> {
    let (lo, hi) = if max == 0.0 { (-1.0f32, 1.0f32) } else { (0.0, max) };
    let mut h = vec![0u64; bins];
    let nb = bins as f32;
    let span = hi - lo;
    for &v in x {
        if v >= lo && v <= hi {
            let mut b = ((v - lo) * nb / span) as usize;
            if b == bins {
                b -= 1;
            }
            h[b] += 1;
        }
    }
    h
}

impl HistogramCalibrator {
    /// A calibrator with 2048 bins (modelopt's defaults).
    pub fn new() -> Self {
        Self {
            num_bins: 2048,
            hist: Vec::new(),
            edges: None,
        }
    }

    /// The current histogram: counts and edges.
    pub fn histogram(&self) -> Option<(&[u64], &[f32])> {
        self.edges.as_deref().map(|e| (&self.hist[..], e))
    }

    /// `collect` one batch (flattened).
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`] if the batch holds NaN or an infinity (state unchanged).
    pub fn collect(&mut self, batch: &[f32]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some((index, &value)) = batch.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite { index, value });
        }
        let neg = batch.iter().any(|&v| v < 0.0);
        let owned: Vec<f32>;
        let x: &[f32] = if neg {
            owned = batch.iter().map(|v| v.abs()).collect();
            &owned
        } else {
            batch
        };
        let x_max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        match &mut self.edges {
            None => {
                self.hist = histc(x, self.num_bins, x_max);
                self.edges = Some(crate::quant::codebook::torch_linspace_f32(
                    0.0,
                    x_max,
                    self.num_bins + 1,
                    false,
                ));
            }
            Some(edges) => {
                let last = *edges.last().expect("edges");
                if x_max > last {
                    let width = edges[1] - edges[0];
                    self.num_bins = (x_max / width).ceil() as usize;
                    let end = x_max + width;
                    let len = (f64::from(end) / f64::from(width)).ceil() as usize;
                    *edges = (0..len).map(|k| width * k as f32).collect();
                }
                let top = *edges.last().expect("edges");
                let mut h = histc(x, self.num_bins, top);
                for (a, b) in h.iter_mut().zip(&self.hist) {
                    *a += b;
                }
                self.hist = h;
            }
        }
        Ok(())
    }

    /// `compute_amax(method)`.
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any batch; [`Error::InvalidPercentile`] outside `[0, 100]`.
    pub fn compute_amax(&self, method: Method) -> Result<f32, Error> {
        if let Method::Percentile(p) = method {
            if !(0.0..=100.0).contains(&p) {
                return Err(Error::InvalidPercentile(p));
            }
        }
        let edges = self.edges.as_deref().ok_or(Error::NoData)?;
        Ok(match method {
            Method::Entropy => entropy(&self.hist, edges),
            Method::Mse => mse(&self.hist, edges),
            Method::Percentile(p) => {
                let c = cdf(&self.hist);
                edges[searchsorted_left(&c, p / 100.0).min(edges.len() - 1)]
            }
        })
    }
}

/// `_compute_amax_entropy(hist, edges, 8, False, 1, 128)`.
fn entropy(hist: &[u64], edges: &[f32]) -> f32 {
    let mut bins: Vec<u64> = hist.to_vec();
    if bins.len() > 1 {
        bins[0] = bins[1];
    }
    let nbins = 128usize;
    let stop = bins.len();
    let mut best = (f64::INFINITY, 128usize);
    let mut any = false;
    let mut new_density = vec![0f64; stop];
    for i in nbins..=stop {
        // digitize(range(i), linspace(0, i, 129)) - 1 == floor(128 j / i); zero bins are -1.
        let mut sums = [0u64; 128];
        let mut counts = [0u32; 128];
        for (j, &b) in bins[..i].iter().enumerate() {
            if b != 0 {
                let g = j * nbins / i;
                sums[g] += b;
                counts[g] += 1;
            }
        }
        for (j, &b) in bins[..i].iter().enumerate() {
            new_density[j] = if b != 0 {
                let g = j * nbins / i;
                sums[g] as f64 / f64::from(counts[g])
            } else {
                0.0
            };
        }
        let tail: u64 = bins[i..].iter().sum();
        let total_ref: u64 = bins[..i].iter().sum::<u64>() + tail;
        let sq = np_sum(&new_density[..i]);
        let tr = total_ref as f64;
        let v: Vec<f64> = (0..i)
            .map(|j| {
                let r = if j == i - 1 { bins[j] + tail } else { bins[j] };
                rel_entr(r as f64 / tr, new_density[j] / sq)
            })
            .collect();
        let ent = 0.0 + pairwise_sum(&v);
        // last argmin: ties go to the later candidate
        if !any || ent <= best.0 {
            best = (ent, i);
            any = true;
        }
    }
    edges[best.1.min(edges.len() - 1)]
}

/// `_compute_amax_mse(hist, edges, 8, False, 1, 128)` with the CUDA fake quantizer
/// (`scale = 127 / amax`, `rint`, clamp to `[-127, 127]`, divide).
fn mse(hist: &[u64], edges: &[f32]) -> f32 {
    let centers: Vec<f32> = edges.windows(2).map(|w| (w[1] + w[0]) / 2.0).collect();
    let counts: Vec<f32> = hist.iter().map(|&c| c as f32).collect();
    let n = centers.len().min(counts.len());
    let mut best = (f64::INFINITY, 128usize.min(n.saturating_sub(1)));
    for (i, &amax) in centers.iter().enumerate().take(n).skip(128) {
        let scale = 127.0f32 / amax;
        let mut acc = 0.0f64;
        for (&c, &w) in centers[..n].iter().zip(&counts[..n]) {
            let q = (c * scale).round_ties_even().clamp(-127.0, 127.0) / scale;
            let d = q - c;
            acc += f64::from(d * d * w);
        }
        let m = acc / n as f64;
        if m < best.0 {
            best = (m, i);
        }
    }
    centers.get(best.1).copied().unwrap_or(0.0)
}
