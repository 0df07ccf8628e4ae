//! ggml's scale searches for the K-quants (`ggml-quants.c`), operation for operation.
//!
//! Every sum is accumulated in `f32` in index order, every product is rounded before it is
//! added (no fused multiply-add), and `int` codes are converted to `f32` where C converts
//! them: `w*x[i]*l` is `(w × x) × l`, `w*l*l` is `(w × l) × l`. The `uint8_t` and `int8_t`
//! stores of ggml wrap as C's do (`as u8`, `as i8`).

// Index loops as in ggml-quants.c, so the two can be read side by side.
#![allow(clippy::needless_range_loop)]

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below it are all-zero.
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest even through the `1.5 × 2^23` trick. Exact for
/// `|f| <= 4194303`; beyond that it returns what ggml's (assert-free) build returns.
#[inline(always)]
pub(super) fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// The first element of largest magnitude (strict `>` scan from 0) and that magnitude.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// How many trial scales a search evaluates side by side. ggml tries its trial scales one after
/// another, each summing over the group in index order; here each lane of a small array holds one
/// trial's sums, added in the same order, so the results are ggml's bit for bit while the
/// compiler turns the lanes into vector instructions (and the trials' independent sums no longer
/// wait on each other's additions).
const LANES: usize = 8;

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: symmetric codes `L` in `0..2·nmax`
/// (the signed code plus `nmax`) and the scale, refined over 18 trial scales. The weights are
/// `qw`, or `x²` when `qw` is `None`.
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], qw: Option<&[f32]>) -> f32 {
    struct Job<'a>(i32, &'a [f32], &'a mut [i8], Option<&'a [f32]>);
    impl crate::arch::Job for Job<'_> {
        type Out = f32;
        #[inline(always)]
        fn run(self) -> f32 {
            qx_lanes(self.0, self.1, self.2, self.3)
        }
    }
    crate::arch::run(Job(nmax, x, l_out, qw))
}

/// [`make_qx_quants`], compiled again inside each `arch` entry point.
#[inline(always)]
fn qx_lanes(nmax: i32, x: &[f32], l_out: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let nmaxf = nmax as f32;
    // Trial 0 is ggml's first guess; trials 1..=18 are its `is = -9..=9` without 0. The five
    // lanes left over compute codes 0 and are never read.
    const TRIALS: usize = 19;
    let mut iscale = [0.0f32; 3 * LANES];
    iscale[0] = -nmaxf / max;
    for (t, is) in (-9i32..=9).filter(|&is| is != 0).enumerate() {
        iscale[t + 1] = -(nmaxf + 0.1 * is as f32) / max;
    }
    let (mut sumlx, mut suml2) = ([0.0f32; 3 * LANES], [0.0f32; 3 * LANES]);
    for (i, &v) in x.iter().enumerate() {
        let wi = match qw {
            Some(q) => q[i],
            None => v * v,
        };
        let wv = wi * v;
        for t in 0..3 * LANES {
            let lf = code(iscale[t], v) as f32;
            sumlx[t] += wv * lf;
            suml2[t] += wi * lf * lf;
        }
    }
    let mut scale = if suml2[0] != 0.0 { sumlx[0] / suml2[0] } else { 0.0 };
    let mut best = scale * sumlx[0];
    let mut pick = 0;
    for t in 1..TRIALS {
        if suml2[t] > 0.0 && sumlx[t] * sumlx[t] > best * suml2[t] {
            scale = sumlx[t] / suml2[t];
            best = scale * sumlx[t];
            pick = t;
        }
    }
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (nmax + code(iscale[pick], v)) as i8;
    }
    scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: symmetric codes in `0..2·nmax` and the
