//! Byte-exact layouts of other quantization libraries, so that what lowbit writes loads there
//! and what they write loads here.
//!
//! Each submodule reproduces one library's quantization bit for bit; block structs are
//! `#[repr(C)]` [`bytemuck::Pod`] types where the library has them, so a slice of blocks casts
//! to the exact bytes the other tool loads.
//!
//! - [`bnb`]: bitsandbytes' 4-bit NF4/FP4 (with double quantization) and 8-bit blockwise
//!   quantization, bit-exact with bitsandbytes 0.50.2.
//! - [`ggml`]: llama.cpp's `Q8_0`, `Q4_0` and `Q4_1` (32-element blocks, f16 scales).
//!
//! Errors are the quantization module's ([`crate::QuantError`]).

pub mod bnb;
pub mod ggml;
