//! Byte layouts other tools read and write.
//!
//! Each submodule reproduces one library's quantization bit for bit, with its block structs
//! as `#[repr(C)]` [`bytemuck::Pod`] types, so a slice of blocks casts to the exact bytes the
//! other tool loads.
//!
//! - [`ggml`]: llama.cpp's `Q8_0`, `Q4_0` and `Q4_1` (32-element blocks, f16 scales).
//!
//! Errors are the quantization module's ([`crate::QuantError`]).

pub mod ggml;
