//! Fuzz targets over lowbit's public API, shared by two drivers:
//!
//! - the stable harness `tests/all/fuzz.rs`, which `cargo test` (and so CI) runs on a bounded
//!   number of deterministic pseudo-random inputs (`LOWBIT_FUZZ_ITERS` scales it);
//! - the cargo-fuzz crate `fuzz/` (nightly, libFuzzer, coverage-guided), one binary per target.
//!
//! Each target is a `fn(&[u8])`: the bytes are read through [`arbitrary::Unstructured`] into
//! the calls' parameters, the calls are made, and invariants are asserted (a failed invariant
//! panics, as a panic inside the library does). Running out of bytes is not a failure: the
//! remaining parameters take their defaults and the target still runs.
//!
//! Known findings (fuzz/FINDINGS.md) are steered around while [`avoid_known`] is true (the
//! default), each such place marked `FINDINGS.md F<n>`, so that the harness stays green and
//! finds what is new; set `LOWBIT_FUZZ_KNOWN=1` to walk into them again (e.g. to check a fix,
//! after which the guard is removed).

#![allow(dead_code)]

use arbitrary::{Result, Unstructured};

mod calib;
mod compat;
mod formats;
mod io;
mod quant;
mod scheme;
mod stored;

#[allow(unused_imports)]
pub use self::{
    calib::{calib_histogram, calib_minmax},
    compat::{bnb, ggml, modelopt, ort, ort_qparams},
    formats::{format_cast, format_scalar, format_slice, layout},
    quant::{absmax, affine, codebook, double_quant, mx, pack},
    scheme::{amp, fake_quant, lowbit_schemes, ptq, smooth},
    stored::{calib_bytes, quantized_bytes},
};

#[cfg(feature = "gguf")]
#[allow(unused_imports)]
pub use self::io::gguf_file;
#[cfg(feature = "safetensors")]
#[allow(unused_imports)]
pub use self::io::safetensors_file;

/// A fuzz target: reads its parameters from the bytes, calls, asserts.
pub type Target = fn(&[u8]);

/// Every target, by name (the cargo-fuzz binaries carry the same names).
pub const TARGETS: &[(&str, Target)] = &[
    ("format_scalar", formats::format_scalar),
    ("format_slice", formats::format_slice),
    ("format_cast", formats::format_cast),
    ("layout", formats::layout),
    ("absmax", quant::absmax),
    ("affine", quant::affine),
    ("codebook", quant::codebook),
    ("mx", quant::mx),
    ("pack", quant::pack),
    ("double_quant", quant::double_quant),
    ("quantized_bytes", stored::quantized_bytes),
    ("calib_bytes", stored::calib_bytes),
    ("ggml", compat::ggml),
    ("bnb", compat::bnb),
    ("modelopt", compat::modelopt),
    ("ort", compat::ort),
    ("ort_qparams", compat::ort_qparams),
    ("calib_minmax", calib::calib_minmax),
    ("calib_histogram", calib::calib_histogram),
    ("ptq", scheme::ptq),
    ("fake_quant", scheme::fake_quant),
    ("lowbit_schemes", scheme::lowbit_schemes),
    ("amp", scheme::amp),
    ("smooth", scheme::smooth),
    #[cfg(feature = "safetensors")]
    ("safetensors_file", io::safetensors_file),
    #[cfg(feature = "gguf")]
    ("gguf_file", io::gguf_file),
];

/// Look a target up by name.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
}

/// Whether to steer around the known findings of fuzz/FINDINGS.md (unset
/// `LOWBIT_FUZZ_KNOWN`, the default) or walk into them (`LOWBIT_FUZZ_KNOWN=1`).
pub fn avoid_known() -> bool {
    static AVOID: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVOID.get_or_init(|| std::env::var_os("LOWBIT_FUZZ_KNOWN").is_none_or(|v| v.is_empty() || v == "0"))
}

