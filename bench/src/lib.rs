//! Benchmarks of [`lowbit`] against peer crates (`half`, `float8`, `minifloat`, `candle-core`)
//! and a memcpy of the same data, plus the tests that compare lowbit with those crates.
//!
//! Everything is in `benches/` and `tests/`; this library holds only their shared inputs. Run from the repository root:
//!
//! ```text
//! cargo bench -p lowbit-bench                  # every group
//! cargo bench -p lowbit-bench --bench formats  # one file
//! cargo test -p lowbit-bench                   # the comparisons with candle-core
//! ```

/// `n` roughly normal weights (a sum of four uniforms from a xorshift generator), the same
/// every run, so that every bench quantizes the same data.
pub fn normal_weights(n: usize) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n).map(|_| u() + u() + u() + u()).collect()
}
