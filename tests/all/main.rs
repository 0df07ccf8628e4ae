//! All integration tests, built into one binary.

mod common;
mod exhaustive;
mod props;
mod reference;
mod simd_parity;
mod torch_casts;
