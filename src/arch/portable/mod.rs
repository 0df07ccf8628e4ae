//! The portable twins of the hand-written kernels, written so LLVM vectorises them. They take
//! plain slices and tables; `x86` reuses them for its tails and outer loops, and the parity
//! tests check the two bit for bit.

mod codebook;
mod histogram;

pub(crate) use codebook::*;
pub(crate) use histogram::*;
