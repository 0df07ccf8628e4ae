//! Byte layouts other tools read and write.
//!
//! Each submodule reproduces one library's quantization bit for bit, so that what lowbit
//! writes loads there and what they write loads here.
//!
//! - [`ggml`]: llama.cpp's `Q8_0`, `Q4_0` and `Q4_1` (32-element blocks, f16 scales), with its
//!   block structs as `#[repr(C)]` [`bytemuck::Pod`] types, so a slice of blocks casts to the
//!   exact bytes the other tool loads.
//! - [`bnb`]: bitsandbytes' 4-bit NF4/FP4 (with double quantization) and 8-bit blockwise
//!   quantization, bit-exact with bitsandbytes 0.50.2.
//!
//! Errors are the quantization module's ([`crate::QuantError`]).

pub mod bnb;
pub mod ggml;
