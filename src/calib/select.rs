//! The range-selection methods, on a linear histogram of magnitudes over `[0, amax]`.
//!
//! Each function returns an edge index `k` in `0..=n`; the clipping magnitude is `k * amax / n`.
//! They are pure functions of the counts, in a fixed order of floating-point operations, so the
//! same counts always give the same edge.

/// First edge `k` in `1..=n` whose cumulative count `sum(bins[..k])` reaches `target`
/// (0 if `target <= 0`).
pub(crate) fn first_edge_reaching(bins: &[u64], target: f64) -> usize {
    if target <= 0.0 {
        return 0;
    }
    let mut cum = 0u64;
    for (j, &b) in bins.iter().enumerate() {
        cum += b;
        if cum as f64 >= target {
            return j + 1;
        }
    }
    bins.len()
}

#[inline]
fn xlogx(x: f64) -> f64 {
    if x > 0.0 {
        x * x.ln()
    } else {
        0.0
    }
}

/// TensorRT's entropy calibration: the edge `i` in `levels..=n` that minimises the KL divergence
/// between the reference distribution (the first `i` bins, the clipped tail added to the last)
/// and its quantized version (the first `i` bins merged into `levels` groups, each group's count
/// spread evenly over its non-empty bins), by [`near_min`]. Cost `O(n * levels)` with prefix sums, independent of the counts.
pub(crate) fn entropy_edge(bins: &[u64], levels: usize) -> usize {
    let n = bins.len();
    debug_assert!(levels >= 1 && levels <= n);
    let mut obj = vec![f64::INFINITY; n + 1];
    entropy_terms(bins, levels, |i, t| {
        if let Some(t) = t {
            let kl = (t.sum_plogp - t.sum_plogq) / t.total + (t.kept / t.total).ln();
            obj[i] = kl.max(0.0);
        }
    });
    near_min(&obj[levels..]) + levels
}

/// The sums of one candidate edge's KL divergence (see [`entropy_terms`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KlTerms {
    /// `Σ p ln p` of the reference counts (the tail added to the last kept bin).
    pub sum_plogp: f64,
    /// `Σ p ln q`, `q` the quantized density (a group's count over its non-empty bins).
    pub sum_plogq: f64,
    /// The counts below the edge.
    pub kept: f64,
    /// All counts.
    pub total: f64,
}

/// For every candidate edge `i` in `levels..=n`, the sums of TensorRT's KL objective
/// between the first `i` bins (the clipped tail added to the last) and their quantization
/// into `levels` groups, or `None` where the divergence is infinite (nothing kept, or a tail
/// on an empty last bin). From prefix sums, `O(n · levels)`. TensorRT's selection here and
/// modelopt's (`compat::modelopt`) combine them each in their own way.
pub(crate) fn entropy_terms(bins: &[u64], levels: usize, mut each: impl FnMut(usize, Option<KlTerms>)) {
    let n = bins.len();
    let mut cnt = vec![0u64; n + 1];
    let mut nz = vec![0u64; n + 1];
    let mut plogp = vec![0f64; n + 1];
    for (j, &b) in bins.iter().enumerate() {
        cnt[j + 1] = cnt[j] + b;
        nz[j + 1] = nz[j] + u64::from(b != 0);
        plogp[j + 1] = plogp[j] + xlogx(b as f64);
    }
    let total = cnt[n] as f64;
    for i in levels..=n {
        let s = cnt[i];
        let tail = cnt[n] - s;
        let last = bins[i - 1];
        if s == 0 || (tail > 0 && last == 0) {
            each(i, None);
            continue;
        }
        let sum_plogp = plogp[i - 1] + xlogx((last + tail) as f64);
        let mut sum_plogq = 0.0;
        let mut q_last = 0.0;
        for g in 0..levels {
            let a = (g * i).div_ceil(levels);
            let b = ((g + 1) * i).div_ceil(levels);
            let c = cnt[b] - cnt[a];
            if c > 0 {
                let q = c as f64 / (nz[b] - nz[a]) as f64;
                sum_plogq += c as f64 * q.ln();
                q_last = q; // the last group holds bin i - 1
            }
        }
        sum_plogq += tail as f64 * q_last.ln();
        each(
            i,
            Some(KlTerms {
                sum_plogp,
                sum_plogq,
                kept: s as f64,
                total,
            }),
        );
    }
}

/// Relative tolerance of [`near_min`].
pub(crate) const NEAR_MIN: f64 = 1e-3;

/// The first (smallest) edge whose objective is within [`NEAR_MIN`] (relative) of the
/// smallest: of ranges that are as good, the tightest. A strict argmin jumps between distant,
/// nearly equal minima when a few counts change (a histogram re-binned or built in another
/// order); this choice moves with the counts.
fn near_min(obj: &[f64]) -> usize {
    let best = obj.iter().copied().fold(f64::INFINITY, f64::min);
    if !best.is_finite() {
        return obj.len() - 1;
    }
    let lim = best + NEAR_MIN * best.abs();
    obj.iter().position(|&o| o <= lim).unwrap_or(obj.len() - 1)
}

