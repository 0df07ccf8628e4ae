//! The tiled scale layout of cuBLAS and CUTLASS block-scaled matmuls.

use crate::quant::Error;

/// Rearrange a row-major `rows × cols` array of block scales (one row per matrix row, one
/// column per block) into the tiled layout cuBLAS and CUTLASS block-scaled matmuls read:
/// 128 × 4 tiles, zero-padded, each stored as 32 rows of 16 bytes (torchao's `to_blocked`).
/// The result has `32 · ceil(rows / 128) × 16 · ceil(cols / 4)` bytes.
///
/// ```
/// use lowbit::quant::mx::{swizzle_scales, unswizzle_scales};
/// let scales: Vec<u8> = (0..128 * 4).map(|i| i as u8).collect();
/// let tiled = swizzle_scales(&scales, 128, 4)?;
/// // Row r = 32a + b of a tile goes to bytes 16b + 4a .. 16b + 4a + 4.
/// assert_eq!(tiled[..8], [0, 1, 2, 3, 128, 129, 130, 131]);
/// assert_eq!(unswizzle_scales(&tiled, 128, 4)?, scales);
/// # Ok::<(), lowbit::QuantError>(())
/// ```
///
/// # Errors
/// [`Error::LengthMismatch`] unless `scales.len() == rows * cols` (checked, no overflow).
pub fn swizzle_scales(scales: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, Error> {
    let n = rows
        .checked_mul(cols)
        .ok_or(Error::InvalidHeader("rows × cols overflows"))?;
    crate::quant::expect_len(n, scales.len())?;
    let (rb, cb) = (rows.div_ceil(128), cols.div_ceil(4));
    let mut out = vec![0u8; rb * cb * 512];
    for r in 0..rows {
        for c in 0..cols {
            out[blocked_index(r, c, cb)] = scales[r * cols + c];
        }
    }
    Ok(out)
}

/// The inverse of [`swizzle_scales`] (torchao's `from_blocked`).
///
/// # Errors
/// [`Error::LengthMismatch`] unless `tiled` has the length [`swizzle_scales`] gives.
pub fn unswizzle_scales(tiled: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, Error> {
    let (rb, cb) = (rows.div_ceil(128), cols.div_ceil(4));
    let n = rb
        .checked_mul(cb)
        .and_then(|t| t.checked_mul(512))
        .ok_or(Error::InvalidHeader("rows × cols overflows"))?;
    crate::quant::expect_len(n, tiled.len())?;
    let mut out = vec![0u8; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = tiled[blocked_index(r, c, cb)];
        }
    }
    Ok(out)
}

/// Where scale `(r, c)` goes in the tiled layout with `cb` tiles per tile row.
#[inline]
fn blocked_index(r: usize, c: usize, cb: usize) -> usize {
    let tile = (r / 128) * cb + c / 4;
    let (a, b) = ((r % 128) / 32, r % 32);
    tile * 512 + b * 16 + a * 4 + c % 4
}
