//! All integration tests, built into one binary.

mod common;
mod ggml;
mod quant;
mod reference;
mod torch;
