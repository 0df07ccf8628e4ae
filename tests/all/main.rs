//! All integration tests, built into one binary.

mod calib_compat;
mod calib_props;
mod common;
mod reference;
