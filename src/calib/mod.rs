//! Calibration: choose the clipping range of a tensor from the values it takes.
//!
//! Post-training quantization needs a range `[min, max]` for every activation tensor. A
//! [`Calibrator`] watches calibration batches ([`Calibrator::observe`]), combines with shards
//! collected elsewhere ([`Calibrator::merge`]), serialises its state
//! ([`Calibrator::to_bytes`]) and finally answers [`Calibrator::range`]. A [`Range`] turns into
//! quantization parameters: [`Range::symmetric_int8`], [`Range::affine_uint8`],
//! [`Range::fp8_scale`], and in ONNX Runtime's flavour [`Range::ort_qparams`].
//!
//! | calibrator | result depends on | merge |
//! |---|---|---|
//! | [`MinMaxCalibrator`] | the multiset of values | exact |
//! | [`PerChannelMinMaxCalibrator`] | the multiset of values per channel | exact |
//! | [`MovingAverageMinMaxCalibrator`] | the order of the batches (by definition) | not supported |
//! | [`HistogramCalibrator`] ([`Method::Percentile`], [`Method::Entropy`], [`Method::Mse`]) | the multiset of values | exact |
//!
//! # The histogram does not depend on batch order
//!
//! The histogram calibrators of ONNX Runtime and NVIDIA modelopt lay out their bins from the
//! first batch and grow them when a later batch holds a larger value, so the same data fed in
//! another order gives other bins and another range (ONNX Runtime's entropy picks 14.1 or 58.5
//! for the same Laplace tensor; [`crate::compat`] reproduces both tools). [`HistogramCalibrator`]
//! instead counts values in a *fixed* fine binning keyed on the bits of the `f32` (sign,
//! exponent and top mantissa bits). A count per key is all its state, so observing is counting
//! and merging is adding: the state, and so the [`Range`], is the same bit for bit for any order
//! of the batches, any split into batches and any tree of merges. [`Calibrator::range`] re-bins
//! the fine counts into the linear bins over `[0, max|x|]` the methods work on; each value lands
//! at most one bin (`max|x| / bins`) from where a histogram built in one pass over all the data
//! puts it (exactly there for data of f16 precision or less). Memory: 16 KiB per sign and binary
//! exponent present (see [`HistogramCalibrator`]).
//!
//! # Examples
//!
//! ```
//! use lowbit::calib::{Calibrator, HistogramCalibrator, Method};
//!
//! let data: Vec<f32> = (0..10_000).map(|i| ((i * 7919 % 10_000) as f32 / 5_000.0) - 1.0).collect();
//! let mut a = HistogramCalibrator::new(Method::Percentile(99.9))?;
//! let mut b = HistogramCalibrator::new(Method::Percentile(99.9))?;
//! for batch in data.chunks(1000) {
//!     a.observe(batch)?;
//! }
//! for batch in data.chunks(333).rev() {
//!     b.observe(batch)?; // other batches, other order
//! }
//! let r = a.range()?;
//! assert_eq!(r, b.range()?); // bit for bit
//! assert!((r.max - 0.999).abs() < 2.0 / 2048.0);
//! let q = r.symmetric_int8()?;
//! assert_eq!(q.scale, r.max / 127.0);
//! # Ok::<(), lowbit::calib::Error>(())
//! ```

pub(crate) mod bytes;
pub(crate) mod histogram;
mod minmax;
mod qparams;
pub(crate) mod select;

pub use histogram::{amax_from_histogram, HistogramCalibrator, Method, NonFinite, ENTROPY_MAX_STEPS, MSE_MAX_STEPS};
pub use minmax::{MinMaxCalibrator, MovingAverageMinMaxCalibrator, PerChannelMinMaxCalibrator};
pub use qparams::QParams;

