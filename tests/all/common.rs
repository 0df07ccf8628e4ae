//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// `tests/data/<rel>`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// `../shared/refs/<rel>` beside the repository, when present (the full reference sets).
pub fn shared_ref(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/refs")
        .join(rel);
    p.exists().then_some(p)
}

/// Little-endian words of `width` bytes, widened to u64.
pub fn read_words(path: &std::path::Path, width: usize) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % width, 0, "{}", path.display());
    bytes
        .chunks_exact(width)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect()
}

/// Calls `$callback! { name: Type; ... }` with every format of at most 19 bits, so the
/// per-format test lists are written once.
macro_rules! with_small_formats {
    ($callback:ident) => {
        $callback! {
            tf32: Tf32;
            bf16: Bf16;
            fp16: Fp16;
            e4m3: E4M3;
            e5m2: E5M2;
            e4m3fnuz: E4M3Fnuz;
            e5m2fnuz: E5M2Fnuz;
            e3m4: E3M4;
            e8m0: E8M0;
            e3m2: E3M2;
            e2m3: E2M3;
            e2m1: E2M1;
        }
    };
}
pub(crate) use with_small_formats;
