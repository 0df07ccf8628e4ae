//! What to do with NaN and infinity in caller data: one policy for quantizers and calibrators.

/// What to do with NaN and infinity in the input of a quantizer or a calibrator.
///
/// ```
/// use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer};
/// use lowbit::NonFinite;
///
/// let x = [1.0, f32::NAN, -2.0, 0.5];
/// let q = AbsmaxQuantizer::new(8, Granularity::PerTensor)?;
/// assert!(q.quantize(&x).is_err()); // NonFinite::Error, the default
/// let skip = q.with_non_finite(NonFinite::Skip);
/// assert_eq!(skip.quantize(&x)?.scales(), &[2.0 / 127.0]); // the scale of the finite values
/// # Ok::<(), lowbit::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NonFinite {
    /// Return an error naming where the first one is, and change nothing. The default.
    #[default]
    Error,
    /// Quantizers: a group holding a NaN or an infinity gets a NaN scale, so the whole group
    /// dequantizes to NaN; its codes are 0 (with a scale format that has no NaN this is an
    /// error instead). Calibrators refuse this policy: a range cannot be NaN.
    Propagate,
    /// Leave them out. Quantizers take the scale (absmax, min and max) over the finite values;
    /// then NaN gets the code of 0.0 and ±infinity clamps to the extreme code of its sign.
    /// Calibrators skip them and count them.
    Skip,
}
