//! ONNX Runtime's histogram calibration, reproduced: `onnxruntime.quantization.calibrate.
//! HistogramCollector` (ONNX Runtime 1.32), including its dependence on batch order.
//!
//! ONNX Runtime lays out its histogram from the first batch and, when a later batch holds a
//! larger magnitude, widens it by whole bins of the *first* batch's width. The same data fed in
//! another order gives other bins, another histogram and another range: its entropy calibrator
//! picks `[-13.9, 14.1]` for a Laplace tensor with outliers fed in order and `[-47.7, 58.5]` fed
//! in reverse. Use this module to get the numbers ONNX Runtime gives (for instance to check a
//! migration); use [`crate::calib::HistogramCalibrator`] for a range that does not depend on
//! the order.
//!
//! Every step follows NumPy 2's float types: the data, thresholds, bin edges and the
//! smoothed distributions are `float32`, counts are `int64`, the CDF is `float64`, and NumPy's
//! pairwise summation order is reproduced. The results agree with ONNX Runtime's to the last
//! `f32` bit on the reference data (`tests/all/calib_compat.rs`).
//!
//! Not reproduced: the `distribution` method; NaN (ONNX Runtime drops them through
//! `nanmin`/`nanmax`, here they are an error); empty batches (ONNX Runtime records a range of
//! `[0, 0]` for them, here they change nothing).
//!
//! # Examples
//!
//! ```
//! use lowbit::compat::ort::{HistogramCollector, Method};
//!
//! // EntropyCalibrater's defaults: 128 bins, 128 quantized bins.
//! let mut c = HistogramCollector::new(Method::Entropy, false, 128, 128, 99.999)?;
//! let batch: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.1).sin()).collect();
//! c.collect(&batch)?;
//! let (lo, hi) = c.compute()?;
//! assert!(lo < 0.0 && hi > 0.0);
//! # Ok::<(), lowbit::calib::Error>(())
//! ```

use super::numpy::{
    cdf, histogram_edges_f32, histogram_uniform_f32, np_log_f32, np_sum, pairwise_sum, searchsorted_left,
};
use crate::calib::Error;

/// The calibration method (`HistogramCollector`'s `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `"entropy"`: KL-divergence search over windows symmetric about the centre bin.
    Entropy,
    /// `"percentile"`.
    Percentile,
}

#[derive(Debug, Clone)]
struct State {
    hist: Vec<u64>,
    edges: Vec<f32>,
    min: f32,
    max: f32,
    /// Only for the signed histogram (`collect_value`).
    threshold: f32,
}

/// ONNX Runtime's `HistogramCollector` for one tensor.
///
/// `collect` follows `collect_value` (signed histogram over `[-t, t]`) for entropy and for the
/// asymmetric percentile, and `collect_absolute_value` (histogram of `|x|`) for the symmetric
/// percentile, as ONNX Runtime does.
#[derive(Debug, Clone)]
pub struct HistogramCollector {
    method: Method,
    symmetric: bool,
    num_bins: usize,
    num_quantized_bins: usize,
    percentile: f64,
    state: Option<State>,
}

impl HistogramCollector {
    /// A collector with ONNX Runtime's parameters. Its calibraters' defaults:
    /// `EntropyCalibrater`: `(Entropy, false, 128, 128, _)`; `PercentileCalibrater`:
    /// `(Percentile, true, 2048, _, 99.999)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBins`] for `num_bins` or `num_quantized_bins` of 0 (or, for entropy,
    /// more quantized bins than bins), [`Error::InvalidPercentile`] outside `[0, 100]` (as
    /// ONNX Runtime).
    pub fn new(
        method: Method,
        symmetric: bool,
        num_bins: usize,
        num_quantized_bins: usize,
        percentile: f64,
    ) -> Result<Self, Error> {
        let bad = |bins| Error::InvalidBins {
            bins,
            min: 1,
            max: 1 << 24,
        };
        if num_bins == 0 || num_bins > 1 << 24 {
            return Err(bad(num_bins));
        }
        if method == Method::Entropy && (num_quantized_bins < 2 || num_quantized_bins > num_bins) {
            return Err(bad(num_quantized_bins));
        }
        if method == Method::Percentile && !(0.0..=100.0).contains(&percentile) {
            return Err(Error::InvalidPercentile(percentile));
        }
        Ok(Self {
            method,
            symmetric,
            num_bins,
            num_quantized_bins,
            percentile,
            state: None,
        })
    }

