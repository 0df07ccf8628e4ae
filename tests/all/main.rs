//! All integration tests, built into one binary.

mod common;
mod reference;
mod scheme;
