//! All integration tests, built into one binary.

mod bnb;
mod common;
mod exhaustive;
mod props;
mod ptq;
mod reference;
mod scheme;
mod simd_parity;
