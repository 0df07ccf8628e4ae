//! Benchmarks of [`lowbit`] against peer crates (`half`, `float8`, `minifloat`, `candle-core`)
//! and a memcpy of the same data, plus the tests that compare lowbit with those crates.
//!
//! Everything is in `benches/` and `tests/`; this library is empty. Run from the repository root:
//!
//! ```text
//! cargo bench -p lowbit-bench                  # every group
//! cargo bench -p lowbit-bench --bench formats  # one file
//! cargo test -p lowbit-bench                   # the comparisons with candle-core
//! ```
