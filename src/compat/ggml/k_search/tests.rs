// Index loops as in ggml-quants.c, so the two can be read side by side.
#![allow(clippy::needless_range_loop)]

use super::*;
use crate::testing::XorShift;

#[test]
fn nearest_int_rounds_half_to_even() {
    for (f, n) in [
        (0.5, 0),
        (1.5, 2),
        (2.5, 2),
        (-0.5, 0),
        (-1.5, -2),
        (3.49, 3),
        (-7.51, -8),
        (0.0, 0),
    ] {
        assert_eq!(nearest_int(f), n, "{f}");
    }
    assert_eq!(nearest_int(4_194_303.0), 4_194_303);
    assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
}

#[test]
fn all_zero_groups() {
    let mut l = [5i8; 16];
    assert_eq!(make_qx_quants(32, &[1e-16; 16], &mut l, None), 0.0);
    assert_eq!(l, [0; 16]);
    let mut l = [5u8; 16];
    assert_eq!(make_qp_quants(15, &[0.0; 16], &mut l, &[1.0; 16]), 0.0);
    assert_eq!(l, [0; 16]);
}

/// ggml's loop as written, one trial after another: the oracle of the lane-parallel
/// [`make_qx_quants`].
///
/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: symmetric codes `L` in `0..2·nmax`
/// (the signed code plus `nmax`) and the scale, refined over 18 trial scales. The weights are
/// `qw`, or `x²` when `qw` is `None`.
fn scalar_make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let w = |i: usize| match qw {
        Some(q) => q[i],
        None => x[i] * x[i],
    };
    let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (i, (&v, o)) in x.iter().zip(l_out.iter_mut()).enumerate() {
        let l = code(iscale, v);
        *o = (l + nmax) as i8;
        let (wi, lf) = (w(i), l as f32);
        sumlx += wi * v * lf;
        suml2 += wi * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for (i, &v) in x.iter().enumerate() {
            let lf = code(iscale, v) as f32;
            let wi = w(i);
            sumlx += wi * v * lf;
            suml2 += wi * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (nmax + code(iscale, v)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Groups that exercise the searches: random magnitudes over many scales, repeated values
/// (ties between trials), one outlier, all-positive groups (`min` clamped to 0), zero weights.
fn groups(n: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for k in 0..1500 {
        let scale = [1.0, 1e-3, 37.0, 1e-12, 3e5][k % 5];
        let mut x: Vec<f32> = (0..n).map(|_| r.centered() * scale).collect();
        match k % 7 {
            1 => x.iter_mut().for_each(|v| *v = v.abs()),
            2 => x.iter_mut().for_each(|v| *v = (*v * 8.0 / scale).round() * scale / 8.0),
            3 => x[k % n] = 40.0 * scale,
            4 => x.iter_mut().for_each(|v| *v = -v.abs()),
            _ => {}
        }
        let w: Vec<f32> = (0..n)
            .map(|i| {
                if k % 11 == 0 && i % 3 == 0 {
                    0.0
                } else {
                    r.centered() + 0.5
                }
            })
            .collect();
        out.push((x, w));
    }
    out
}

#[test]
fn qx_search_equals_ggml_loop() {
    for n in [16, 32] {
        for (x, w) in groups(n) {
            for nmax in [4, 16, 32] {
                for qw in [None, Some(&w[..])] {
                    let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
                    let sa = make_qx_quants(nmax, &x, &mut a, qw);
                    let sb = scalar_make_qx_quants(nmax, &x, &mut b, qw);
                    assert_eq!((sa.to_bits(), &a), (sb.to_bits(), &b), "{x:?} {nmax}");
                }
            }
        }
    }
}

#[test]
fn qkx_search_equals_ggml_loop() {
    let searches = [
        (15, -1.0, 0.1, 20, false),
        (31, -0.5, 0.1, 15, false),
        (3, -0.5, 0.1, 15, true),
        (15, -0.9, 0.05, 36, false),
        (7, -0.9, 0.05, 36, false),
        (15, -1.0, 0.1, 0, false),
        (15, -1.0, 0.1, 3, false),
    ];
    for n in [16, 32] {
        for (x, w) in groups(n) {
            let w2: Vec<f32> = x.iter().map(|v| v * v).collect();
            for &(nmax, rmin, rdelta, nstep, use_mad) in &searches {
                let s = Search {
                    nmax,
                    rmin,
                    rdelta,
                    nstep,
                    use_mad,
                };
                for w in [&w, &w2] {
                    let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                    let (mut ma, mut mb) = (0.0, 0.0);
                    let sa = make_qkx_quants_with(s, &x, w, &mut a, &mut ma, qkx_lanes);
                    let sb = make_qkx_quants_with(s, &x, w, &mut b, &mut mb, qkx_sequential);
                    assert_eq!(
                        (sa.to_bits(), ma.to_bits(), &a),
                        (sb.to_bits(), mb.to_bits(), &b),
                        "{x:?} {nmax} {nstep}"
                    );
                }
            }
        }
    }
}
