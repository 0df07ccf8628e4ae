//! The calibrators: observe, merge, range and the state bytes, with the order-and-split
//! invariant (any order of the batches, any split into shards merged in any order, and one
//! big batch, give the same state, bit for bit).

use super::{f32_any, f32_finite, f32s_mostly_finite, run, size, vec_of};
use arbitrary::{Result, Unstructured};
use lowbit::calib::{
    amax_from_histogram, Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, MovingAverageMinMaxCalibrator,
    PerChannelMinMaxCalibrator, Range,
};

/// Batches, some with NaN or infinity (refused under the error policy, state unchanged).
fn batches(u: &mut Unstructured<'_>, max_len: usize, multiple: usize) -> Result<Vec<Vec<f32>>> {
    let n = u.int_in_range(1usize..=5)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut b = f32s_mostly_finite(u, max_len)?;
        if multiple > 1 && u.ratio(7u8, 8)? {
            b.truncate(b.len() / multiple * multiple);
        }
        out.push(b);
    }
    Ok(out)
}

/// Check the order-and-split invariant for `C`, built fresh by `new`; returns the calibrator
/// that saw every batch in order.
fn order_and_split<C: Calibrator + Clone>(
    u: &mut Unstructured<'_>,
    new: impl Fn() -> C,
    batches: &[Vec<f32>],
    can_skip: bool,
) -> Result<C> {
    // In order, keeping what was accepted.
    let mut in_order = new();
    let mut accepted: Vec<&[f32]> = Vec::new();
    for b in batches {
        let before = in_order.to_bytes();
        match in_order.observe(b) {
            Ok(()) => accepted.push(b),
            Err(_) => assert_eq!(in_order.to_bytes(), before, "a refused batch changed the state"),
        }
    }
    let want = in_order.to_bytes();
    // Reversed.
    let mut reversed = new();
    for b in accepted.iter().rev() {
        reversed.observe(b).expect("a batch accepted in order");
    }
    assert_eq!(reversed.to_bytes(), want, "batch order changed the state");
    // One shard per batch, merged in a shuffled order, some through their bytes.
    let mut shards: Vec<C> = accepted
        .iter()
        .map(|b| {
            let mut c = new();
            c.observe(b).expect("accepted");
            c
        })
        .collect();
    let mut merged = new();
    while !shards.is_empty() {
        let i = u.choose_index(shards.len())?;
        let s = shards.swap_remove(i);
        let s = if u.arbitrary()? {
            C::from_bytes(&s.to_bytes()).expect("shard bytes")
        } else {
            s
        };
        merged.merge(&s).expect("merge of same-configured shards");
    }
    assert_eq!(merged.to_bytes(), want, "merging shards changed the state");
    // One big batch (when none was refused, or refusals are skipped anyway).
    if !can_skip || accepted.len() == batches.len() {
        let big: Vec<f32> = accepted.concat();
        let mut one = new();
        one.observe(&big).expect("the accepted values in one batch");
        assert_eq!(one.to_bytes(), want, "one big batch differs from the batches");
    }
    let d = C::from_bytes(&want).expect("from_bytes(to_bytes(c))");
    assert_eq!(d.to_bytes(), want);
    Ok(in_order)
}

/// A `Range` and every qparams helper on it.
fn use_range(r: Range) {
    let _ = r.amax();
    let _ = r.symmetric_int8();
    if let Ok(p) = r.affine_uint8() {
        assert!(p.scale.is_finite() && p.scale > 0.0, "{r:?} -> {p:?}");
    }
    let _ = r.fp8_scale::<lowbit::E4M3>();
    let _ = r.fp8_scale::<lowbit::E8M0>();
    let _ = r.fp8_scale::<lowbit::Bf16>();
}

