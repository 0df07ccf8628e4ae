//! numpy and scipy operations of ORT's entropy calibration, in `f32` as numpy runs them.

use super::*;
/// [`smooth`] of the counts `p` (`n_zeros` of them 0, not all) into `out`.
pub(super) fn smooth_into(p: impl Iterator<Item = u64>, len: usize, n_zeros: usize, out: &mut Vec<f32>) {
    let n_nonzeros = len - n_zeros;
    let eps1 = (1e-4 * n_zeros as f64 / n_nonzeros as f64) as f32;
    let eps = 1e-4f32;
    out.clear();
    out.extend(p.map(|v| if v == 0 { v as f32 + eps } else { v as f32 + (-eps1) }));
}

/// ONNX Runtime's `smooth_distribution` (`eps = 1e-4`), in `float32` as NumPy evaluates it.
#[cfg(test)]
pub(super) fn smooth(p: &[u64]) -> Option<Vec<f32>> {
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
#[cfg(test)]
pub(super) fn scipy_entropy_f32(p: &[f32], q: &[f32]) -> f32 {
    scipy_entropy_f32_with(p, q, &mut Vec::new())
}

/// [`scipy_entropy_f32`] with a reused buffer for the terms.
pub(super) fn scipy_entropy_f32_with(p: &[f32], q: &[f32], v: &mut Vec<f32>) -> f32 {
    let sp = np_sum(p);
    let sq = np_sum(q);
    v.clear();
    v.extend(p.iter().zip(q).map(|(&a, &b)| rel_entr_f32(a / sp, b / sq)));
    0.0f32 + pairwise_sum(v)
}

/// SciPy's `rel_entr` for `float32`.
pub(super) fn rel_entr_f32(x: f32, y: f32) -> f32 {
    if x > 0.0 && y > 0.0 {
        x * np_log_f32(x / y)
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f32::INFINITY
    }
}

/// NumPy's `np.floor_divide` for `float32` (`npy_floor_dividef`).
pub(super) fn floor_divide_f32(a: f32, b: f32) -> f32 {
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
pub(super) fn arange_f32(start: f32, stop: f32, step: f32) -> Vec<f32> {
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