/// Run a body over the bytes, ignoring the "not enough data" outcome of `arbitrary`.
pub(crate) fn run(data: &[u8], body: impl FnOnce(&mut Unstructured<'_>) -> Result<()>) {
    let mut u = Unstructured::new(data);
    let _ = body(&mut u);
}

// ---------------------------------------------------------------------------------------------
// Parameter generators: biased toward the edges (zero, one, powers of two, the extremes of the
// types), with a share of raw values.

/// An `f32`: special values, values near format boundaries, or raw bits.
pub(crate) fn f32_any(u: &mut Unstructured<'_>) -> Result<f32> {
    const SPECIAL: [f32; 24] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        2.0,
        3.0,
        448.0,
        57344.0,
        65504.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        1e-38,
        1e-30,
        1e30,
        3e38,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0e-6,
        6.0,
    ];
    Ok(match u.int_in_range(0u8..=7)? {
        0..=2 => SPECIAL[u.choose_index(SPECIAL.len())?],
        3 => f32::from_bits(u.arbitrary()?),
        4 => f32::from(u.arbitrary::<i8>()?) / 16.0,
        5 => {
            // A sign, an exponent and a short mantissa: values of small formats and ties.
            let e = u.int_in_range(-150i32..=130)?;
            let m = f32::from(u.int_in_range(0u8..=15)?) / 16.0 + 1.0;
            let s = if u.arbitrary()? { -1.0 } else { 1.0 };
            s * m * 2f32.powi(e)
        }
        _ => f32::from(u.arbitrary::<i16>()?) / 256.0,
    })
}

/// A finite `f32` (non-finite draws become 0).
pub(crate) fn f32_finite(u: &mut Unstructured<'_>) -> Result<f32> {
    let x = f32_any(u)?;
    Ok(if x.is_finite() { x } else { 0.0 })
}

/// An `f64`: an `f32` widened, raw bits, or a value between two `f32`s.
pub(crate) fn f64_any(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => f64::from_bits(u.arbitrary()?),
        1 => {
            let x = f64::from(f32_any(u)?);
            x * (1.0 + f64::from(u.arbitrary::<u16>()?) * 2f64.powi(-40))
        }
        _ => f64::from(f32_any(u)?),
    })
}

/// A vector of up to `max` values drawn by `g`.
pub(crate) fn vec_of<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    mut g: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(g(u)?);
    }
    Ok(v)
}

/// Up to `max` `f32`s, any values (NaN and infinities included).
pub(crate) fn f32s(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<f32>> {
    vec_of(u, max, f32_any)
}

/// Up to `max` finite `f32`s.
pub(crate) fn f32s_finite(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<f32>> {
    vec_of(u, max, f32_finite)
}

/// Up to `max` `f32`s, mostly finite (a non-finite value in one of 16 draws).
pub(crate) fn f32s_mostly_finite(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<f32>> {
    vec_of(u, max, |u| if u.ratio(1u8, 16)? { f32_any(u) } else { f32_finite(u) })
}

/// A size from the caller: small, a power of two near it, or an extreme.
pub(crate) fn size(u: &mut Unstructured<'_>) -> Result<usize> {
    const ODD: [usize; 12] = [
        0,
        1,
        usize::MAX,
        usize::MAX / 2,
        1 << 59,
        1 << 40,
        1 << 32,
        u32::MAX as usize,
        (1 << 31) + 1,
        1 << 24,
        65_537,
        4097,
    ];
    Ok(match u.int_in_range(0u8..=9)? {
        0 => ODD[u.choose_index(ODD.len())?],
        1 => 1 << u.int_in_range(0u32..=12)?,
        2 => 3 << u.int_in_range(0u32..=6)?,
        _ => u.int_in_range(0usize..=40)?,
    })
}

/// A size kept to at most `max` (for sizes that allocate in proportion).
pub(crate) fn size_upto(u: &mut Unstructured<'_>, max: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => 1 << u.int_in_range(0u32..=max.max(1).ilog2())?,
        _ => u.int_in_range(0..=max)?,
    })
}

/// A bit width: mostly near the supported ranges, sometimes anything.
pub(crate) fn bits(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => u.arbitrary()?,
        1 => [0, 33, 64, 255, 264, u32::MAX][u.choose_index(6)?],
        _ => u.int_in_range(0u32..=17)?,
    })
}

