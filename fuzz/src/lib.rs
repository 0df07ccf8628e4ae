//! The fuzz targets of `tests/fuzz_targets/`, compiled once for every cargo-fuzz binary.

#[path = "../../tests/fuzz_targets/mod.rs"]
pub mod targets;