/// Errors of the calibration module.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A batch holds a NaN or an infinity (and the calibrator does not skip them).
    #[error("non-finite value {value} at index {index} of the batch")]
    NonFinite {
        /// Position in the batch.
        index: usize,
        /// The value.
        value: f32,
    },
    /// [`Calibrator::range`] was called before any value was observed.
    #[error("no data observed")]
    NoData,
    /// A percentile outside `(0, 100]`.
    #[error("percentile {0} is outside (0, 100]")]
    InvalidPercentile(f64),
    /// A bin count of zero or above the supported maximum.
    #[error("invalid number of bins {bins} (supported: {min}..={max})")]
    InvalidBins {
        /// The requested count.
        bins: usize,
        /// Smallest supported count.
        min: usize,
        /// Largest supported count.
        max: usize,
    },
    /// A bit width the method cannot use with this many bins.
    #[error("invalid bit width {bits}: {reason}")]
    InvalidBits {
        /// The requested width.
        bits: u32,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Two calibrators of different configurations were merged.
    #[error("cannot merge calibrators of different configurations")]
    ConfigMismatch,
    /// The calibrator cannot merge (its result depends on batch order by definition).
    #[error("this calibrator cannot merge: its state depends on batch order")]
    NotMergeable,
    /// A per-channel batch whose length is not a multiple of the channel count, or zero channels.
    #[error("batch of {len} values does not split into {channels} channels")]
    ChannelMismatch {
        /// Length of the batch.
        len: usize,
        /// Number of channels.
        channels: usize,
    },
    /// A constructor parameter outside its domain (named).
    #[error("invalid parameter {0}")]
    InvalidParameter(&'static str),
    /// A range that is not finite or has `min > max`.
    #[error("invalid range [{min}, {max}]")]
    InvalidRange {
        /// Lower end.
        min: f32,
        /// Upper end.
        max: f32,
    },
    /// Serialised state that is truncated, corrupt or of another kind or version.
    #[error("cannot decode calibrator state: {0}")]
    Decode(&'static str),
    /// A histogram would need more bins than supported. The histograms of
    /// [`crate::compat::ort`] and [`crate::compat::modelopt`] keep the first batch's bin width
    /// and add bins when a later batch holds a larger value, as the tools do; data spanning
    /// too many widths (a first batch of tiny or zero values, then large ones) would make
    /// them grow without bound. The limit is on the type that reports it.
    #[error("the histogram would need {needed} bins, more than the supported {max}")]
    TooManyBins {
        /// Bins the histogram would need (may be infinite).
        needed: f64,
        /// Largest supported number of bins.
        max: usize,
    },
    /// A value too large in magnitude for the `f32` arithmetic a reproduced tool does (its
    /// bin index or range width would overflow to infinity).
    #[error("magnitude {value} is too large: at most {max} is supported here")]
    MagnitudeTooLarge {
        /// The largest magnitude of the batch.
        value: f32,
        /// Largest supported magnitude.
        max: f32,
    },
    /// The number of values (or rows) observed would pass `u64::MAX`; the state is unchanged.
    #[error("the number of observed values would exceed 2^64 - 1")]
    CountOverflow,
}

/// A clipping range: values are quantized within `[min, max]`.
///
/// # Examples
///
/// ```
/// use lowbit::calib::Range;
/// let r = Range { min: -1.5, max: 3.0 };
/// assert_eq!(r.amax(), 3.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower end.
    pub min: f32,
    /// Upper end.
    pub max: f32,
}

impl Range {
    /// The largest magnitude, `max(|min|, |max|)`.
    pub fn amax(&self) -> f32 {
        self.min.abs().max(self.max.abs())
    }
}

/// Something that watches calibration batches and chooses a [`Range`].
///
/// All calibrators of this module implement it. Empty batches are fine and change nothing.
///
/// # Examples
///
/// ```
/// use lowbit::calib::{Calibrator, MinMaxCalibrator, Range};
///
/// // Two shards, calibrated apart (threads, processes, machines) and combined.
/// let mut a = MinMaxCalibrator::new();
/// let mut b = MinMaxCalibrator::new();
/// a.observe(&[0.5, -2.0])?;
/// b.observe(&[3.0])?;
/// let shipped = b.to_bytes();
/// a.merge(&MinMaxCalibrator::from_bytes(&shipped)?)?;
/// assert_eq!(a.range()?, Range { min: -2.0, max: 3.0 });
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
pub trait Calibrator {
    /// Add a batch of values.
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`] if the batch holds a NaN or an infinity (unless the calibrator is
    /// set to skip them); the state is then unchanged. Per-channel calibrators return
    /// [`Error::ChannelMismatch`] for a length that is not a multiple of the channel count.
    /// [`Error::CountOverflow`] if the number of values observed would pass `u64::MAX`.
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error>;

    /// Add the state of another calibrator of the same configuration.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigMismatch`] if the configurations differ, [`Error::NotMergeable`] for the
    /// moving-average calibrator, [`Error::CountOverflow`] if the combined count would pass
    /// `u64::MAX` (the state is then unchanged).
    fn merge(&mut self, other: &Self) -> Result<(), Error>
    where
        Self: Sized;

    /// The chosen range.
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any value was observed.
    fn range(&self) -> Result<Range, Error>;

    /// The collected state (and configuration) as bytes, in the layout documented on the type.
    fn to_bytes(&self) -> Vec<u8>;

    /// Rebuild a calibrator from [`Calibrator::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for bytes that are truncated, corrupt, or of another calibrator.
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error>
    where
        Self: Sized;
}

/// Order key of an `f32`: integers compare as the floats do under `total_cmp`.
#[inline(always)]
pub(crate) fn order_key(bits: u32) -> u32 {
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Inverse of [`order_key`].
#[inline(always)]
pub(crate) fn from_order_key(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 { key & 0x7fff_ffff } else { !key })
}
