//! Quantization of `f32` tensors into low-bit codes plus scales.
//!
//! - [`codebook`]: a block-wise codebook quantizer over any sorted table of levels in
//!   `[-1, 1]` (NF4, bitsandbytes' FP4, OCP E2M1, NFk built from the normal quantile function,
//!   or a table of your own).
//! - [`double`]: double quantization of the per-block scales (QLoRA's
//!   `compress_statistics`), with bitsandbytes' 8-bit dynamic map, and the storage cost.
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::codebook::{Codebook, CodebookQuantizer};
//!
//! let q = CodebookQuantizer::new(Codebook::nf4(), 64)?;
//! let x: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
//! let packed = q.quantize(&x)?;
//! assert_eq!(packed.codes.len(), 128); // two 4-bit codes a byte
//! assert_eq!(packed.absmax.len(), 4); // one f32 scale per block of 64
//! let y = q.dequantize(&packed)?;
//! assert_eq!(y.len(), x.len());
//! # Ok::<(), lowbit::QuantError>(())
//! ```

pub mod codebook;
pub mod double;
pub(crate) mod kernels;

/// Errors of the quantizers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A block holds a NaN or an infinity; `block` is its index.
    #[error("block {block} holds a NaN or an infinity")]
    NonFinite {
        /// Index of the first offending block.
        block: usize,
    },
    /// The block size is not supported here.
    #[error("unsupported block size {size} (supported: {supported})")]
    BlockSize {
        /// The block size asked for.
        size: usize,
        /// What is supported, in words.
        supported: &'static str,
    },
    /// A codebook table is not usable (unsorted, outside `[-1, 1]`, too long, ...).
    #[error("invalid codebook: {0}")]
    Codebook(&'static str),
    /// A buffer has the wrong length.
    #[error("{what}: length {actual}, expected {expected}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// The length needed.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A bit width is out of range.
    #[error("bit width {bits} out of range {min}..={max}")]
    BitWidth {
        /// The width asked for.
        bits: u32,
        /// Smallest supported width.
        min: u32,
        /// Largest supported width.
        max: u32,
    },
    /// A quantization state does not fit the data it is used with.
    #[error("inconsistent quantization state: {0}")]
    State(&'static str),
}

/// Checks that a buffer has the expected length.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Length { what, expected, actual })
    }
}
