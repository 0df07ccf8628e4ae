//! ggml blocks on all cores (rayon's pool), for large tensors.
//!
//! The tensor is cut into runs of whole blocks of about 64 KiB of `f32` each, so the blocks are
//! those of the serial [`GgmlBlock`] functions, bit for bit, whatever the number of threads.
//! An error is the one the serial function reports (the first failing block, its index counted
//! from the start of the tensor); blocks after it may have been written.
//!
//! ```
//! use lowbit::compat::ggml::{par, BlockQ4_K, GgmlBlock};
//! let x: Vec<f32> = (0..64 * 256).map(|i| (i as f32 * 0.37).sin()).collect();
//! let mut blocks = BlockQ4_K::quantize(&x[..256])?; // any start value; resized below
//! blocks.resize(64, blocks[0]);
//! par::quantize_into(&x, &mut blocks)?;
//! assert_eq!(blocks, BlockQ4_K::quantize(&x)?);
//!
//! let mut y = vec![0.0; x.len()];
//! par::dequantize_into(&blocks, &mut y)?;
//! assert_eq!(y, BlockQ4_K::dequantize(&blocks));
//! # Ok::<(), lowbit::QuantError>(())
//! ```

use rayon::prelude::*;

use super::{whole_blocks, GgmlBlock};
use crate::quant::Error;

/// Blocks a task takes: 16 Ki elements (64 KiB of `f32`), at least one block.
fn blocks_per_task<B: GgmlBlock>() -> usize {
    ((1 << 14) / B::BLOCK).max(1)
}

/// `e`, raised by the run of blocks starting at block `first`, counted from the tensor's start.
fn from_start(e: Error, first: usize, block: usize) -> Error {
    match e {
        Error::NonFinite { group, index } => Error::NonFinite {
            group: group + first,
            index: index + first * block,
        },
        Error::ScaleOutOfRange { group, scale } => Error::ScaleOutOfRange {
            group: group + first,
            scale,
        },
        e => e,
    }
}

/// [`GgmlBlock::quantize_into`] on all cores.
///
/// # Errors
/// As [`GgmlBlock::quantize_into`]; the first failing block's error, whichever thread met it.
pub fn quantize_into<B: GgmlBlock + Send>(x: &[f32], out: &mut [B]) -> Result<(), Error> {
    whole_blocks(x, B::BLOCK, out.len()).map(drop)?;
    let per = blocks_per_task::<B>();
    let results: Vec<Result<(), Error>> = x
        .par_chunks(per * B::BLOCK)
        .zip(out.par_chunks_mut(per))
        .enumerate()
        .map(|(k, (xs, bs))| B::quantize_into(xs, bs).map_err(|e| from_start(e, k * per, B::BLOCK)))
        .collect();
    results.into_iter().collect()
}

/// [`GgmlBlock::dequantize_into`] on all cores.
///
/// # Errors
/// [`Error::LengthMismatch`] for a wrong `out` length.
pub fn dequantize_into<B: GgmlBlock + Sync>(blocks: &[B], out: &mut [f32]) -> Result<(), Error> {
    if blocks.len() * B::BLOCK != out.len() {
        return Err(Error::LengthMismatch {
            expected: blocks.len() * B::BLOCK,
            actual: out.len(),
        });
    }
    let per = blocks_per_task::<B>();
    blocks
        .par_chunks(per)
        .zip(out.par_chunks_mut(per * B::BLOCK))
        .try_for_each(|(bs, ys)| B::dequantize_into(bs, ys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::ggml::{BlockQ4_0, BlockQ6_K, BlockQ8_0};

    fn data(n: usize) -> Vec<f32> {
        let mut r = crate::testing::XorShift(0x0123_4567_89ab_cdef);
        (0..n).map(|_| r.centered() * 3.0).collect()
    }

    fn same<B: GgmlBlock + Send + Sync + PartialEq + core::fmt::Debug>(x: &[f32]) {
        let want = B::quantize(x).unwrap();
        let mut got = vec![want[0]; want.len()];
        quantize_into(x, &mut got).unwrap();
        assert_eq!(got, want);
        let mut y = vec![0.0; x.len()];
        dequantize_into(&got, &mut y).unwrap();
        assert_eq!(y, B::dequantize(&want));
    }

    #[test]
    fn equals_serial_over_many_tasks() {
        // Lengths that leave a short last task.
        let x = data(5 * (1 << 14) + 3 * 256);
        same::<BlockQ8_0>(&x);
        same::<BlockQ4_0>(&x);
        same::<BlockQ6_K>(&x);
    }

    #[test]
    fn errors_are_the_serial_ones() {
        let mut x = data(4 * (1 << 14));
        x[3 * (1 << 14) + 40] = f32::NAN;
        x[(1 << 14) + 70] = f32::INFINITY;
        let mut out = vec![BlockQ8_0::quantize(&x[..32]).unwrap()[0]; x.len() / 32];
        let serial = BlockQ8_0::quantize_into(&x, &mut out.clone()).unwrap_err();
        assert_eq!(quantize_into(&x, &mut out).unwrap_err(), serial);
        assert_eq!(
            serial,
            Error::NonFinite {
                group: ((1 << 14) + 70) / 32,
                index: (1 << 14) + 70
            }
        );
        assert!(matches!(
            quantize_into(&x[..100], &mut out),
            Err(Error::NotWholeBlocks { .. })
        ));
        assert!(matches!(
            dequantize_into(&out, &mut [0.0; 10]),
            Err(Error::LengthMismatch { .. })
        ));
    }
}
