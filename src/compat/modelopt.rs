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
//! # Limits
//!
//! modelopt grows its histogram by whole bins of the first batch's width, without bound: a
//! first batch of `1e-30` then one of `1.0` asks for 2·10^33 bins, and a first batch of zeros
//! leaves a zero width (modelopt fails converting an infinite bin count). Here the histogram
//! holds at most [`MAX_BINS`] bins (data up to 512 times the first batch's largest magnitude);
//! a batch that would grow it further is refused with [`Error::TooManyBins`] before anything
//! is allocated, the state unchanged. `histc` computes a value's bin as `x * bins / max` in
//! `f32`, which overflows (an out-of-range bin on the GPU) when `max|x| * bins` passes
//! `f32::MAX`: such a batch is refused with [`Error::MagnitudeTooLarge`].
//!
//! modelopt's entropy and MSE searches evaluate every candidate over the whole histogram, a
//! time quadratic in the bins (hours at 2^17 bins). Up to [`EXACT_MAX_BINS`] bins they are
//! evaluated here the same way, in NumPy's order of operations; a larger histogram is
//! evaluated from prefix sums, in time proportional to its bins: the same objective with
//! another rounding, which can pick a neighbouring bin where two candidates nearly tie.
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

/// Largest number of bins the histogram may grow to (12 bytes a bin: 12 MiB).
pub const MAX_BINS: usize = 1 << 20;

