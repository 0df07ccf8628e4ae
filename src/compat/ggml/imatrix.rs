//! Quantization with an importance matrix: ggml's `quantize_q4_K(src, dst, nrow, n_per_row,
//! quant_weights)` and its siblings with `quant_weights != NULL`, what `llama-quantize
//! --imatrix` runs.

// Index loops as in ggml-quants.c, so the two can be read side by side.
#![allow(clippy::needless_range_loop)]

use bytemuck::Zeroable;

use super::k_quants::{pack_scale_min_k4, q4_k_from, q5_k_from, q6_k, super_block, KScales};
use super::k_search::{make_qkx_quants, make_qp_quants, make_qx_quants, Search};
use super::k_small::{q2_k_finish, q3_k_finish};
use super::legacy::{pack5, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1};
use super::{check_finite, half_checked, BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K};
use super::{GgmlBlock, GgmlType, QK, QK_K};
use crate::quant::Error;

/// Quantize a matrix of rows of `n_per_row` values with importance weights, as ggml's
/// `quantize_<type>(x, dst, nrow, n_per_row, weights)`.
///
/// `weights` holds one importance per column (`n_per_row` values, the same for every row):
/// what llama.cpp's imatrix file stores for the tensor, the mean of the squared activations
/// entering each column. The types with an importance-weighted search are `Q4_0`, `Q4_1`,
/// `Q5_0`, `Q5_1`, `Q2_K`, `Q3_K`, `Q4_K`, `Q5_K` and `Q6_K`; for `Q8_0` ggml ignores the
/// weights (and has no such quantizer for `Q8_K`), so both give [`GgmlBlock::quantize`].
///
/// # Errors
/// [`Error::ZeroGroupSize`] for `n_per_row == 0`, [`Error::NotWholeBlocks`] unless
/// `n_per_row` is a multiple of the block size, [`Error::NotAMultiple`] unless `x.len()` is a
/// multiple of `n_per_row`, [`Error::LengthMismatch`] unless `weights.len() == n_per_row`,
/// [`Error::NonFiniteWeight`] for a NaN or infinite weight, and those of
/// [`GgmlBlock::quantize_into`] (block indices count over the whole matrix).
///
/// # Examples
///
/// ```
/// use lowbit::compat::ggml::{quantize_with_imatrix, BlockQ4_K, GgmlBlock};
///
/// let x: Vec<f32> = (0..2 * 512).map(|i| (i as f32 * 0.37).sin()).collect();
/// // Columns that matter more (larger activations) get a larger weight.
/// let w: Vec<f32> = (0..512).map(|c| 1.0 + (c % 7) as f32).collect();
/// let blocks = quantize_with_imatrix::<BlockQ4_K>(&x, 512, &w)?;
/// assert_eq!(blocks.len(), 4);
/// let y = BlockQ4_K::dequantize(&blocks);
/// assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.1));
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub fn quantize_with_imatrix<B: GgmlBlock>(x: &[f32], n_per_row: usize, weights: &[f32]) -> Result<Vec<B>, Error> {
    if n_per_row == 0 {
        return Err(Error::ZeroGroupSize);
    }
    if !n_per_row.is_multiple_of(B::BLOCK) {
        return Err(Error::NotWholeBlocks {
            len: n_per_row,
            block: B::BLOCK,
        });
    }
    if !x.len().is_multiple_of(n_per_row) {
        return Err(Error::NotAMultiple {
            len: x.len(),
            cols: n_per_row,
        });
    }
    if weights.len() != n_per_row {
        return Err(Error::LengthMismatch {
            expected: n_per_row,
            actual: weights.len(),
        });
    }
    if let Some(index) = weights.iter().position(|w| !w.is_finite()) {
        return Err(Error::NonFiniteWeight { index });
    }
    let per_row = n_per_row / B::BLOCK;
    let mut out = vec![B::zeroed(); x.len() / B::BLOCK];
    for (r, (row, orow)) in x.chunks_exact(n_per_row).zip(out.chunks_exact_mut(per_row)).enumerate() {
        let first = r * per_row;
        for (i, xs) in row.chunks_exact(B::BLOCK).enumerate() {
            check_finite(xs, first + i)?;
        }
        let t = B::TYPE;
        match t {
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => {
                legacy_row(t, row, weights, bytemuck::cast_slice_mut(orow), first)?
            }
            GgmlType::Q2_K => k_row(row, weights, first, cast(orow)?, q2_k)?,
            GgmlType::Q3_K => k_row(row, weights, first, cast(orow)?, q3_k)?,
            GgmlType::Q4_K => k_row(row, weights, first, cast(orow)?, q4_k)?,
            GgmlType::Q5_K => k_row(row, weights, first, cast(orow)?, q5_k)?,
            GgmlType::Q6_K => k_row(row, weights, first, cast(orow)?, |x, qw, g| q6_k(x, Some(qw), g))?,
            _ => {
                for (i, (xs, b)) in row.chunks_exact(B::BLOCK).zip(orow.iter_mut()).enumerate() {
                    *b = B::quantize(xs).map_err(|e| regroup(e, first + i))?[0];
                }
            }
        }
    }
    Ok(out)
}

