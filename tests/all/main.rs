//! All integration tests, built into one binary.

mod calib_compat;
mod calib_props;
mod common;
mod exhaustive;
mod ggml;
mod props;
mod quant;
mod reference;
mod simd_parity;
mod torch;
mod torch_casts;