/// scale, improved code by code (weights `x²`, at most 5 passes).
pub(super) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (&v, o) in x.iter().zip(l_out.iter_mut()) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = l as i8;
        let (w, lf) = (v * v, l as f32);
        sumlx += w * v * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (&v, o) in x.iter().zip(l_out.iter_mut()) {
            let w = v * v;
            let li = f32::from(*o);
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*o) {
                    let nf = new_l as f32;
                    slx += w * v * nf;
                    sl2 += w * nf * nf;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for o in l_out.iter_mut() {
        *o += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// The parameters of a `make_qkx2_quants` / `make_qkx3_quants` search.
#[derive(Clone, Copy)]
pub(super) struct Search {
    /// Largest code.
    pub nmax: i32,
    /// First trial offset of `nmax`.
    pub rmin: f32,
    /// Step of the trial offsets.
    pub rdelta: f32,
    /// Number of steps (`nstep + 1` trials).
    pub nstep: i32,
    /// Weighted absolute error instead of squared.
    pub use_mad: bool,
}

/// `make_qkx2_quants` (and `make_qkx3_quants` with weights, which is the same computation:
/// after `min` is clamped to at most 0, `max <= min` only when `max == min`): unsigned codes
/// `L` in `0..=nmax`, the scale (returned) and the offset `-min` (`the_min`), by weighted
/// least squares over `nstep + 1` trial scales.
///
/// A trial that ggml accepts moves `min`, which the later trials use, so the trials are
/// evaluated [`LANES`] at a time on the current `min` and, after an accepted trial whose `min`
/// differs, evaluated again from the next trial on ([`qkx_lanes`]). Unoptimised builds (debug
/// assertions on) run ggml's loop instead ([`qkx_sequential`]): without vectorisation the
/// lanes' extra trials make it about four times slower there, and the test suite quantizes
/// whole models.
pub(super) fn make_qkx_quants(s: Search, x: &[f32], weights: &[f32], l_out: &mut [u8], the_min: &mut f32) -> f32 {
    struct Job<'a>(Search, &'a [f32], &'a [f32], &'a mut [u8], First);
    impl crate::arch::Job for Job<'_> {
        type Out = (f32, f32);
        #[inline(always)]
        fn run(self) -> (f32, f32) {
            qkx_lanes(self.0, self.1, self.2, self.3, self.4)
        }
    }
    fn trials(s: Search, x: &[f32], weights: &[f32], l_out: &mut [u8], f: First) -> (f32, f32) {
        if cfg!(debug_assertions) {
            qkx_sequential(s, x, weights, l_out, f)
        } else {
            crate::arch::run(Job(s, x, weights, l_out, f))
        }
    }
    make_qkx_quants_with(s, x, weights, l_out, the_min, trials)
}

/// [`make_qkx_quants`] with its trial loop `trials`, which returns the scale and `min`.
#[inline(always)]
pub(super) fn make_qkx_quants_with(
    s: Search,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    the_min: &mut f32,
    trials: impl FnOnce(Search, &[f32], &[f32], &mut [u8], First) -> (f32, f32),
) -> f32 {
    let Some(f) = first_guess(s, x, weights, l_out, the_min) else {
        return 0.0;
    };
    let (scale, min) = if s.nstep < 1 {
        (f.scale, f.min)
    } else {
        trials(s, x, weights, l_out, f)
    };
    *the_min = -min;
    scale
}

/// What both versions of [`make_qkx_quants`] start from: the range (`min` clamped to at most
/// 0), the weighted sums, and ggml's first guess (its scale and error; its codes are in
/// `l_out`).
pub(super) struct First {
    min: f32,
    max: f32,
    sum_w: f32,
    sum_x: f32,
    scale: f32,
    best_error: f32,
}

/// `make_qkx2_quants` up to its trial loop. `None` for a constant group: its codes are 0, its
/// offset is in `the_min` and its scale is 0.
#[inline(always)]
fn first_guess(s: Search, x: &[f32], weights: &[f32], l_out: &mut [u8], the_min: &mut f32) -> Option<First> {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        *the_min = -min;
        return None;
    }
    let err = |d: f32| if s.use_mad { d.abs() } else { d * d };
    let iscale = s.nmax as f32 / (max - min);
    let scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, s.nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    Some(First {
        min,
        max,
        sum_w,
        sum_x,
        scale,
        best_error,
    })
}

