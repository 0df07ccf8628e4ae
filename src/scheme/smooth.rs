//! SmoothQuant (Xiao et al., 2022): migrate activation outliers into the weights.
//!
//! For a linear layer `Y = X·Wᵀ` with `X` of shape `[tokens, in]` and `W` of shape `[out, in]`
//! (PyTorch's `nn.Linear` layout), per input channel `j`:
//!
//! ```text
//! s_j = max|X_j|^α / max|W_j|^(1-α)        X' = X / s,  W' = W · s   (column j scaled by s_j)
//! ```
//!
//! so `X'·W'ᵀ = X·Wᵀ` (up to one f32 rounding of each scaled element) while the activation's
//! per-channel maxima become `max|X_j|^(1-α) · max|W_j|^(1-α)`: an outlier channel of `X` is
//! flattened and part of its range moves into `W`, which per-channel weight quantization
//! absorbs. As in the reference implementation (`smoothquant/smooth.py`, `smooth_ln_fcs`), the
//! maxima are clamped below at `1e-5`, and so is `s`; `α = 0.5` by default.
//!
//! The activation maxima come from calibration: a
//! [`PerChannelMinMaxCalibrator`](crate::calib::PerChannelMinMaxCalibrator) fed the layer's
//! input rows batch by batch ([`absmax_from_calibrator`]), [`column_absmax`] over rows in
//! memory, or any per-channel ranges ([`absmax_from_ranges`]). In a transformer `X / s`
//! is folded into the preceding LayerNorm's weight and bias ([`smooth_activations`] on those
//! 1-row vectors), so inference pays nothing.
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::smooth::{self, SmoothQuant};
//!
//! let act_max = [100.0, 1.0];
//! let w = [1.0, 1.0, 0.5, 0.25]; // 2 outputs × 2 inputs
//! let s = SmoothQuant::default().scales(&act_max, &w)?;
//! assert_eq!(s, vec![10.0, 1.0]); // sqrt(100)/sqrt(1), sqrt(1)/sqrt(1)
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::{channel_rows, check_finite, check_len, row_len, Error};

/// The floor applied to the maxima and to the scales, as in the SmoothQuant reference code.
pub const CLAMP_MIN: f32 = 1e-5;

/// SmoothQuant's migration strength.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothQuant {
    alpha: f32,
}

impl Default for SmoothQuant {
    /// `α = 0.5`, the paper's default.
    fn default() -> Self {
        SmoothQuant { alpha: 0.5 }
    }
}

impl SmoothQuant {
    /// Migration strength `alpha` in `[0, 1]`: 0 leaves the activations alone, 1 moves all of
    /// their range into the weights.
    ///
    /// # Errors
    /// [`Error::Parameter`] when `alpha` is not a number in `[0, 1]`.
    pub fn new(alpha: f32) -> Result<Self, Error> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::Parameter {
                name: "alpha",
                value: f64::from(alpha),
                why: "must be in [0, 1]",
            });
        }
        Ok(SmoothQuant { alpha })
    }

    /// The migration strength.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// The smoothing factors for one weight matrix `w` (`[out, in]`, row-major) whose input has
    /// the per-channel absolute maxima `act_max` (length `in`).
    ///
    /// # Errors
    /// [`Error::NotDivisible`] when `w.len()` is not a multiple of `act_max.len()` (or either is
    /// empty); [`Error::NonFinite`] for a NaN or infinity in either input;
    /// [`Error::Parameter`] for a negative maximum.
    pub fn scales(&self, act_max: &[f32], w: &[f32]) -> Result<Vec<f32>, Error> {
        self.scales_shared(act_max, &[w])
    }

    /// The smoothing factors for several weight matrices that read the same input (the query,
    /// key and value projections after one LayerNorm): the weight maximum of channel `j` is taken
    /// over all of them, as `smooth_ln_fcs` does.
    ///
    /// # Errors
    /// As [`scales`](Self::scales), for every matrix; [`Error::Shape`] when `weights` is empty.
    pub fn scales_shared(&self, act_max: &[f32], weights: &[&[f32]]) -> Result<Vec<f32>, Error> {
        let n = act_max.len();
        check_finite(act_max, "act_max")?;
        if let Some(&m) = act_max.iter().find(|&&m| m < 0.0) {
            return Err(Error::Parameter {
                name: "act_max",
                value: f64::from(m),
                why: "maxima of |x| cannot be negative",
            });
        }
        if weights.is_empty() {
            return Err(Error::Shape {
                what: "weights",
                expected: 1,
                got: 0,
            });
        }
        let mut w_max = vec![0f32; n];
        for w in weights {
            if w.is_empty() || n == 0 {
                return Err(Error::NotDivisible { len: w.len(), parts: n });
            }
            row_len(w.len(), n)?;
            check_finite(w, "weight")?;
            for row in w.chunks_exact(n) {
                for (m, &v) in w_max.iter_mut().zip(row) {
                    *m = m.max(v.abs());
                }
            }
        }
        let a = f64::from(self.alpha);
        Ok(act_max
            .iter()
            .zip(&w_max)
            .map(|(&am, &wm)| {
                let am = f64::from(am.max(CLAMP_MIN));
                let wm = f64::from(wm.max(CLAMP_MIN));
                ((am.powf(a) / wm.powf(1.0 - a)) as f32).max(CLAMP_MIN)
            })
            .collect())
    }
}

