//! Byte-exact layouts of other quantization libraries, so that what lowbit writes loads there
//! and what they write loads here.
//!
//! - [`bnb`]: bitsandbytes' 4-bit NF4/FP4 (with double quantization) and 8-bit blockwise
//!   quantization, bit-exact with bitsandbytes 0.50.2.
//!
//! Errors are [`crate::quant::Error`].

pub mod bnb;