/// [`make_qkx_quants`] with the trials in lanes, compiled again inside each `arch` entry
/// point. Groups of at most 32.
#[inline(always)]
pub(super) fn qkx_lanes(s: Search, x: &[f32], weights: &[f32], l_out: &mut [u8], f: First) -> (f32, f32) {
    let (max, sum_w, sum_x) = (f.max, f.sum_w, f.sum_x);
    let (mut min, mut scale, mut best_error) = (f.min, f.scale, f.best_error);
    let (n, nmaxf) = (x.len(), s.nmax as f32);
    let err = |d: f32| if s.use_mad { d.abs() } else { d * d };
    let code = |iscale: f32, xm: f32| nearest_int(iscale * xm).clamp(0, s.nmax);
    // The trial whose codes are the answer: its inverse scale and the `min` it was run with.
    let mut accepted = None;
    let mut is = 0;
    while is <= s.nstep {
        let mut isc = [0.0f32; LANES];
        for (t, v) in isc.iter_mut().enumerate() {
            *v = (s.rmin + s.rdelta * (is + t as i32) as f32 + nmaxf) / (max - min);
        }
        let (mut sum_l, mut sum_l2, mut sum_xl) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
        let mut codes = [[0.0f32; LANES]; 32];
        for i in 0..n {
            let (w, xi) = (weights[i], x[i]);
            let xm = xi - min;
            let lf = &mut codes[i];
            for t in 0..LANES {
                lf[t] = code(isc[t], xm) as f32;
            }
            let mut wl = [0.0f32; LANES];
            for t in 0..LANES {
                wl[t] = w * lf[t];
            }
            for t in 0..LANES {
                sum_l[t] += wl[t];
            }
            for t in 0..LANES {
                sum_l2[t] += wl[t] * lf[t];
            }
        }
        // A pass of its own: beside `wl × lf`, the compiler would pair `lf` with `xi`
        // instead of vectorising across the trials.
        for i in 0..n {
            let (w, xi) = (weights[i], x[i]);
            for t in 0..LANES {
                sum_xl[t] += w * codes[i][t] * xi;
            }
        }
        let (mut this_scale, mut this_min) = ([0.0f32; LANES], [0.0f32; LANES]);
        for t in 0..LANES {
            let d = sum_w * sum_l2[t] - sum_l[t] * sum_l[t];
            this_scale[t] = (sum_w * sum_xl[t] - sum_x * sum_l[t]) / d;
            this_min[t] = (sum_l2[t] * sum_x - sum_l[t] * sum_xl[t]) / d;
            if this_min[t] > 0.0 {
                this_min[t] = 0.0;
                this_scale[t] = sum_xl[t] / sum_l2[t];
            }
        }
        let mut cur_error = [0.0f32; LANES];
        for i in 0..n {
            let (w, xi) = (weights[i], x[i]);
            for t in 0..LANES {
                let diff = this_scale[t] * codes[i][t] + this_min[t] - xi;
                cur_error[t] += w * err(diff);
            }
        }
        let trials = ((s.nstep - is + 1) as usize).min(LANES);
        let mut next = is + LANES as i32;
        for t in 0..trials {
            let d = sum_w * sum_l2[t] - sum_l[t] * sum_l[t];
            if d > 0.0 && cur_error[t] < best_error {
                best_error = cur_error[t];
                scale = this_scale[t];
                accepted = Some((isc[t], min));
                let moved = this_min[t].to_bits() != min.to_bits();
                min = this_min[t];
                if moved {
                    next = is + t as i32 + 1;
                    break;
                }
            }
        }
        is = next;
    }
    if let Some((iscale, min)) = accepted {
        for (o, &v) in l_out.iter_mut().zip(x) {
            *o = code(iscale, v - min) as u8;
        }
    }
    (scale, min)
}

/// [`make_qkx_quants`] as ggml writes it, one trial after another: what unoptimised builds
/// run, and the oracle the tests hold [`qkx_lanes`] to.
pub(super) fn qkx_sequential(s: Search, x: &[f32], weights: &[f32], l_out: &mut [u8], f: First) -> (f32, f32) {
    let (max, sum_w, sum_x) = (f.max, f.sum_w, f.sum_x);
    let (mut min, mut scale, mut best_error) = (f.min, f.scale, f.best_error);
    let (n, nmaxf) = (x.len(), s.nmax as f32);
    let err = |d: f32| if s.use_mad { d.abs() } else { d * d };
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=s.nstep {
        let iscale = (s.rmin + s.rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, s.nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, min)
}

/// `make_qp_quants(n, nmax, x, L, quant_weights)`: codes in `0..=nmax` for non-negative
/// values (the sub-block scales and minimums of the imatrix K-quants) and their scale.
pub(super) fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], qw: &[f32]) -> f32 {
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = nearest_int(iscale * v) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..x.len() {
        let diff = x[i] - scale * f32::from(l_out[i]);
        best_mse += qw[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmaxf) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..x.len() {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..x.len() {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let (w, lf) = (qw[i], l as f32);
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut changed = false;
        for i in 0..x.len() {
            let w = qw[i];
            let li = f32::from(l_out[i]);
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != i32::from(l_out[i]) {
                    let nf = new_l as f32;
                    slx += w * x[i] * nf;
                    sl2 += w * nf * nf;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
