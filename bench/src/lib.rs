//! Benchmarks of [`lowbit`] against peer crates (`half`, `float8`, `minifloat`, `candle-core`),
//! optionally ggml's own C, and a memcpy of the same data, plus the tests that compare lowbit
//! with those peers.
//!
//! Everything is in `benches/` and `tests/`; this library holds only their shared inputs and
//! the bindings of the ggml peer. Run from the repository root:
//!
//! ```text
//! cargo bench -p lowbit-bench                  # every group
//! cargo bench -p lowbit-bench --bench formats  # one file
//! cargo test -p lowbit-bench                   # the comparisons with candle-core
//! LOWBIT_GGML_DIR=/path/to/ggml cargo bench -p lowbit-bench   # with ggml's C as a peer
//! ```
//!
//! With `LOWBIT_GGML_DIR` naming a ggml source tree (github.com/ggml-org/ggml, or a llama.cpp
//! checkout), `build.rs` compiles ggml's quantizers and conversions and sets `cfg(ggml)`: the
//! benches gain ggml peers in the same groups and `tests/ggml.rs` checks that they are wired
//! right. Unset, nothing of ggml is built.

#[cfg(ggml)]
pub mod ggml;

/// A xorshift generator from `seed` (not 0): uniform in `[-0.5, 0.5)`, exact in `f32`.
pub fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

/// `n` roughly normal weights (a sum of four uniforms from a xorshift generator), the same
/// every run, so that every bench quantizes the same data.
pub fn normal_weights(n: usize) -> Vec<f32> {
    let mut u = uniform(0x9e37_79b9_7f4a_7c15);
    (0..n).map(|_| u() + u() + u() + u()).collect()
}