pub(crate) fn rounding(u: &mut Unstructured<'_>) -> Result<lowbit::format::Rounding> {
    use lowbit::format::Rounding;
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Rounding::NearestEven,
        1 => Rounding::NearestAway,
        2 => Rounding::TowardZero,
        _ => Rounding::Stochastic(u.arbitrary()?),
    })
}

pub(crate) fn overflow(u: &mut Unstructured<'_>) -> Result<lowbit::format::Overflow> {
    use lowbit::format::Overflow;
    Ok(if u.arbitrary()? {
        Overflow::Saturate
    } else {
        Overflow::Native
    })
}

pub(crate) fn options(u: &mut Unstructured<'_>) -> Result<lowbit::format::Options> {
    Ok(lowbit::format::Options {
        rounding: rounding(u)?,
        overflow: overflow(u)?,
    })
}

pub(crate) fn non_finite(u: &mut Unstructured<'_>) -> Result<lowbit::NonFinite> {
    use lowbit::NonFinite;
    Ok(match u.int_in_range(0u8..=2)? {
        0 => NonFinite::Error,
        1 => NonFinite::Propagate,
        _ => NonFinite::Skip,
    })
}

pub(crate) fn granularity(u: &mut Unstructured<'_>) -> Result<lowbit::quant::Granularity> {
    use lowbit::quant::Granularity;
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Granularity::PerTensor,
        1 => Granularity::PerRow { cols: size(u)? },
        2 => Granularity::PerColumn { cols: size(u)? },
        _ => Granularity::PerBlock(size(u)?),
    })
}

/// A string for names and glob patterns: ASCII with `*`, `?`, dots and multi-byte characters.
pub(crate) fn name(u: &mut Unstructured<'_>) -> Result<String> {
    const PIECES: [&str; 14] = [
        "*", "?", ".", "a", "b", "layer", "0", "weight", "é", "日本", "**", "\\", "", "[",
    ];
    let n = u.int_in_range(0usize..=6)?;
    let mut s = String::new();
    for _ in 0..n {
        if u.ratio(1u8, 8)? {
            s.push(u.arbitrary::<char>()?);
        } else {
            s.push_str(PIECES[u.choose_index(PIECES.len())?]);
        }
    }
    Ok(s)
}

/// Damage a valid buffer the ways a file or a wire damages it: truncate it, flip bits in it,
/// overwrite a byte, extend it, or leave it as it is.
pub(crate) fn damage(u: &mut Unstructured<'_>, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    match u.int_in_range(0u8..=5)? {
        0 => {}
        1 => {
            let n = u.int_in_range(0..=bytes.len())?;
            bytes.truncate(n);
        }
        2 | 3 => {
            let flips = u.int_in_range(1u8..=4)?;
            for _ in 0..flips {
                if bytes.is_empty() {
                    break;
                }
                let i = u.choose_index(bytes.len())?;
                bytes[i] ^= 1 << u.int_in_range(0u8..=7)?;
            }
        }
        4 => {
            if !bytes.is_empty() {
                let i = u.choose_index(bytes.len())?;
                bytes[i] = u.arbitrary()?;
            }
        }
        _ => {
            let extra = u.int_in_range(1u8..=8)?;
            for _ in 0..extra {
                bytes.push(u.arbitrary()?);
            }
        }
    }
    Ok(bytes)
}

/// Bits of two `f32`s equal, NaNs of any payload counted equal.
pub(crate) fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Slices equal bit for bit (NaNs of any payload counted equal).
pub(crate) fn same_f32s(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| same_f32(x, y))
}