/// `B`'s blocks as the block type its [`GgmlBlock::TYPE`] names (the same type).
fn cast<B: GgmlBlock, T: GgmlBlock>(b: &mut [B]) -> Result<&mut [T], Error> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Incompatible("block type"))
}

/// An error of block 0 of a one-block call, for block `group`.
fn regroup(e: Error, group: usize) -> Error {
    match e {
        Error::NonFinite { index, .. } => Error::NonFinite { group, index },
        Error::ScaleOutOfRange { scale, .. } => Error::ScaleOutOfRange { group, scale },
        e => e,
    }
}

/// One row of K-quant super-blocks, `f` quantizing one with its 256 weights.
fn k_row<T>(
    row: &[f32],
    weights: &[f32],
    first: usize,
    out: &mut [T],
    f: impl Fn(&[f32; QK_K], &[f32], usize) -> Result<T, Error>,
) -> Result<(), Error> {
    for (i, ((xs, qw), b)) in row
        .chunks_exact(QK_K)
        .zip(weights.chunks_exact(QK_K))
        .zip(out)
        .enumerate()
    {
        *b = f(super_block(xs, first + i)?, qw, first + i)?;
    }
    Ok(())
}

/// ggml's imatrix search parameters (`make_qkx3_quants(..., -0.9f, 0.05f, 36, false)`).
const fn qkx3(nmax: i32) -> Search {
    Search {
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    }
}

/// `sum(x²)` in index order.
fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `qw[l] × sqrt(sigma2 + x[l]²)`, and their sum in index order.
fn weigh(x: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32]) -> f32 {
    let mut sum = 0.0f32;
    for ((o, &v), &q) in out.iter_mut().zip(x).zip(qw) {
        *o = q * (sigma2 + v * v).sqrt();
        sum += *o;
    }
    sum
}

/// `quantize_row_q4_K_impl` / `quantize_row_q5_K_impl` up to the codes.
fn k4_scales(x: &[f32; QK_K], qw: &[f32], nmax: i32, clamp63: bool, group: usize) -> Result<KScales, Error> {
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins, mut sw) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    let mut w = [0f32; 32];
    for j in 0..8 {
        let r = 32 * j..32 * j + 32;
        sw[j] = weigh(&x[r.clone()], &qw[r.clone()], sigma2, &mut w);
        scales[j] = make_qkx_quants(qkx3(nmax), &x[r.clone()], &w, &mut l[r], &mut mins[j]);
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    if clamp63 {
        for v in ls.iter_mut().chain(lm.iter_mut()) {
            *v = (*v).min(63);
        }
    }
    Ok(KScales {
        d: half_checked(d_block, group)?,
        dmin: half_checked(m_block, group)?,
        scales: pack_scale_min_k4(&ls, &lm),
        l,
    })
}

fn q4_k(x: &[f32; QK_K], qw: &[f32], group: usize) -> Result<BlockQ4_K, Error> {
    Ok(q4_k_from(x, k4_scales(x, qw, 15, false, group)?))
}

fn q5_k(x: &[f32; QK_K], qw: &[f32], group: usize) -> Result<BlockQ5_K, Error> {
    Ok(q5_k_from(x, k4_scales(x, qw, 31, true, group)?))
}

