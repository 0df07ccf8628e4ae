//! # lowbit
//!
//! Low-precision number formats and model quantization.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod arch;
pub mod error;
pub mod format;
pub mod scheme;

pub use error::Error;
pub use format::Error as FormatError;
pub use format::{
    Bf16, E4M3Fnuz, E5M2Fnuz, FloatFormat, Fp16, Fp32, Fp64, Tf32, E2M1, E2M3, E3M2, E3M4, E4M3, E5M2, E8M0,
};
pub use scheme::Error as SchemeError;
