//! ONNX Runtime 1.32 reproduced: its quantization parameters (`compute_scale_zp` and the
//! codes of `quantize_nparray`, [`qparams`], [`compute_scale_zp`], [`quantize_nparray`]) and its
//! histogram calibration (`onnxruntime.quantization.calibrate.HistogramCollector`,
//! [`HistogramCollector`]), including its dependence on batch order.
//!
//! # Histogram calibration
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
//! ## Limits
//!
//! ONNX Runtime grows its histogram by whole bins of the first batch's width, without bound: a
//! first batch of `1e-6` then one of `1e6` asks for 2^50 bins (512 TB of counts), and a first
//! batch of zeros or subnormals leaves a zero width it cannot grow by. Here a histogram holds at
//! most [`MAX_BINS`] bins, and an entropy histogram at most [`MAX_ENTROPY_BINS`] (the entropy
//! search is quadratic in the bins: ONNX Runtime's own takes hours at 2^16 bins); a batch that
//! would grow it further is refused with [`Error::TooManyBins`] before anything is allocated,
//! the state unchanged. The signed histogram spans `[-t, t]` in `f32`, so magnitudes above
//! `f32::MAX / 2` (where NumPy's bin edges overflow to infinity and NaN) are refused with
//! [`Error::MagnitudeTooLarge`].
//!
//! ## Example
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
//!
//! # Quantization parameters
//!
//! [`qparams`](fn@qparams), [`compute_scale_zp`] and [`quantize_nparray`] are
//! `onnxruntime.quantization.quant_utils`'s functions of those names (with
//! `get_qmin_qmax_for_qType` as [`QuantType::qmin_qmax`]), which the QDQ quantizer calls to
//! turn a calibrated range into the `scale` and `zero_point` of a `QuantizeLinear` node.
//!
//! ONNX Runtime's formula is not torch.ao's
//! ([`Range::affine_uint8`](crate::calib::Range::affine_uint8)):
//!
//! - the range is widened to contain 0, then (symmetric) made `[-amax, amax]`;
//! - the width and `scale = (rmax - rmin) / (qmax - qmin)` are computed in `f64` from the
//!   `f32` ends, and the scale is rounded to `f32` only at the end (torch.ao divides in `f32`);
//! - a scale below `f32::MIN_POSITIVE` (`numpy.finfo(float32).tiny`) gives scale 1 and zero
//!   point 0 (torch.ao clamps the scale up to its `eps` instead);
//! - asymmetric: `zero_point = round(qmin - rmin / scale)` in `f64` with the unrounded scale,
//!   ties to even (`numpy.round`);
//! - symmetric: `zero_point = round((qmin + qmax) / 2)`, whatever the range: 0 for the signed
//!   types, 128 for `QUInt8`, 32768 for `QUInt16`, 8 for `QUInt4`;
//! - the code range depends on the type, `symmetric` (`QInt8` and `QInt16` drop their most
//!   negative code) and `reduce_range` (one bit less, as [`QuantType::qmin_qmax`] lists).
//!
//! On the range `[-10.68, 10.68]` (`f32` ends) as `QUInt8`, ONNX Runtime's symmetric zero
//! point is 128 and its asymmetric one 127 (`10.68 / scale` falls just below 127.5 in `f64`),
//! where torch.ao's asymmetric formula gives 128 (the quotient is exactly 127.5 in `f32`,
//! rounded to even; ONNX Runtime too gives 128 on `float64` ends, which this module does not
//! take). On `[-3.5, 251.5]` the zero point is `round(3.5) = 4` and on `[-2.5, 252.5]` it
//! is 2.
//!
//! [`quantize_nparray`] quantizes as ONNX Runtime's Python side does: `x / scale` in `f32`,
//! rounded to nearest even, plus the zero point, clipped to the type's *full* range (also
//! under `reduce_range`, which narrows the range the scale is computed for, not the codes).
//!
//! Every result agrees with ONNX Runtime's to the bit on the reference vectors in
//! `tests/data/ort/` (scale bits, zero point and the codes of up to 18 probes, for each integer type,
//! symmetric or not, with and without `reduce_range`, on 38 ranges from `f32::MIN_POSITIVE`
//! to `f32::MAX`).
//!
//! Not reproduced: `float16` ranges (ONNX Runtime then computes in `float16`; here the ends
//! are `f32`), and NaN or infinite ranges, which ONNX Runtime turns into NaN scales: here they
//! are [`Error::InvalidRange`]. A range with `min > max`, which ONNX Runtime accepts silently,
//! is refused too.
//!
//! ## Example
//!
//! ```
//! use lowbit::calib::Range;
//! use lowbit::compat::ort::{qparams, QuantType};
//!
//! let r = Range { min: -10.68, max: 10.68 };
//! // ActivationSymmetric=True on uint8: the zero point is the middle code.
//! let q = qparams(r, QuantType::QUInt8, true, false)?;
//! assert_eq!(q.zero_point, 128);
//! assert_eq!(q.scale, (2.0 * f64::from(10.68f32) / 255.0) as f32);
//! // ONNX Runtime's default activation type, QInt8, asymmetric.
//! let q = qparams(r, QuantType::QInt8, false, false)?;
//! assert_eq!(q.zero_point, -1);
//! assert_eq!(q.quantize(&[-10.68, 0.0, 10.68, 1e9])?, [-128, -1, 127, 127]);
//! # Ok::<(), lowbit::calib::Error>(())
//! ```

