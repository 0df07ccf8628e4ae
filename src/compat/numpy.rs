//! The few NumPy (2.x) kernels the compat calibrators need, with NumPy's exact float operations.

/// NumPy's pairwise summation (`np.sum` / `np.add.reduce` on a contiguous array), generic over
/// the float type through the closure-free trait below.
pub(crate) trait PwFloat: Copy + core::ops::Add<Output = Self> {
    const NEG_ZERO: Self;
}
impl PwFloat for f32 {
    const NEG_ZERO: Self = -0.0;
}
impl PwFloat for f64 {
    const NEG_ZERO: Self = -0.0;
}

/// `numpy/_core/src/umath/loops_utils.h.src` `pairwise_sum` (block 128, 8 accumulators).
pub(crate) fn pairwise_sum<T: PwFloat>(a: &[T]) -> T {
    let n = a.len();
    if n < 8 {
        let mut res = T::NEG_ZERO;
        for &x in a {
            res = res + x;
        }
        res
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] = r[j] + a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res = res + a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.sum(x)` of a float array: the reduction starts from the identity 0.
pub(crate) fn np_sum<T: PwFloat + From<i8>>(a: &[T]) -> T {
    T::from(0) + pairwise_sum(a)
}

/// `np.linspace(start, stop, num)` for `float32` start and stop (NumPy 2: computed in `f32`).
pub(crate) fn linspace_f32(start: f32, stop: f32, num: usize) -> Vec<f32> {
    let div = num - 1;
    let delta = stop - start;
    let step = delta / div as f32;
    let mut y: Vec<f32> = if step == 0.0 {
        (0..num).map(|k| k as f32 / div as f32 * delta).collect()
    } else {
        (0..num).map(|k| k as f32 * step).collect()
    };
    for v in y.iter_mut() {
        *v += start;
    }
    y[num - 1] = stop;
    y
}

/// `np.histogram(a, bins=n, range=(first, last))` for a `float32` array and `float32` range:
/// NumPy's uniform-bins fast path, index computed in `f32` and corrected against the edges.
/// Returns the counts and the edges.
pub(crate) fn histogram_uniform_f32(a: &[f32], n: usize, first: f32, last: f32) -> (Vec<u64>, Vec<f32>) {
    let (first, last) = if first == last {
        (first - 0.5, last + 0.5)
    } else {
        (first, last)
    };
    let edges = linspace_f32(first, last, n + 1);
    let mut counts = vec![0u64; n];
    let denom = last - first;
    let numer = n as f32;
    for &x in a {
        if !(x >= first && x <= last) {
            continue;
        }
        let f = ((x - first) / denom) * numer;
        let mut i = f as isize;
        if i == n as isize {
            i -= 1;
        }
        if x < edges[i as usize] {
            i -= 1;
        }
        if x >= edges[i as usize + 1] && i != n as isize - 1 {
            i += 1;
        }
        counts[i as usize] += 1;
    }
    (counts, edges)
}

/// `np.histogram(a, bins=edges)` with explicit, increasing edges: `[e_k, e_k+1)`, the last bin
/// closed, values outside dropped.
pub(crate) fn histogram_edges_f32(a: &[f32], edges: &[f32]) -> Vec<u64> {
    let n = edges.len() - 1;
    let mut counts = vec![0u64; n];
    let (lo, hi) = (edges[0], edges[n]);
    for &x in a {
        if !(x >= lo && x <= hi) {
            continue;
        }
        // number of edges <= x, minus one
        let k = edges.partition_point(|&e| e <= x);
        counts[(k - 1).min(n - 1)] += 1;
    }
    counts
}

/// `np.searchsorted(cdf, v)` (side left): first index with `cdf[i] >= v`.
pub(crate) fn searchsorted_left(cdf: &[f64], v: f64) -> usize {
    cdf.partition_point(|&c| c < v)
}

/// `np.cumsum(hist / hist.sum())` for integer counts.
pub(crate) fn cdf(hist: &[u64]) -> Vec<f64> {
    let total: u64 = hist.iter().sum();
    let t = total as f64;
    let mut acc = 0.0f64;
    hist.iter()
        .map(|&h| {
            acc += h as f64 / t;
            acc
        })
        .collect()
}

/// NumPy's `np.log` for `float32` on x86-64 with AVX2+FMA3 or AVX-512F (`simd_log_FLOAT` in
/// `loops_exponent_log.dispatch.c.src`): mantissa in `[sqrt(1/2), sqrt(2))`, a 5/5 rational
/// Remez approximation evaluated with fused multiply-adds, plus `k * ln 2`. It is not correctly
/// rounded (up to 3.83 ulp), and the calibrators that reach it through SciPy depend on its
/// exact bits. Positive finite `x` only; others as NumPy (NaN, -inf, inf).
#[allow(clippy::excessive_precision)] // NumPy's constants, verbatim
pub(crate) fn np_log_f32(x: f32) -> f32 {
    const P: [f32; 6] = [
        0.0,
        9.999999999999998702752e-01,
        2.112677543073053063722e+00,
        1.480000633576506585156e+00,
        3.808837741388407920751e-01,
        2.589979117907922693523e-02,
    ];
    const Q: [f32; 6] = [
        1.0,
        2.612677543073109236779e+00,
        2.453006071784736363091e+00,
        9.864942958519418960339e-01,
        1.546476374983906719538e-01,
        5.875095403124574342950e-03,
    ];
    const LN2: f32 = 0.693147182464599609375;
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return f32::INFINITY;
    }
    // getexp + 1 and getmant (normalised to [0.5, 1)), subnormals included
    let (bits, bias) = if x.to_bits() >> 23 == 0 {
        ((x * 16_777_216.0).to_bits(), 24)
    } else {
        (x.to_bits(), 0)
    };
    let mut k = ((bits >> 23) as i32 - 126 - bias) as f32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    if m <= core::f32::consts::FRAC_1_SQRT_2 {
        m = m + m;
        k -= 1.0;
    }
    let t = m - 1.0;
    let mut num = P[5].mul_add(t, P[4]);
    let mut den = Q[5].mul_add(t, Q[4]);
    for i in (0..4).rev() {
        num = num.mul_add(t, P[i]);
        den = den.mul_add(t, Q[i]);
    }
    k.mul_add(LN2, num / den)
}

/// SciPy's `rel_entr(x, y)` in `f64`.
#[inline]
pub(crate) fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_blocks() {
        // Values chosen so that summation order shows: 1e8 + many ones in f32.
        let mut a = vec![1.0f32; 300];
        a[0] = 1e8;
        // sequential f32 sum would lose every 1.0 after 1e8; pairwise keeps blocks of them
        let s = pairwise_sum(&a);
        assert!(s > 1e8);
        assert_eq!(pairwise_sum(&[1.0f64, 2.0, 3.0]), 6.0);
    }

    #[test]
    fn log_matches_numpy() {
        // (x, np.log(x)) bit pairs from NumPy 2.4 on an AVX-512 machine.
        for (x, y) in [
            (1065353216u32, 0u32),
            (1060439282, 3199300123),
            (1060439283, 3199300120),
            (1060439284, 3199300117),
            (1073741824, 1060205080),
            (71362, 3266852082),
            (2, 3268226028),
        ] {
            assert_eq!(np_log_f32(f32::from_bits(x)).to_bits(), y, "{x:#x}");
        }
        // 4006 pairs: uniform (0, 3), log-uniform over e^-80..e^80, edge cases.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/calib/np_log_f32.txt");
        let text = std::fs::read_to_string(path).expect("tests/data/calib/np_log_f32.txt");
        for line in text.lines() {
            let mut w = line.split_whitespace().map(|t| t.parse::<u32>().unwrap());
            let (x, y) = (w.next().unwrap(), w.next().unwrap());
            assert_eq!(np_log_f32(f32::from_bits(x)).to_bits(), y, "{x:#x}");
        }
    }

    #[test]
    fn histogram_basics() {
        let (c, e) = histogram_uniform_f32(&[0.0, 0.5, 1.0, -1.0, 2.0], 4, -1.0, 1.0);
        assert_eq!(c, vec![1, 0, 1, 2]);
        assert_eq!(e, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(histogram_edges_f32(&[0.0, 0.5, 1.0, 3.0], &[0.0, 0.5, 1.0]), vec![1, 2]);
    }
}