    /// The current histogram: counts and edges (`num_bins` grows as ONNX Runtime's does).
    pub fn histogram(&self) -> Option<(&[u64], &[f32])> {
        self.state.as_ref().map(|s| (&s.hist[..], &s.edges[..]))
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
        let min = batch.iter().copied().fold(f32::INFINITY, f32::min);
        let max = batch.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if self.method == Method::Percentile && self.symmetric {
            self.collect_absolute_value(batch, min, max);
        } else {
            self.collect_value(batch, min, max);
        }
        Ok(())
    }

    fn collect_absolute_value(&mut self, batch: &[f32], min: f32, max: f32) {
        let abs: Vec<f32> = batch.iter().map(|x| x.abs()).collect();
        let amax = abs.iter().copied().fold(0.0f32, f32::max);
        match &mut self.state {
            None => {
                let amin = abs.iter().copied().fold(f32::INFINITY, f32::min);
                let (hist, edges) = histogram_uniform_f32(&abs, self.num_bins, amin, amax);
                self.state = Some(State {
                    hist,
                    edges,
                    min,
                    max,
                    threshold: 0.0,
                });
            }
            Some(s) => {
                let last = *s.edges.last().expect("edges");
                if amax > last {
                    let width = s.edges[1] - s.edges[0];
                    s.edges.extend(arange_f32(last + width, amax + width, width));
                }
                let mut hist = histogram_edges_f32(&abs, &s.edges);
                for (h, o) in hist.iter_mut().zip(&s.hist) {
                    *h += o;
                }
                s.hist = hist;
                s.min = s.min.min(min);
                s.max = s.max.max(max);
            }
        }
    }

    fn collect_value(&mut self, batch: &[f32], min: f32, max: f32) {
        let threshold = min.abs().max(max.abs());
        match &mut self.state {
            None => {
                let (hist, edges) = histogram_uniform_f32(batch, self.num_bins, -threshold, threshold);
                self.state = Some(State {
                    hist,
                    edges,
                    min,
                    max,
                    threshold,
                });
            }
            Some(s) => {
                let old_t = s.threshold;
                if threshold <= old_t {
                    let (h, _) = histogram_uniform_f32(batch, s.hist.len(), -old_t, old_t);
                    for (a, b) in s.hist.iter_mut().zip(h) {
                        *a += b;
                    }
                } else if old_t == 0.0 {
                    let (mut h, e) = histogram_uniform_f32(batch, s.hist.len(), -threshold, threshold);
                    for (a, b) in h.iter_mut().zip(&s.hist) {
                        *a += b;
                    }
                    s.hist = h;
                    s.edges = e;
                    s.threshold = threshold;
                } else {
                    let old_n = s.hist.len();
                    let stride = 2.0f32 * old_t / old_n as f32;
                    let half = (floor_divide_f32(threshold - old_t, stride) + 1.0) as usize;
                    let new_n = old_n + 2 * half;
                    let new_t = half as f32 * stride + old_t;
                    let (mut h, e) = histogram_uniform_f32(batch, new_n, -new_t, new_t);
                    for (a, b) in h[half..new_n - half].iter_mut().zip(&s.hist) {
                        *a += b;
                    }
                    s.hist = h;
                    s.edges = e;
                    s.threshold = new_t;
                }
                s.min = s.min.min(min);
                s.max = s.max.max(max);
            }
        }
    }

    /// `compute_collection_result` for this tensor: `(lo, hi)`.
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any batch.
    pub fn compute(&self) -> Result<(f32, f32), Error> {
        let s = self.state.as_ref().ok_or(Error::NoData)?;
        let (lo, hi) = match self.method {
            Method::Percentile => self.percentile(s),
            Method::Entropy => self.entropy(s),
        };
        Ok((if lo < s.min { s.min } else { lo }, if hi > s.max { s.max } else { hi }))
    }