/// Largest histogram whose entropy and MSE searches run candidate by candidate, as modelopt's
/// (quadratic time); larger ones use prefix sums (linear time).
pub const EXACT_MAX_BINS: usize = 1 << 14;

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
    /// [`Error::NonFinite`] if the batch holds NaN or an infinity; [`Error::TooManyBins`] if
    /// the histogram would grow past [`MAX_BINS`] or cannot grow (a first batch of zeros);
    /// [`Error::MagnitudeTooLarge`] if `max|x| * bins` overflows `f32`. The state is then
    /// unchanged.
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
        // `torch.histc` computes `x * bins` in f32: refused where that overflows.
        let fits = |bins: usize| {
            if (x_max * bins as f32).is_finite() {
                Ok(())
            } else {
                Err(Error::MagnitudeTooLarge {
                    value: x_max,
                    max: f32::MAX / bins as f32,
                })
            }
        };
        match &mut self.edges {
            None => {
                fits(self.num_bins)?;
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
                    // Checked before anything is allocated (modelopt asks torch for them).
                    let bins = f64::from((x_max / width).ceil());
                    let end = x_max + width;
                    let len = (f64::from(end) / f64::from(width)).ceil();
                    if !(width > 0.0 && bins <= MAX_BINS as f64 && len <= (MAX_BINS + 2) as f64) {
                        let needed = if width > 0.0 { bins } else { f64::INFINITY };
                        return Err(Error::TooManyBins { needed, max: MAX_BINS });
                    }
                    fits(bins as usize)?;
                    self.num_bins = bins as usize;
                    *edges = (0..len as usize).map(|k| width * k as f32).collect();
                } else {
                    fits(self.num_bins)?;
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

/// `_compute_amax_entropy(hist, edges, 8, False, 1, 128)`: candidate by candidate up to
/// [`EXACT_MAX_BINS`], from prefix sums beyond.
fn entropy(hist: &[u64], edges: &[f32]) -> f32 {
    if hist.len() <= EXACT_MAX_BINS {
        entropy_exact(hist, edges)
    } else {
        entropy_prefix(hist, edges)
    }
}

/// modelopt's entropy search, candidate by candidate in NumPy's order of operations.
fn entropy_exact(hist: &[u64], edges: &[f32]) -> f32 {
    let mut bins: Vec<u64> = hist.to_vec();
    if bins.len() > 1 {
        bins[0] = bins[1];
    }
    let nbins = 128usize;
    let stop = bins.len();
    // suffix[i] = sum(bins[i..])
    let mut suffix = vec![0u64; stop + 1];
    for i in (0..stop).rev() {
        suffix[i] = suffix[i + 1] + bins[i];
    }
    let mut best = (f64::INFINITY, 128usize);
    let mut any = false;
    let mut new_density = vec![0f64; stop];
    let mut v = Vec::with_capacity(stop);
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
        let tail = suffix[i];
        let total_ref = suffix[0];
        let sq = np_sum(&new_density[..i]);
        let tr = total_ref as f64;
        v.clear();
        v.extend((0..i).map(|j| {
            let r = if j == i - 1 { bins[j] + tail } else { bins[j] };
            rel_entr(r as f64 / tr, new_density[j] / sq)
        }));
        let ent = 0.0 + pairwise_sum(&v);
        // last argmin: ties go to the later candidate
        if !any || ent <= best.0 {
            best = (ent, i);
            any = true;
        }
    }
    edges[best.1.min(edges.len() - 1)]
}

/// modelopt's entropy objective for every candidate from prefix sums, `O(bins * 128)`.
///
/// With `r` the reference counts (the tail added to the last), `d` the quantized density
/// (a group's total spread over its non-empty bins), `T = sum(r)` and `S = sum(d)`:
/// `KL = (sum r ln r - sum r ln d) / T - ln T + ln S`, where `sum r ln d` is a sum over the 128
/// groups of `total * ln(total / non-empty)`, plus the tail's share of the last group.
fn entropy_prefix(hist: &[u64], edges: &[f32]) -> f32 {
    let mut bins: Vec<u64> = hist.to_vec();
    if bins.len() > 1 {
        bins[0] = bins[1];
    }
    let mut best = (f64::INFINITY, 128usize);
    let mut any = false;
    crate::calib::select::entropy_terms(&bins, 128, |i, t| {
        let ent = match t {
            // modelopt's own last step: `- ln T + ln S`.
            Some(t) => ((t.sum_plogp - t.sum_plogq) / t.total - t.total.ln() + t.kept.ln()).max(0.0),
            None => f64::INFINITY, // an observed bin with no quantized density
        };
        if !any || ent <= best.0 {
            best = (ent, i);
            any = true;
        }
    });
    edges[best.1.min(edges.len() - 1)]
}

/// `_compute_amax_mse(hist, edges, 8, False, 1, 128)` with the CUDA fake quantizer
/// (`scale = 127 / amax`, `rint`, clamp to `[-127, 127]`, divide): candidate by candidate up
/// to [`EXACT_MAX_BINS`], from prefix sums beyond.
fn mse(hist: &[u64], edges: &[f32]) -> f32 {
    if hist.len() <= EXACT_MAX_BINS {
        mse_exact(hist, edges)
    } else {
        mse_prefix(hist, edges)
    }
}

/// modelopt's MSE search, candidate by candidate.
fn mse_exact(hist: &[u64], edges: &[f32]) -> f32 {
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

/// modelopt's MSE objective for every candidate from prefix sums, `O(bins * 128)`: the
/// centers are increasing, so each of the 128 quantized values takes a contiguous run of them,
/// found from the candidate's step (and checked with the quantizer itself), and the run's
/// error `sum w (q - c)^2` comes from prefix sums of `w`, `w c` and `w c^2`.
fn mse_prefix(hist: &[u64], edges: &[f32]) -> f32 {
    let centers: Vec<f32> = edges.windows(2).map(|w| (w[1] + w[0]) / 2.0).collect();
    let n = centers.len().min(hist.len());
    let (mut w0, mut w1, mut w2) = (vec![0f64; n + 1], vec![0f64; n + 1], vec![0f64; n + 1]);
    for j in 0..n {
        let (c, w) = (f64::from(centers[j]), f64::from(hist[j] as f32));
        w0[j + 1] = w0[j] + w;
        w1[j + 1] = w1[j] + w * c;
        w2[j + 1] = w2[j] + w * c * c;
    }
    let step = if n > 1 {
        f64::from(centers[n - 1] - centers[0]) / (n - 1) as f64
    } else {
        0.0
    };
    let mut best = (f64::INFINITY, 128usize.min(n.saturating_sub(1)));
    for i in 128..n {
        let amax = centers[i];
        let scale = 127.0f32 / amax;
        if !(scale.is_finite() && scale > 0.0) {
            continue; // modelopt's error is NaN here: never the smallest
        }
        let code = |j: usize| (centers[j] * scale).round_ties_even().clamp(-127.0, 127.0);
        let mut err = 0.0f64;
        let mut start = 0usize;
        for k in 0..=127u32 {
            // first center with a code above k (n for the top code)
            let end = if k == 127 {
                n
            } else {
                let edge = (f64::from(k) + 0.5) / f64::from(scale);
                let guess = if step > 0.0 {
                    ((edge - f64::from(centers[0])) / step)
                        .ceil()
                        .clamp(start as f64, n as f64) as usize
                } else {
                    start
                };
                let mut e = guess;
                while e > start && code(e - 1) > k as f32 {
                    e -= 1;
                }
                while e < n && code(e) <= k as f32 {
                    e += 1;
                }
                e
            };
            if end > start {
                let q = f64::from(k as f32 / scale);
                let (a, b, c) = (w0[end] - w0[start], w1[end] - w1[start], w2[end] - w2[start]);
                err += (q * q * a - 2.0 * q * b + c).max(0.0);
                start = end;
            }
        }
        let m = err / n as f64;
        if m < best.0 {
            best = (m, i);
        }
    }
    centers.get(best.1).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(c: &HistogramCalibrator) -> Option<(Vec<u64>, Vec<f32>)> {
        c.histogram().map(|(h, e)| (h.to_vec(), e.to_vec()))
    }

    /// Laplace-like magnitudes (deterministic), scaled.
    fn laplace(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                (-(u.ln()) as f32) * scale * if s & 1 == 0 { 1.0 } else { -1.0 }
            })
            .collect()
    }

    /// Growth modelopt cannot bound, or cannot do, is refused before anything is allocated,
    /// the state unchanged: a first batch of zeros (zero bin width: capacity overflow) or of
    /// 1e-30 (10^33 bins: 1.7 TB) followed by 1.0.
    #[test]
    fn unbounded_growth_is_refused() {
        for first in [0.0f32, 1e-30, 1e-45, 1e-3] {
            let mut c = HistogramCalibrator::new();
            c.collect(&[first, -first]).unwrap();
            let before = snapshot(&c);
            let e = c.collect(&[1.0]).unwrap_err();
            assert!(matches!(e, Error::TooManyBins { max: MAX_BINS, .. }), "{first}: {e:?}");
            assert_eq!(snapshot(&c), before, "{first}");
            assert!(c.compute_amax(Method::Percentile(99.0)).is_ok());
        }
        // Within the limit: modelopt's growth (bins of the first width up to the new max).
        let mut c = HistogramCalibrator::new();
        c.collect(&[1.0]).unwrap();
        c.collect(&[-300.0]).unwrap();
        let (h, e) = c.histogram().unwrap();
        assert_eq!((h.len(), e.len()), (300 * 2048, 300 * 2048 + 1));
        assert_eq!(*e.last().unwrap(), 300.0);
    }

    /// `histc`'s `x * bins` in f32 overflows for |x| above f32::MAX / bins: refused (a value of
    /// 1e36 indexed past the histogram).
    #[test]
    fn magnitudes_whose_bin_overflows_are_refused() {
        let mut c = HistogramCalibrator::new();
        assert!(matches!(c.collect(&[1e36]), Err(Error::MagnitudeTooLarge { .. })));
        assert!(c.histogram().is_none());
        c.collect(&[1e35, -2e34]).unwrap();
        assert_eq!(*c.histogram().unwrap().1.last().unwrap(), 1e35);
        assert!(c.compute_amax(Method::Entropy).unwrap().is_finite());
        let before = snapshot(&c);
        // growing to 1.5e35 takes 3072 bins: 1.5e35 * 3072 overflows
        assert!(matches!(c.collect(&[1.5e35]), Err(Error::MagnitudeTooLarge { .. })));
        assert_eq!(snapshot(&c), before);
    }

    /// Past `EXACT_MAX_BINS` the searches run from prefix sums: on histograms both can
    /// evaluate, they pick the same bin or a neighbour.
    #[test]
    fn prefix_searches_agree_with_the_exact_ones() {
        let mut same = 0;
        let mut total = 0;
        for (k, (n, grow)) in [(20_000, 1.0f32), (9_000, 2.5), (50_000, 4.0), (3_000, 1.2)]
            .into_iter()
            .enumerate()
        {
            let mut c = HistogramCalibrator::new();
            let data = laplace(n, k as u64 + 3, 1.0);
            c.collect(&data[..n / 2]).unwrap();
            let mut rest = data[n / 2..].to_vec();
            rest[7] = grow * data[..n / 2].iter().fold(0f32, |m, x| m.max(x.abs()));
            c.collect(&rest).unwrap();
            let (h, e) = c.histogram().unwrap();
            let width = e[1] - e[0];
            for (a, b) in [
                (entropy_exact(h, e), entropy_prefix(h, e)),
                (mse_exact(h, e), mse_prefix(h, e)),
            ] {
                total += 1;
                same += usize::from(a == b);
                assert!((a - b).abs() <= width * 1.0001, "case {k}: {a} vs {b} (bin {width})");
            }
        }
        assert!(same * 2 >= total, "{same} of {total} identical");
    }

    /// A histogram grown to 2^17 bins answers entropy and MSE in time proportional to its bins
    /// (the candidate-by-candidate searches ran for minutes).
    #[test]
    fn large_histograms_answer_in_linear_time() {
        let mut c = HistogramCalibrator::new();
        c.collect(&laplace(100_000, 9, 0.1)).unwrap();
        let first = snapshot(&c).unwrap().1[2048];
        let mut big = laplace(100_000, 10, 1.0);
        big[0] = first * 64.0;
        c.collect(&big).unwrap();
        assert_eq!(c.histogram().unwrap().0.len(), 131_072);
        let t = std::time::Instant::now();
        for m in [Method::Entropy, Method::Mse, Method::Percentile(99.9)] {
            let a = c.compute_amax(m).unwrap();
            assert!(a > 0.0 && a <= first * 64.0, "{m:?}: {a}");
        }
        eprintln!("entropy, mse, percentile over 2^17 bins: {:?}", t.elapsed());
    }
}
