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