/// The edge `i` in `1..=n` that minimises the squared error of quantizing the bin centres
/// symmetrically with `levels` positive steps of `i / levels` bins (`round` half up, clamp at
/// `levels`), weighted by the counts, by [`near_min`]. Cost `O(n * levels)`: the
/// error of each quantization cell comes from prefix sums of `b`, `b*(2j+1)`, `b*(2j+1)^2`
/// (exact integers).
pub(crate) fn mse_edge(bins: &[u64], levels: usize) -> usize {
    let n = bins.len() as u128;
    let total: u128 = bins.iter().map(|&b| u128::from(b)).sum();
    // u64 prefix sums are exact while the largest, sum(b * (2j+1)^2), fits.
    if total * (2 * n + 1) * (2 * n + 1) < u128::from(u64::MAX) {
        mse_edge_with::<u64>(bins, levels)
    } else {
        mse_edge_with::<u128>(bins, levels)
    }
}

/// Exact integer prefix sums, differenced exactly and then converted.
trait Prefix:
    Copy + Default + core::ops::Add<Output = Self> + core::ops::Sub<Output = Self> + core::ops::Mul<Output = Self>
{
    fn from_u64(v: u64) -> Self;
    fn f64(self) -> f64;
}
impl Prefix for u64 {
    fn from_u64(v: u64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self as f64
    }
}
impl Prefix for u128 {
    fn from_u64(v: u64) -> Self {
        u128::from(v)
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

#[allow(clippy::needless_range_loop)]
fn mse_edge_with<P: Prefix>(bins: &[u64], levels: usize) -> usize {
    let n = bins.len();
    let mut a0 = vec![P::default(); n + 1];
    let mut a1 = vec![P::default(); n + 1];
    let mut a2 = vec![P::default(); n + 1];
    for (j, &b) in bins.iter().enumerate() {
        let v = P::from_u64((2 * j + 1) as u64);
        let b = P::from_u64(b);
        a0[j + 1] = a0[j] + b;
        let bv = b * v;
        a1[j + 1] = a1[j] + bv;
        a2[j + 1] = a2[j] + bv * v;
    }
    let l = levels as i64;
    let mut obj = vec![f64::INFINITY; n + 1];
    for i in 1..=n {
        let step2 = 2.0 * i as f64 / levels as f64; // one step, in half-bins
        let mut err = 0.0;
        let mut start = 0usize;
        let mut k = 0usize;
        // Level k takes the bins [start, end_k); only the levels whose segment is not empty are
        // visited (a step below a bin leaves most levels empty), so an edge costs at most
        // min(i, levels) + 2 steps, and the sums are the same as visiting every level.
        while k <= levels {
            let end = if k == levels {
                n
            } else {
                let num = (2 * k as i64 + 1) * i as i64 - l;
                if num <= 0 {
                    0
                } else {
                    ((num as u64).div_ceil(2 * l as u64) as usize).min(n)
                }
            };
            if end > start {
                let c0 = (a0[end] - a0[start]).f64();
                if c0 != 0.0 {
                    let c1 = (a1[end] - a1[start]).f64();
                    let c2 = (a2[end] - a2[start]).f64();
                    let t = k as f64 * step2;
                    err += c2 - 2.0 * t * c1 + t * t * c0;
                }
                start = end;
            }
            if start >= n {
                break;
            }
            // The first level whose segment ends past `start`: end_k > start exactly when
            // (2k + 1)·i > L·(2·start + 1), that is k >= ceil(floor(L·(2·start + 1) / i) / 2).
            let m = u128::from(l as u64) * (2 * start as u128 + 1) / i as u128;
            let next = usize::try_from(m.div_ceil(2)).unwrap_or(usize::MAX).min(levels);
            k = (k + 1).max(next);
        }
        obj[i] = err.max(0.0);
    }
    near_min(&obj[1..]) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward O(n^2) MSE search the prefix-sum version must agree with.
    fn mse_naive(bins: &[u64], levels: usize) -> Vec<f64> {
        let n = bins.len();
        (1..=n)
            .map(|i| {
                let s = i as f64 / levels as f64;
                bins.iter()
                    .enumerate()
                    .map(|(j, &b)| {
                        let u = j as f64 + 0.5;
                        // round half up of u / s = (2j+1) L / (2i), in integers
                        let k = (((2 * j + 1) * levels + i) / (2 * i)).min(levels) as f64;
                        b as f64 * (u - k * s).powi(2)
                    })
                    .sum::<f64>()
            })
            .collect()
    }

    #[test]
    fn mse_matches_naive() {
        let mut bins = vec![0u64; 300];
        let mut x = 12345u64;
        for b in bins.iter_mut() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (x >> 50) % 1000;
        }
        bins[299] = 5;
        // Levels beyond the bins too: most of their segments are empty and skipped.
        for levels in [3usize, 7, 127, 299, 300, 1000, 32767] {
            let naive = mse_naive(&bins, levels);
            let best = naive.iter().copied().fold(f64::INFINITY, f64::min);
            let lim = best * (1.0 + NEAR_MIN);
            let want = naive.iter().position(|&e| e <= lim).unwrap() + 1;
            let got = mse_edge(&bins, levels);
            // The same edge, up to rounding at the limit.
            assert!(
                got == want || (naive[got - 1] - lim).abs() <= 1e-9 * lim,
                "{levels}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn entropy_keeps_everything_for_uniform() {
        let bins = vec![10u64; 256];
        assert_eq!(entropy_edge(&bins, 128), 256);
        let mut b2 = vec![0u64; 256];
        b2[..100].fill(5);
        assert_eq!(first_edge_reaching(&b2, 500.0), 100);
        assert_eq!(first_edge_reaching(&b2, 0.0), 0);
    }
}
