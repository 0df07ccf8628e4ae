//! All integration tests, built into one binary.

mod bnb;
mod common;
mod exhaustive;
mod props;
mod reference;
mod simd_parity;
