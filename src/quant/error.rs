//! The errors of the quantization module.

/// Errors of the quantization module.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bit width outside the range the scheme supports.
    #[error("{bits}-bit codes are not supported here (supported: {min}..={max})")]
    InvalidBits {
        /// The width asked for.
        bits: u32,
        /// Smallest supported width.
        min: u32,
        /// Largest supported width.
        max: u32,
    },
    /// A block size, or a row or column count, of zero.
    #[error("group size must be at least 1")]
    ZeroGroupSize,
    /// The input length is not a multiple of the row length a per-row or per-column
    /// granularity needs.
    #[error("length {len} is not a multiple of the row length {cols}")]
    NotAMultiple {
        /// Elements given.
        len: usize,
        /// Columns of the matrix.
        cols: usize,
    },
    /// A fixed-block layout got a length that is not a whole number of blocks.
    #[error("length {len} is not a multiple of the block size {block}")]
    NotWholeBlocks {
        /// Elements given.
        len: usize,
        /// Elements per block.
        block: usize,
    },
    /// A buffer has the wrong length.
    #[error("length mismatch: expected {expected}, got {actual}")]
    LengthMismatch {
        /// The length needed.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A group holds a NaN or an infinity and the policy is [`NonFinite::Error`](crate::NonFinite::Error).
    #[error("group {group} holds a non-finite value at element {index}")]
    NonFinite {
        /// Index of the group (block, row or column).
        group: usize,
        /// Index of the first non-finite element in the input.
        index: usize,
    },
    /// A group's scale does not fit the scale's storage format (it rounds to infinity, NaN,
    /// or zero for a group that is not all zeros).
    #[error("group {group}: scale {scale:e} is out of range for the scale format")]
    ScaleOutOfRange {
        /// Index of the group.
        group: usize,
        /// The scale before rounding to the storage format.
        scale: f32,
    },
    /// A code does not fit in the bit width.
    #[error("code {code} at index {index} does not fit in {bits} bits")]
    CodeOutOfRange {
        /// Index of the code.
        index: usize,
        /// The code.
        code: u8,
        /// The bit width.
        bits: u32,
    },
    /// A serialized buffer is shorter than its header says it must be.
    #[error("buffer too short: need {needed} bytes, got {got}")]
    BufferTooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A serialized buffer is not a valid [`Quantized`](super::Quantized) (bad magic, version or field).
    #[error("invalid quantized buffer: {0}")]
    InvalidHeader(&'static str),
    /// A [`Quantized`](super::Quantized) value does not match the quantizer asked to decode it.
    #[error("quantized value does not match this quantizer: {0}")]
    Incompatible(&'static str),
    /// An integer code range that does not hold 0 or is empty.
    #[error("invalid code range {min}..={max}")]
    InvalidRange {
        /// Smallest code.
        min: i32,
        /// Largest code.
        max: i32,
    },
    /// The scale storage format is not supported: more than 32 bits, or values outside the
    /// `f32` range.
    #[error("scale format with {bits} bits is not supported (at most 32 bits, values within f32)")]
    UnsupportedScaleFormat {
        /// Width of the format.
        bits: u32,
    },
    /// A block size the scheme does not support (bitsandbytes' fixed list, an odd block for
    /// nibble-packed codebook codes, ...).
    #[error("unsupported block size {size} (supported: {supported})")]
    BlockSize {
        /// The block size asked for.
        size: usize,
        /// What is supported, in words.
        supported: &'static str,
    },
    /// A scale handed to [`Quantized::from_parts`](super::Quantized::from_parts) that is not a
    /// value of the scale format.
    #[error("group {group}: scale {scale:e} is not a value of the scale format")]
    ScaleNotInFormat {
        /// Index of the group.
        group: usize,
        /// The scale given.
        scale: f32,
    },
    /// A [`Scheme::Other`](super::Scheme::Other) tag above 253: the byte layout stores
    /// `2 + tag` in one byte.
    #[error("scheme tag {0} is out of range (0..=253)")]
    UnsupportedScheme(u8),
    /// A rounding mode integer codes do not support: [`Rounding::Stochastic`](super::Rounding::Stochastic).
    #[error("stochastic rounding is not supported by this quantizer")]
    UnsupportedRounding,
    /// An importance weight (an imatrix entry) that is NaN or infinite.
    #[error("importance weight {index} is not finite")]
    NonFiniteWeight {
        /// Index of the weight.
        index: usize,
    },
    /// A codebook table is not usable (unsorted, outside `[-1, 1]`, too long, ...).
    #[error("invalid codebook: {0}")]
    Codebook(&'static str),
    /// A quantizer parameter out of its domain.
    #[error("{name} = {value}: {why}")]
    Parameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be.
        why: &'static str,
    },
}
