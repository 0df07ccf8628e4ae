//! The crate-wide error type.
//!
//! Each module has its own small error enum (`format::Error`, ...), re-exported at the crate
//! root under a prefixed name (`FormatError`, ...). [`Error`] wraps all of them, so code that
//! mixes modules can use `?` on any of them.

/// Any error this crate returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the float formats ([`crate::format`]).
    #[error(transparent)]
    Format(#[from] crate::format::Error),
    /// An error from quantization ([`crate::quant`], [`crate::compat`]).
    #[error(transparent)]
    Quant(#[from] crate::quant::Error),
    /// An error from the quantization schemes ([`crate::scheme`]).
    #[error(transparent)]
    Scheme(#[from] crate::scheme::Error),
    /// An error from calibration ([`crate::calib`]).
    #[error(transparent)]
    Calib(#[from] crate::calib::Error),
}
