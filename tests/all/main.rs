//! All integration tests, built into one binary.

mod bnb;
mod codebook;
mod common;
mod exhaustive;
mod props;
mod reference;
mod simd_parity;