    fn percentile(&self, s: &State) -> (f32, f32) {
        let cdf = cdf(&s.hist);
        let p = self.percentile;
        if self.symmetric {
            let i = searchsorted_left(&cdf, p / 100.0);
            let e = s.edges[i];
            (-e, e)
        } else {
            let cut = (100.0 - p) / 200.0;
            let r = searchsorted_left(&cdf, 1.0 - cut);
            let l = searchsorted_left(&cdf, cut);
            (s.edges[l], s.edges[r])
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn entropy(&self, s: &State) -> (f32, f32) {
        let hist = &s.hist;
        let n = hist.len();
        let zero = n / 2;
        let nq = self.num_quantized_bins;
        let half_q = nq / 2;
        let mut best = (f32::INFINITY, (0.0f32, 0.0f32));
        let mut first = true;
        for i in half_q..=zero {
            let start = zero - i;
            let end = (zero + i + 1).min(n);
            let th = (s.edges[start], s.edges[end]);
            let sliced = &hist[start..end];
            let mut p: Vec<u64> = sliced.to_vec();
            let left: u64 = hist[..start].iter().sum();
            let right: u64 = hist[end..].iter().sum();
            p[0] += left;
            let last = p.len() - 1;
            p[last] += right;
            let merged = sliced.len() / nq;
            let mut quantized = vec![0u64; nq];
            for (k, q) in quantized.iter_mut().enumerate() {
                *q = sliced[k * merged..(k + 1) * merged].iter().sum();
            }
            quantized[nq - 1] += sliced[nq * merged..].iter().sum::<u64>();
            let mut q = vec![0u64; p.len()];
            for k in 0..nq {
                let (a, b) = (k * merged, (k + 1) * merged);
                let norm = p[a..b].iter().filter(|&&v| v != 0).count();
                if norm != 0 {
                    let v = (quantized[k] as f64 / norm as f64) as u64; // float into int64: truncation
                    q[a..b].fill(v);
                }
            }
            let div = match (smooth(&p), smooth(&q)) {
                (Some(ps), Some(qs)) => scipy_entropy_f32(&ps, &qs),
                _ => f32::INFINITY,
            };
            // np.argmin: the first smallest
            if first || div < best.0 {
                best = (div, th);
                first = false;
            }
        }
        best.1
    }
}

/// ONNX Runtime's `smooth_distribution` (`eps = 1e-4`), in `float32` as NumPy evaluates it.
fn smooth(p: &[u64]) -> Option<Vec<f32>> {
    let n_zeros = p.iter().filter(|&&v| v == 0).count();
    let n_nonzeros = p.len() - n_zeros;
    if n_nonzeros == 0 {
        return None;
    }
    let eps1 = (1e-4 * n_zeros as f64 / n_nonzeros as f64) as f32;
    let eps = 1e-4f32;
    Some(
        p.iter()
            .map(|&v| if v == 0 { v as f32 + eps } else { v as f32 + (-eps1) })
            .collect(),
    )
}

/// `scipy.stats.entropy(p, q)` for `float32` inputs as the reference ran it, cast to `float32`
/// as ONNX Runtime does: each distribution divided by its `float32` pairwise sum,
/// `x * log(x / y)` in `f32` with NumPy's SIMD `float32` log, summed pairwise in `f32`.
fn scipy_entropy_f32(p: &[f32], q: &[f32]) -> f32 {
    let sp = np_sum(p);
    let sq = np_sum(q);
    let v: Vec<f32> = p.iter().zip(q).map(|(&a, &b)| rel_entr_f32(a / sp, b / sq)).collect();
    0.0f32 + pairwise_sum(&v)
}

/// SciPy's `rel_entr` for `float32`.
fn rel_entr_f32(x: f32, y: f32) -> f32 {
    if x > 0.0 && y > 0.0 {
        x * np_log_f32(x / y)
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f32::INFINITY
    }
}

/// NumPy's `np.floor_divide` for `float32` (`npy_floor_dividef`).
fn floor_divide_f32(a: f32, b: f32) -> f32 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut fd = div.floor();
        if div - fd > 0.5 {
            fd += 1.0;
        }
        fd
    } else {
        0.0f32.copysign(a / b)
    }
}

/// `np.arange(start, stop, step)` for `float32` scalars: length `ceil((stop - start) / step)`
/// evaluated in `f32`, values `start + i * delta` with `delta = (start + step) - start`.
fn arange_f32(start: f32, stop: f32, step: f32) -> Vec<f32> {
    let len = f64::from((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let len = len as usize;
    let mut v = Vec::with_capacity(len);
    v.push(start);
    if len > 1 {
        let next = start + step;
        v.push(next);
        let delta = next - start;
        for i in 2..len {
            v.push(start + i as f32 * delta);
        }
    }
    v
}
