//! From the fine bins to a range: re-binning into `bins` linear bins over `[0, max|x|]` and
//! applying the [`Method`] (the selection functions are in `calib::select`).

use super::{HistogramCalibrator, Method, MAX_BINS};
use crate::calib::select::{entropy_edge, first_edge_reaching, mse_edge};
use crate::calib::{Error, Range};

impl HistogramCalibrator {
    /// Linear histogram(s) over `[0, amax]` of the fine pages of `signs`.
    #[allow(clippy::needless_range_loop)]
    fn rebin(&self, signs: &[u32], amax: f32, out: &mut [u64]) {
        out.fill(0);
        let n = out.len();
        let shift = 23 - self.fine;
        let low = (1u32 << shift) - 1;
        let a = f64::from(amax);
        for &s in signs {
            for e in 0..256u32 {
                self.for_each_bin((s * 256 + e) as usize, |slot, c, ext| {
                    let key = (e << 23) | (slot << shift);
                    let vmin = f64::from(f32::from_bits(key | (!ext & 0xffff & low)));
                    let vmax = f64::from(f32::from_bits(key | (ext >> 16)));
                    let (jmin, jmax) = (bin_of(vmin, a, n), bin_of(vmax, a, n));
                    if jmin == jmax {
                        out[jmin] += c;
                        return;
                    }
                    // The smallest and largest value are known exactly (two values: a bin with
                    // one value has them in one linear bin); the others are spread over
                    // [vmin, vmax] in proportion to the overlap with each linear bin.
                    out[jmin] += 1;
                    out[jmax] += 1;
                    let rest = c - 2;
                    let mut given = 0u64;
                    let span = vmax - vmin;
                    for j in jmin..jmax {
                        let edge = (j + 1) as f64 * a / n as f64;
                        let upto = ((edge - vmin) / span * rest as f64).round() as u64;
                        let upto = upto.clamp(given, rest);
                        out[j] += upto - given;
                        given = upto;
                    }
                    out[jmax] += rest - given;
                });
            }
        }
    }

    /// The clipping magnitude the method picks on the linear histogram `bins` over `[0, amax]`.
    fn pick(method: Method, bins: &[u64], amax: f32, total: u64, side_cut: Option<f64>) -> f32 {
        let n = bins.len();
        let k = match method {
            Method::Percentile(p) => match side_cut {
                None => first_edge_reaching(bins, p / 100.0 * total as f64),
                Some(cut) => {
                    let side: u64 = bins.iter().sum();
                    first_edge_reaching(bins, side as f64 - cut)
                }
            },
            Method::Entropy { bits } => entropy_edge(bins, 1usize << (bits - 1)),
            Method::Mse { bits } => mse_edge(bins, (1usize << (bits - 1)) - 1),
        };
        if k == n {
            amax
        } else {
            (k as f64 * f64::from(amax) / n as f64) as f32
        }
    }

    /// The range by another method or symmetry, from the same counts (the calibrator's own
    /// settings are what [`Calibrator::range`](crate::calib::Calibrator::range) uses).
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any value, [`Error::InvalidPercentile`] or
    /// [`Error::InvalidBits`] for a bad method.
    pub fn range_with(&self, method: Method, symmetric: bool) -> Result<Range, Error> {
        method.validate(self.bins)?;
        if self.count == 0 {
            return Err(Error::NoData);
        }
        let n = self.bins;
        let mut bins = vec![0u64; n];
        if symmetric {
            let amax = f32::from_bits(self.pos_max.max(self.neg_max));
            self.rebin(&[0, 1], amax, &mut bins);
            let a = Self::pick(method, &bins, amax, self.count, None);
            return Ok(Range { min: -a, max: a });
        }
        let cut = match method {
            Method::Percentile(p) => Some((100.0 - p) / 200.0 * self.count as f64),
            _ => None,
        };
        let mut side = |sign: u32, bits: u32| -> f32 {
            let amax = f32::from_bits(bits);
            self.rebin(&[sign], amax, &mut bins);
            let total: u64 = bins.iter().sum();
            if total == 0 {
                return 0.0;
            }
            Self::pick(method, &bins, amax, total, cut)
        };
        let max = side(0, self.pos_max);
        let min = -side(1, self.neg_max);
        Ok(Range { min, max })
    }
}

/// Linear bin of magnitude `v` among `n` over `[0, a]`: `floor(v / a * n)` in `f64`, the top
/// edge in the last bin.
#[inline]
fn bin_of(v: f64, a: f64, n: usize) -> usize {
    if a > 0.0 {
        ((v / a * n as f64) as usize).min(n - 1)
    } else {
        0
    }
}

/// Apply a symmetric [`Method`] to a linear histogram of magnitudes: `counts[j]` values in
/// `[j, j + 1) * amax / counts.len()` (the last bin closed). Returns the clipping magnitude, a
/// bin edge. This is what [`HistogramCalibrator`] does after re-binning; use it on a histogram
/// of your own, e.g. to compare with a one-pass histogram.
///
/// # Errors
///
/// [`Error::InvalidBins`] for an empty histogram, [`Error::InvalidPercentile`] or
/// [`Error::InvalidBits`] for a bad method, [`Error::NoData`] if all counts are 0,
/// [`Error::InvalidRange`] if `amax` is negative or not finite.
///
/// # Examples
///
/// ```
/// use lowbit::calib::{amax_from_histogram, Method};
/// let mut counts = vec![0u64; 100];
/// counts[..90].fill(10);
/// counts[99] = 1;
/// assert_eq!(amax_from_histogram(Method::Percentile(99.0), &counts, 10.0)?, 9.0);
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
pub fn amax_from_histogram(method: Method, counts: &[u64], amax: f32) -> Result<f32, Error> {
    if counts.is_empty() || counts.len() > MAX_BINS {
        return Err(Error::InvalidBins {
            bins: counts.len(),
            min: 1,
            max: MAX_BINS,
        });
    }
    method.validate(counts.len())?;
    if !(amax >= 0.0 && amax.is_finite()) {
        return Err(Error::InvalidRange { min: -amax, max: amax });
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Err(Error::NoData);
    }
    Ok(HistogramCalibrator::pick(method, counts, amax, total, None))
}