mod qparams;

pub use qparams::{compute_scale_zp, qparams, quantize_nparray, QdqParams, QuantType};

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

/// Largest number of bins of a histogram: `num_bins` at most this, and growth refused past it
/// (12 bytes a bin: 192 MiB).
pub const MAX_BINS: usize = 1 << 24;

/// Largest number of bins of an entropy histogram: the threshold search evaluates the
/// divergence of `num_bins / 2` windows of up to `num_bins` bins each, in ONNX Runtime's exact
/// `float32` operations, about a second at this size.
pub const MAX_ENTROPY_BINS: usize = 1 << 14;

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
    /// [`Error::InvalidBins`] for `num_bins` of 0 or above [`MAX_BINS`] ([`MAX_ENTROPY_BINS`]
    /// for entropy), for entropy `num_quantized_bins` below 2 or above `num_bins`;
    /// [`Error::InvalidPercentile`] outside `[0, 100]` (as ONNX Runtime).
    pub fn new(
        method: Method,
        symmetric: bool,
        num_bins: usize,
        num_quantized_bins: usize,
        percentile: f64,
    ) -> Result<Self, Error> {
        let max = match method {
            Method::Entropy => MAX_ENTROPY_BINS,
            Method::Percentile => MAX_BINS,
        };
        if num_bins == 0 || num_bins > max {
            return Err(Error::InvalidBins {
                bins: num_bins,
                min: 1,
                max,
            });
        }
        if method == Method::Entropy && (num_quantized_bins < 2 || num_quantized_bins > num_bins) {
            return Err(Error::InvalidBins {
                bins: num_quantized_bins,
                min: 2,
                max: num_bins,
            });
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
    /// [`Error::NonFinite`] if the batch holds NaN or an infinity; [`Error::TooManyBins`] if
    /// the histogram would grow past [`MAX_BINS`] ([`MAX_ENTROPY_BINS`] for entropy), or
    /// cannot grow (a first batch of zeros or subnormals, whose bins have no width);
    /// [`Error::MagnitudeTooLarge`] for the signed histogram (entropy, asymmetric percentile)
    /// of a magnitude above `f32::MAX / 2`. The state is then unchanged.
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
            self.collect_absolute_value(batch, min, max)
        } else {
            self.collect_value(batch, min, max)
        }
    }

    /// The most bins this collector's histogram may hold.
    fn max_bins(&self) -> usize {
        match self.method {
            Method::Entropy => MAX_ENTROPY_BINS,
            Method::Percentile => MAX_BINS,
        }
    }

    fn collect_absolute_value(&mut self, batch: &[f32], min: f32, max: f32) -> Result<(), Error> {
        let amax = batch.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let max_bins = self.max_bins();
        match &mut self.state {
            None => {
                let abs: Vec<f32> = batch.iter().map(|x| x.abs()).collect();
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
                    let (start, stop) = (last + width, amax + width);
                    // `np.arange`'s length, checked before it is allocated.
                    let more = f64::from((stop - start) / width).ceil();
                    let needed = s.hist.len() as f64 + more.max(0.0);
                    if !(width > 0.0 && needed <= max_bins as f64) {
                        let needed = if needed.is_nan() { f64::INFINITY } else { needed };
                        return Err(Error::TooManyBins { needed, max: max_bins });
                    }
                    s.edges.extend(arange_f32(start, stop, width));
                }
                let abs: Vec<f32> = batch.iter().map(|x| x.abs()).collect();
                let mut hist = histogram_edges_f32(&abs, &s.edges);
                for (h, o) in hist.iter_mut().zip(&s.hist) {
                    *h += o;
                }
                s.hist = hist;
                s.min = s.min.min(min);
                s.max = s.max.max(max);
            }
        }
        Ok(())
    }

    fn collect_value(&mut self, batch: &[f32], min: f32, max: f32) -> Result<(), Error> {
        let threshold = min.abs().max(max.abs());
        let too_large = |t: f32| Error::MagnitudeTooLarge {
            value: t,
            max: f32::MAX / 2.0,
        };
        if !(2.0 * threshold).is_finite() {
            return Err(too_large(threshold));
        }
        let max_bins = self.max_bins();
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
                    let half = floor_divide_f32(threshold - old_t, stride) + 1.0;
                    // Checked before anything is allocated (ONNX Runtime asks NumPy for them).
                    let needed = old_n as f64 + 2.0 * f64::from(half);
                    if needed.is_nan() || needed > max_bins as f64 {
                        let needed = if needed.is_nan() { f64::INFINITY } else { needed };
                        return Err(Error::TooManyBins { needed, max: max_bins });
                    }
                    let half = half as usize;
                    let new_n = old_n + 2 * half;
                    let new_t = half as f32 * stride + old_t;
                    if !(2.0 * new_t).is_finite() {
                        return Err(too_large(new_t));
                    }
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
        Ok(())
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

    /// `get_entropy_threshold`: for each window `[zero - i, zero + i]` (from `nq / 2` bins on
    /// each side up to all of them), the divergence between the window with the outliers
    /// folded into its end bins and its quantized version; the first smallest wins. The
    /// operations, their order and their `float32` rounding are ONNX Runtime's; the sums over
    /// the outliers and over each quantized bin come from prefix sums (exact integers), and the
    /// per-window vectors are reused, so a window costs a few passes over its bins.
    fn entropy(&self, s: &State) -> (f32, f32) {
        let hist = &s.hist;
        let n = hist.len();
        let zero = n / 2;
        let nq = self.num_quantized_bins;
        let half_q = nq / 2;
        // cnt[j] = sum(hist[..j]), nz[j] = count of non-zero bins in hist[..j]
        let mut cnt = vec![0u64; n + 1];
        let mut nz = vec![0usize; n + 1];
        for (j, &h) in hist.iter().enumerate() {
            cnt[j + 1] = cnt[j] + h;
            nz[j + 1] = nz[j] + usize::from(h != 0);
        }
        let mut q = Vec::with_capacity(n);
        let (mut ps, mut qs, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let mut best = (f32::INFINITY, (0.0f32, 0.0f32));
        let mut first = true;
        for i in half_q..=zero {
            let start = zero - i;
            let end = (zero + i + 1).min(n);
            let th = (s.edges[start], s.edges[end]);
            let len = end - start;
            let sliced = &hist[start..end];
            let left = cnt[start];
            let right = cnt[n] - cnt[end];
            // p: the window with the outliers added to its first and last bins
            let last = len - 1;
            let p_at = |j: usize| -> u64 {
                let mut v = sliced[j];
                if j == 0 {
                    v += left;
                }
                if j == last {
                    v += right;
                }
                v
            };
            // non-zero bins of p in [a, b): those of the window, corrected at its two ends
            let p_nonzero = |a: usize, b: usize| -> usize {
                let mut c = nz[start + b] - nz[start + a];
                for j in [0, last] {
                    if j >= a && j < b && sliced[j] == 0 && p_at(j) != 0 {
                        c += 1;
                    }
                    if last == 0 {
                        break;
                    }
                }
                c
            };
            let merged = len / nq;
            q.clear();
            q.resize(len, 0u64);
            for k in 0..nq {
                let (a, b) = (k * merged, (k + 1) * merged);
                let mut quantized = cnt[start + b] - cnt[start + a];
                if k == nq - 1 {
                    quantized += cnt[end] - cnt[start + nq * merged];
                }
                let norm = p_nonzero(a, b);
                if norm != 0 {
                    let v = (quantized as f64 / norm as f64) as u64; // float into int64: truncation
                    q[a..b].fill(v);
                }
            }
            let p_zeros = len - p_nonzero(0, len);
            let q_zeros = q.iter().filter(|&&v| v == 0).count();
            let div = if p_zeros == len || q_zeros == len {
                f32::INFINITY
            } else {
                smooth_into((0..len).map(p_at), len, p_zeros, &mut ps);
                smooth_into(q.iter().copied(), len, q_zeros, &mut qs);
                scipy_entropy_f32_with(&ps, &qs, &mut v)
            };
            // np.argmin: the first smallest
            if first || div < best.0 {
                best = (div, th);
                first = false;
            }
        }
        best.1
    }

    /// The per-window loop [`HistogramCollector::entropy`] replaced, kept as its reference.
    #[cfg(test)]
    #[allow(clippy::needless_range_loop)]
    fn entropy_reference(&self, s: &State) -> (f32, f32) {
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

mod entropy;
use entropy::*;

#[cfg(test)]
mod tests;