/// `quantize_row_q3_K_impl` for one super-block.
fn q3_k(x: &[f32; QK_K], qw: &[f32], group: usize) -> Result<BlockQ3_K, Error> {
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut l = [0i8; QK_K];
    let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
    let mut w = [0f32; 16];
    for j in 0..16 {
        let r = 16 * j..16 * j + 16;
        sw[j] = weigh(&x[r.clone()], &qw[r.clone()], sigma2, &mut w);
        scales[j] = make_qx_quants(4, &x[r.clone()], &mut l[r], Some(&w));
    }
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
    let packed = super::k_small::pack_q3_scales(&ls.map(|v| v as u8));
    Ok(q3_k_finish(x, &mut l, half_checked(d_block, group)?, packed))
}

/// `quantize_row_q2_K_impl` for one super-block.
fn q2_k(x: &[f32; QK_K], qw: &[f32], group: usize) -> Result<BlockQ2_K, Error> {
    let sigma2 = sum_sq(x) / QK_K as f32;
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    let mut w = [0f32; 16];
    for j in 0..16 {
        let r = 16 * j..16 * j + 16;
        sw[j] = weigh(&x[r.clone()], &qw[r.clone()], sigma2, &mut w);
        scales[j] = make_qkx_quants(qkx3(3), &x[r.clone()], &w, &mut l[r], &mut mins[j]);
    }
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let dm = make_qp_quants(15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(15, &mins, &mut lm, &sw);
    let (d, dmin) = (half_checked(dm, group)?, half_checked(mm, group)?);
    let mut packed = [0u8; 16];
    for j in 0..16 {
        packed[j] = ls[j] | (lm[j] << 4);
    }
    Ok(q2_k_finish(x, &mut l, packed, d, dmin))
}

/// `quantize_row_q{4,5}_{0,1}_impl` for one row of 32-element blocks (`out` as bytes).
fn legacy_row(t: GgmlType, row: &[f32], qw: &[f32], out: &mut [u8], first: usize) -> Result<(), Error> {
    let sigma2 = sum_sq(row) / row.len() as f32;
    let size = t.type_size() as usize;
    let mut w = [0f32; QK];
    for (ib, (xb, ob)) in row.chunks_exact(QK).zip(out.chunks_exact_mut(size)).enumerate() {
        let group = first + ib;
        weigh(xb, &qw[QK * ib..QK * ib + QK], sigma2, &mut w);
        match t {
            GgmlType::Q4_0 | GgmlType::Q5_0 => {
                let nmax = if t == GgmlType::Q4_0 { 8 } else { 16 };
                let mut l = [0i8; QK];
                let d = half_checked(make_qx_quants(nmax, xb, &mut l, Some(&w)), group)?;
                let l = l.map(|v| v as u8);
                if t == GgmlType::Q4_0 {
                    let mut b = BlockQ4_0 { d, qs: [0; QK / 2] };
                    for j in 0..QK / 2 {
                        b.qs[j] = l[j] | (l[j + QK / 2] << 4);
                    }
                    ob.copy_from_slice(bytemuck::bytes_of(&b));
                } else {
                    let mut b = BlockQ5_0::zeroed();
                    b.d = d;
                    (b.qs, b.qh) = pack5(&l);
                    ob.copy_from_slice(bytemuck::bytes_of(&b));
                }
            }
            _ => {
                let nmax = if t == GgmlType::Q4_1 { 15 } else { 31 };
                let (mut l, mut min) = ([0u8; QK], 0.0f32);
                let d = make_qkx_quants(qkx3(nmax), xb, &w, &mut l, &mut min);
                let (d, m) = (half_checked(d, group)?, half_checked(-min, group)?);
                if t == GgmlType::Q4_1 {
                    let mut b = BlockQ4_1 { d, m, qs: [0; QK / 2] };
                    for j in 0..QK / 2 {
                        b.qs[j] = l[j] | (l[j + QK / 2] << 4);
                    }
                    ob.copy_from_slice(bytemuck::bytes_of(&b));
                } else {
                    let mut b = BlockQ5_1::zeroed();
                    (b.d, b.m) = (d, m);
                    (b.qs, b.qh) = pack5(&l);
                    ob.copy_from_slice(bytemuck::bytes_of(&b));
                }
            }
        }
    }
    Ok(())
}