/// MinMax, moving-average and per-channel calibrators.
pub fn calib_minmax(data: &[u8]) {
    run(data, |u| {
        match u.int_in_range(0u8..=3)? {
            0 => {
                let bs = batches(u, 40, 1)?;
                let c = order_and_split(u, MinMaxCalibrator::new, &bs, true)?;
                let _ = c.count();
                if let Ok(r) = c.range() {
                    assert!(r.min <= r.max && r.min.is_finite() && r.max.is_finite(), "{r:?}");
                    use_range(r);
                }
            }
            1 => {
                let k = if u.arbitrary()? { f32_any(u)? } else { 0.5 };
                let Ok(mut c) = MovingAverageMinMaxCalibrator::new(k) else {
                    return Ok(());
                };
                for b in batches(u, 40, 1)? {
                    let _ = c.observe(&b);
                }
                if let Ok(r) = c.range() {
                    assert!(
                        r.min <= r.max && r.min.is_finite() && r.max.is_finite(),
                        "c = {k}: {r:?}"
                    );
                    use_range(r);
                }
                let other = c.clone();
                assert!(c.merge(&other).is_err());
                let d = MovingAverageMinMaxCalibrator::from_bytes(&c.to_bytes()).expect("bytes");
                assert_eq!(d.to_bytes(), c.to_bytes());
            }
            2 => {
                let ch = size(u)?;
                let Ok(c) = PerChannelMinMaxCalibrator::new(ch) else {
                    return Ok(());
                };
                assert_eq!(c.channels(), ch);
                let bs = batches(u, 48, ch.max(1))?;
                let c = order_and_split(u, || PerChannelMinMaxCalibrator::new(ch).expect("ch"), &bs, true)?;
                if let Ok(rs) = c.ranges() {
                    assert_eq!(rs.len(), ch);
                    for r in rs {
                        assert!(r.min <= r.max, "{r:?}");
                    }
                }
                let _ = c.range();
                let _ = lowbit::scheme::smooth::absmax_from_calibrator(&c);
                if ch < 4096 {
                    let mut other = PerChannelMinMaxCalibrator::new(ch + 1).expect("ch + 1");
                    let _ = other.observe(&vec![1.0; ch + 1]);
                    let mut c2 = c.clone();
                    assert!(c2.merge(&other).is_err());
                }
            }
            _ => {
                // Ranges from public fields.
                let r = Range {
                    min: f32_any(u)?,
                    max: f32_any(u)?,
                };
                use_range(r);
            }
        }
        Ok(())
    });
}

fn method(u: &mut Unstructured<'_>) -> Result<Method> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => Method::Percentile(match u.int_in_range(0u8..=3)? {
            0 => f64::from(f32_any(u)?),
            1 => f64::from(u.int_in_range(0u8..=101)?),
            _ => 99.0 + f64::from(u.int_in_range(0u8..=100)?) / 100.0,
        }),
        1 => Method::Entropy { bits: super::bits(u)? },
        _ => {
            // Any width (F16, fixed: the search's bins × 2^(bits-1) steps are limited to
            // MSE_MAX_STEPS, wider configurations refused).
            Method::Mse { bits: super::bits(u)? }
        }
    })
}

/// `HistogramCalibrator` with every method, bin count, symmetry and policy; the order-and-
/// split invariant; `amax_from_histogram`.
pub fn calib_histogram(data: &[u8]) {
    run(data, |u| {
        let m = method(u)?;
        let Ok(mut c) = HistogramCalibrator::new(m) else {
            return Ok(());
        };
        if u.arbitrary()? {
            // Mostly up to the default 2048 (the range search is linear in the bins, and
            // this target runs in CI in debug), sometimes any size (up to 65536 accepted).
            let bins = if u.ratio(1u8, 16)? {
                size(u)?
            } else {
                u.int_in_range(1usize..=2048)?
            };
            match c.clone().with_bins(bins) {
                Ok(d) => c = d,
                Err(_) => return Ok(()),
            }
        }
        let c = c.with_symmetric(u.arbitrary()?);
        let c = c.clone().with_non_finite(super::non_finite(u)?).unwrap_or(c);
        let skip = c.clone().observe(&[f32::NAN]).is_ok();
        let bs = batches(u, 48, 1)?;
        let template = c.clone();
        let got = order_and_split(u, || template.clone(), &bs, skip)?;
        let _ = (got.bins(), got.count(), got.skipped(), got.memory(), got.amax());
        if let Ok(r) = got.range() {
            assert!(r.min <= r.max || (r.min.is_nan() && r.max.is_nan()), "{m:?}: {r:?}");
            use_range(r);
        }
        // Another configuration does not merge.
        let mut other = HistogramCalibrator::new(Method::Mse { bits: 8 })
            .expect("a valid method")
            .with_bins(7)
            .expect("7 bins");
        let _ = other.observe(&[1.0]);
        let mut g2 = got.clone();
        let _ = g2.merge(&other);
        // A histogram of our own.
        let counts = vec_of(u, 300, |u| {
            Ok(if u.ratio(1u8, 16)? {
                u.arbitrary::<u64>()?
            } else {
                u64::from(u.arbitrary::<u8>()?)
            })
        })?;
        let _ = amax_from_histogram(method(u)?, &counts, f32_finite(u)?);
        Ok(())
    });
}
