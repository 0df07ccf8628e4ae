//! The fuzz targets (`tests/fuzz_targets/`, shared with the cargo-fuzz crate in `fuzz/`) on
//! deterministic pseudo-random inputs: every target, `LOWBIT_FUZZ_ITERS` inputs each (default
//! 2000, fewer for the slow targets: sized so that the whole run stays well under a minute in
//! a debug build), from a
//! fixed seed (`LOWBIT_FUZZ_SEED` picks another). A failure prints the target, the input's
//! index and its bytes, which `cargo +nightly fuzz run <target> <file>` replays.
//!
//! Known findings (fuzz/FINDINGS.md) are steered around; `LOWBIT_FUZZ_KNOWN=1` walks into them.
//! `LOWBIT_FUZZ_TRACE=1` prints each input before it runs (to find one that hangs),
//! `LOWBIT_FUZZ_ONLY=i` runs input `i` alone.

#[path = "../fuzz_targets/mod.rs"]
mod fuzz_targets;

use crate::common::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Inputs per target by default (`LOWBIT_FUZZ_ITERS` overrides it), divided by the target's
/// [`cost`].
const DEFAULT_ITERS: usize = 2000;

/// How much slower than the others a target's inputs are in a debug build (its range searches
/// run over thousands of histogram bins per input), to keep each target to a few seconds.
fn cost(name: &str) -> usize {
    match name {
        "calib_histogram" => 20,
        "modelopt" => 50,
        "ort" => 10,
        "calib_bytes" => 2,
        _ => 1,
    }
}

/// How many times the default count a target's inputs take (cheap targets that deserve more
/// inputs: the file readers, ~0.3 ms an input in a debug build), so that each still runs in a
/// few seconds.
fn boost(name: &str) -> usize {
    match name {
        "safetensors_file" | "gguf_file" => 4,
        _ => 1,
    }
}

fn env_usize(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Input `i` of a target: lengths from empty to 2 KiB, short ones most often (they reach the
/// edges; long ones reach the loops).
fn input(rng: &mut Rng, i: usize) -> Vec<u8> {
    let len = match i % 8 {
        0 => (rng.next() % 16) as usize,
        1..=4 => (rng.next() % 256) as usize,
        5 | 6 => (rng.next() % 1024) as usize,
        _ => (rng.next() % 2048) as usize,
    };
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    // Some inputs are mostly zeros or mostly 0xff: the generators' defaults and extremes.
    match rng.next() % 8 {
        0 => v.iter_mut().for_each(|b| *b &= 0x0f),
        1 => v.iter_mut().for_each(|b| *b |= 0xf0),
        _ => {}
    }
    v
}

fn run_target(name: &str, target: fuzz_targets::Target, iters: usize, seed: u64) {
    let start = std::time::Instant::now();
    let mut rng = Rng(seed
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }));
    // `LOWBIT_FUZZ_TRACE=1` names each input before it runs (to find one that hangs).
    let trace = std::env::var_os("LOWBIT_FUZZ_TRACE").is_some_and(|v| !v.is_empty() && v != "0");
    // `LOWBIT_FUZZ_ONLY=i` runs input `i` alone (to replay one).
    let only = env_usize("LOWBIT_FUZZ_ONLY");
    for i in 0..iters {
        let data = input(&mut rng, i);
        if only.is_some_and(|o| o != i as u64) {
            continue;
        }
        if trace {
            eprintln!("fuzz target {name}: input {i}: {data:02x?}");
        }
        let t = std::time::Instant::now();
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            panic!(
                "fuzz target {name}: input {i} (seed {seed:#x}) failed; {} bytes: {:02x?}",
                data.len(),
                data
            );
        }
        if trace {
            eprintln!("fuzz target {name}: input {i} took {:.2?}", t.elapsed());
        }
    }
    println!("fuzz target {name}: {iters} inputs in {:.2?}", start.elapsed());
}

macro_rules! fuzz_tests {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        #[test]
        $(#[$attr])*
        fn $name() {
            let iters = env_usize("LOWBIT_FUZZ_ITERS").map_or(DEFAULT_ITERS, |n| n as usize);
            let iters = (iters * boost(stringify!($name)) / cost(stringify!($name))).max(1);
            let seed = env_usize("LOWBIT_FUZZ_SEED").unwrap_or(0x10b1_7f22);
            let target = fuzz_targets::target(stringify!($name)).expect("a target of this name");
            run_target(stringify!($name), target, iters, seed);
        }
    )*};
}

fuzz_tests!(
    format_scalar,
    format_slice,
    format_cast,
    layout,
    absmax,
    affine,
    codebook,
    mx,
    pack,
    double_quant,
    quantized_bytes,
    calib_bytes,
    ggml,
    bnb,
    modelopt,
    ort,
    ort_qparams,
    calib_minmax,
    calib_histogram,
    ptq,
    fake_quant,
    lowbit_schemes,
    amp,
    smooth,
    // The file readers, with their features (CI: `cargo test --features safetensors --lib
    // --test all safetensors`, `cargo test --features gguf --test all gguf`).
    #[cfg(feature = "safetensors")]
    safetensors_file,
    #[cfg(feature = "gguf")]
    gguf_file,
);

/// Every target of the list has a test above (and so runs in CI).
#[test]
fn every_target_is_run() {
    let tested = [
        "format_scalar",
        "format_slice",
        "format_cast",
        "layout",
        "absmax",
        "affine",
        "codebook",
        "mx",
        "pack",
        "double_quant",
        "quantized_bytes",
        "calib_bytes",
        "ggml",
        "bnb",
        "modelopt",
        "ort",
        "ort_qparams",
        "calib_minmax",
        "calib_histogram",
        "ptq",
        "fake_quant",
        "lowbit_schemes",
        "amp",
        "smooth",
        #[cfg(feature = "safetensors")]
        "safetensors_file",
        #[cfg(feature = "gguf")]
        "gguf_file",
    ];
    let names: Vec<&str> = fuzz_targets::TARGETS.iter().map(|&(n, _)| n).collect();
    assert_eq!(names, tested);
}