/// Per-column maximum of `|x|` for a row-major matrix with `cols` columns: the activation
/// maxima SmoothQuant needs, from calibration rows. Call it per batch and take the elementwise
/// maximum to calibrate over many batches (the result does not depend on their order).
///
/// # Errors
/// [`Error::NotDivisible`] when `x.len()` is not a multiple of `cols`; [`Error::Parameter`]
/// for an empty `x` of more than [`MAX_EMPTY_CHANNELS`](super::MAX_EMPTY_CHANNELS) columns;
/// [`Error::NonFinite`] for a NaN or infinity.
pub fn column_absmax(x: &[f32], cols: usize) -> Result<Vec<f32>, Error> {
    channel_rows(x.len(), cols)?;
    check_finite(x, "activations")?;
    let mut m = vec![0f32; cols];
    for row in x.chunks_exact(cols) {
        for (m, &v) in m.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    Ok(m)
}

/// Checks that `x` (row-major, `s.len()` columns) is finite and that scaling it by `s`
/// (dividing when `divide`) keeps it finite, before anything is changed.
fn check_smoothing(x: &[f32], s: &[f32], what: &'static str, divide: bool) -> Result<(), Error> {
    row_len(x.len(), s.len())?;
    check_finite(s, "s")?;
    if let Some(&v) = s.iter().find(|&&v| v <= 0.0) {
        return Err(Error::Parameter {
            name: "s",
            value: f64::from(v),
            why: "smoothing factors must be positive",
        });
    }
    check_finite(x, what)?;
    // |v| / s and |v| * s grow with |v|: the column maxima decide.
    let mut m = vec![0f32; s.len()];
    for row in x.chunks_exact(s.len()) {
        for (m, &v) in m.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    for (&m, &s) in m.iter().zip(s) {
        if !(if divide { m / s } else { m * s }).is_finite() {
            return Err(Error::Parameter {
                name: "s",
                value: f64::from(s),
                why: "scaling by this factor overflows f32",
            });
        }
    }
    Ok(())
}

/// `X / s`: divide column `j` of the row-major matrix `x` by `s[j]` (for a LayerNorm weight or
/// bias, `x` is the single row).
///
/// # Errors
/// [`Error::NotDivisible`] when `x.len()` is not a multiple of `s.len()`; [`Error::NonFinite`]
/// for a NaN or infinity in `x` or `s`; [`Error::Parameter`] for a factor that is not positive,
/// or one that would overflow a value to infinity. `x` is unchanged on error.
pub fn smooth_activations(x: &mut [f32], s: &[f32]) -> Result<(), Error> {
    check_smoothing(x, s, "activations", true)?;
    for row in x.chunks_exact_mut(s.len()) {
        for (v, &s) in row.iter_mut().zip(s) {
            *v /= s;
        }
    }
    Ok(())
}

/// `W · s`: multiply column `j` of the row-major weight `w` (`[out, in]`) by `s[j]`.
///
/// # Errors
/// As [`smooth_activations`], for `w`.
pub fn smooth_weights(w: &mut [f32], s: &[f32]) -> Result<(), Error> {
    check_smoothing(w, s, "weight", false)?;
    for row in w.chunks_exact_mut(s.len()) {
        for (v, &s) in row.iter_mut().zip(s) {
            *v *= s;
        }
    }
    Ok(())
}

/// Both halves at once: `x ← X / s`, `w ← W · s`. Checks both before changing either.
///
/// # Errors
/// As [`smooth_activations`] and [`smooth_weights`].
pub fn apply(x: &mut [f32], w: &mut [f32], s: &[f32]) -> Result<(), Error> {
    check_smoothing(x, s, "activations", true)?;
    check_smoothing(w, s, "weight", false)?;
    smooth_activations(x, s)?;
    smooth_weights(w, s)
}

/// Per-channel activation maxima from a per-channel min/max calibrator that observed the
/// layer's input rows (`[tokens, in]`, one channel per input feature).
///
/// ```
/// use lowbit::calib::{Calibrator, PerChannelMinMaxCalibrator};
/// use lowbit::scheme::smooth;
///
/// let mut c = PerChannelMinMaxCalibrator::new(2)?;
/// c.observe(&[1.0, -8.0, -3.0, 2.0])?; // two rows of two channels
/// assert_eq!(smooth::absmax_from_calibrator(&c)?, vec![3.0, 8.0]);
/// # Ok::<(), lowbit::Error>(())
/// ```
///
/// # Errors
/// [`Error::EmptyCalibration`] when the calibrator has seen no rows.
pub fn absmax_from_calibrator(c: &crate::calib::PerChannelMinMaxCalibrator) -> Result<Vec<f32>, Error> {
    let ranges = c.ranges().map_err(|e| match e {
        crate::calib::Error::NoData => Error::EmptyCalibration {
            layer: "smoothquant input".into(),
        },
        e => Error::Calib(e),
    })?;
    Ok(ranges.iter().map(|r| r.amax()).collect())
}

/// Per-channel activation maxima from per-channel ranges (`max(|min|, |max|)`), as a
/// per-channel min/max calibrator reports them.
///
/// # Errors
/// [`Error::Shape`] when the two slices differ in length; [`Error::NonFinite`].
pub fn absmax_from_ranges(min: &[f32], max: &[f32]) -> Result<Vec<f32>, Error> {
    check_len("max", min.len(), max.len())?;
    check_finite(min, "min")?;
    check_finite(max, "max")?;
    Ok(min.iter().zip(max).map(|(a, b)| a.abs().max(b.abs())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_like_the_reference() {
        // A dead activation channel and a dead weight column: both maxima clamp at 1e-5.
        let s = SmoothQuant::default().scales(&[0.0, 4.0], &[0.0, 1.0]).unwrap();
        assert_eq!(s, vec![1.0, 2.0]);
        // alpha = 1: s = max|X| clamped.
        assert_eq!(
            SmoothQuant::new(1.0).unwrap().scales(&[0.0], &[5.0]).unwrap(),
            vec![1e-5]
        );
        // alpha = 0: s = 1 / max|W| = 1e-12, clamped up to 1e-5.
        assert_eq!(
            SmoothQuant::new(0.0).unwrap().scales(&[3.0], &[1e12]).unwrap(),
            vec![1e-5]
        );
    }

    #[test]
    fn alpha_extremes() {
        let w = [2.0, 8.0];
        let a = [9.0, 4.0];
        assert_eq!(SmoothQuant::new(1.0).unwrap().scales(&a, &w).unwrap(), vec![9.0, 4.0]);
        assert_eq!(SmoothQuant::new(0.0).unwrap().scales(&a, &w).unwrap(), vec![0.5, 0.125]);
        assert!(SmoothQuant::new(1.5).is_err());
        assert!(SmoothQuant::new(f32::NAN).is_err());
    }

    #[test]
    fn bad_shapes() {
        let sq = SmoothQuant::default();
        assert!(matches!(
            sq.scales(&[1.0, 2.0], &[1.0, 2.0, 3.0]),
            Err(Error::NotDivisible { .. })
        ));
        assert!(matches!(sq.scales(&[], &[1.0]), Err(Error::NotDivisible { .. })));
        assert!(matches!(sq.scales(&[1.0], &[f32::NAN]), Err(Error::NonFinite { .. })));
        assert!(matches!(sq.scales(&[-1.0], &[1.0]), Err(Error::Parameter { .. })));
        let mut x = [1.0; 5];
        let mut w = [1.0; 4];
        assert!(apply(&mut x, &mut w, &[2.0, 2.0]).is_err());
        assert_eq!(x, [1.0; 5]); // nothing changed
    }

    /// An empty activation matrix's column count is bounded: `usize::MAX` columns overflowed
    /// the allocation of their maxima.
    #[test]
    fn empty_activations_with_absurd_columns() {
        assert!(matches!(
            column_absmax(&[], usize::MAX),
            Err(Error::Parameter { name: "channels", .. })
        ));
        assert_eq!(column_absmax(&[], 4).unwrap(), vec![0.0; 4]);
    }

    /// NaN and infinities, in the inputs or the factors, and factors that would overflow the
    /// result, are errors that leave both matrices unchanged.
    #[test]
    fn non_finite_inputs_and_factors() {
        let sq = SmoothQuant::default();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(matches!(
                sq.scales(&[bad, 1.0], &[1.0, 1.0]),
                Err(Error::NonFinite { .. })
            ));
            assert!(matches!(
                sq.scales(&[1.0, 1.0], &[1.0, bad]),
                Err(Error::NonFinite { .. })
            ));
            assert!(matches!(
                sq.scales_shared(&[1.0, 1.0], &[&[1.0, 1.0], &[bad, 0.0]]),
                Err(Error::NonFinite { .. })
            ));
            assert!(matches!(column_absmax(&[1.0, bad], 2), Err(Error::NonFinite { .. })));
            assert!(matches!(
                absmax_from_ranges(&[bad], &[1.0]),
                Err(Error::NonFinite { .. })
            ));
            let (mut x, mut w) = ([1.0, 2.0], [3.0, 4.0]);
            assert!(apply(&mut x, &mut w, &[1.0, bad]).is_err());
            let mut xb = [1.0, bad];
            assert!(matches!(
                apply(&mut xb, &mut w, &[1.0, 2.0]),
                Err(Error::NonFinite { .. })
            ));
            let mut wb = [bad, 4.0];
            assert!(matches!(
                apply(&mut x, &mut wb, &[1.0, 2.0]),
                Err(Error::NonFinite { .. })
            ));
            assert_eq!((x, w), ([1.0, 2.0], [3.0, 4.0]));
        }
        let (mut x, mut w) = ([1.0, 2.0], [3.0, 4.0]);
        for s in [[0.0, 1.0], [-1.0, 1.0]] {
            assert!(matches!(apply(&mut x, &mut w, &s), Err(Error::Parameter { .. })));
        }
        // Factors from extreme but finite data: the scales are finite, and applying them where
        // the product would overflow is refused.
        let s = sq.scales(&[f32::MAX, 1.0], &[f32::MAX, 1e-30]).unwrap();
        assert!(s.iter().all(|v| v.is_finite() && *v > 0.0), "{s:?}");
        let s = SmoothQuant::new(1.0).unwrap().scales(&[f32::MAX], &[2.0]).unwrap();
        assert_eq!(s, vec![f32::MAX]);
        let mut w = [2.0f32];
        assert!(matches!(smooth_weights(&mut w, &s), Err(Error::Parameter { .. })));
        assert_eq!(w, [2.0]);
        let mut x = [f32::MAX];
        assert!(matches!(
            smooth_activations(&mut x, &[0.5]),
            Err(Error::Parameter { .. })
        ));
        smooth_activations(&mut x, &s).unwrap();
        assert_eq!(x, [1.0]);
    }
}
