//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

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

/// A NumPy `.npz` archive: a zip of `.npy` files, stored or deflated (what npyz's `NpzArchive`
/// does, on zip's deflate support alone).
pub struct Npz(zip::ZipArchive<std::io::BufReader<std::fs::File>>);

impl Npz {
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        Ok(Npz(zip::ZipArchive::new(file)?))
    }

    /// The names of the arrays (the member names without `.npy`).
    pub fn array_names(&self) -> impl Iterator<Item = &str> {
        self.0.file_names().filter_map(|n| n.strip_suffix(".npy"))
    }

    /// The array `name`, or `None` when the archive has no such array.
    pub fn by_name(&mut self, name: &str) -> std::io::Result<Option<npyz::NpyFile<zip::read::ZipFile<'_>>>> {
        match self.0.by_name(&format!("{name}.npy")) {
            Ok(f) => npyz::NpyFile::new(f).map(Some),
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Little-endian words of `width` bytes, widened to u64.
pub fn read_words(path: &Path, width: usize) -> Vec<u64> {
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

/// `f32` values from a little-endian file under `tests/data/`.
pub fn read_f32(rel: &str) -> Vec<f32> {
    let b = std::fs::read(data(rel)).unwrap();
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The bit patterns of `v`, to compare floats bit for bit (NaNs included).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// SplitMix64, the tests' seeded generator.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
