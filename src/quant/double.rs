//! Double quantization: the per-block scales quantized again (QLoRA's
//! `compress_statistics=True`).
//!
//! bitsandbytes stores, instead of one `f32` absmax per block, `offset = mean(absmax)` and the
//! 8-bit codes of `absmax - offset` under its *dynamic map* ([`dynamic_map`]), block-wise in
//! blocks of 256 with one `f32` second-level absmax each. Restoring computes
//! `code2[q] * absmax2 + offset` in `f32`, as bitsandbytes does.
//!
//! Storage for 4-bit codes with blocks of `B` and nested blocks of 256:
//! `4 + 32/B` bits per element plain, `4 + 8/B + 32/(256·B)` (plus one `f32` offset per
//! tensor) with double quantization: for `B = 64`, 4.5 and 4.127 ([`bits_per_element`]).
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::double::{bits_per_element, DoubleQuant};
//!
//! assert_eq!(bits_per_element(4, 64, None), 4.5);
//! assert!((bits_per_element(4, 64, Some(256)) - 4.127).abs() < 1e-3);
//!
//! let absmax: Vec<f32> = (0..1000).map(|i| 1.0 + (i % 17) as f32 / 8.0).collect();
//! let dq = DoubleQuant::quantize(&absmax, 256)?;
//! assert_eq!(dq.codes().len(), 1000);
//! assert_eq!(dq.absmax2().len(), 4);
//! let back = dq.restore()?;
//! assert!(back.iter().zip(&absmax).all(|(a, b)| (a - b).abs() < 0.01));
//! # Ok::<(), lowbit::QuantError>(())
//! ```
//!
//! With lowbit's own codebook quantizer, double quantization is an option
//! ([`CodebookQuantizer::with_double_quant`]); the [`Quantized`](crate::quant::Quantized) it
//! makes holds the nested scales and dequantizes with the restored ones. An all-zero block
//! keeps the code of level 0, so it stays exactly 0 whatever its restored scale.
//!
//! ```
//! use lowbit::quant::{Codebook, CodebookQuantizer, Granularity, Quantizer};
//!
//! let mut x: Vec<f32> = (0..4096).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
//! x[64..128].fill(0.0);
//! let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64))?
//!     .with_double_quant(Some(256))?;
//! let r = q.quantize(&x)?;
//! assert_eq!(r.double_quant().unwrap().codes().len(), 64);
//! let y = q.dequantize(&r)?;
//! assert!(y[64..128].iter().all(|v| *v == 0.0));
//! # Ok::<(), lowbit::QuantError>(())
//! ```

use super::codebook::{Codebook, CodebookQuantizer, ZeroBlock};
use super::Error;
use super::Granularity;

/// Entries of the dynamic map.
const MAP_LEN: usize = 256;

/// bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True,
/// max_exponent_bits=7, total_bits=8)`), ascending.
///
/// For each `i` in `0..7` the map holds `± 10^(i-6) · m` for the midpoints `m` of
/// `linspace(0.1, 1, 2^i + 1)`, plus 0 and 1. Built the way the map used by the reference
/// data was: on a CUDA device, where torch's `linspace` evaluates `start + step·i` as one
/// fused multiply-add (the CPU-built map differs from it in the last bit of 42 entries).
pub fn dynamic_map() -> [f32; MAP_LEN] {
    let mut data = Vec::with_capacity(MAP_LEN);
    for i in 0..7i32 {
        let b = super::codebook::torch_linspace_f32(0.1, 1.0, (1usize << i) + 1, true);
        let scale = 10f64.powi(i - 6) as f32;
        for w in b.windows(2) {
            let m = (w[0] + w[1]) / 2.0;
            data.push(scale * m);
            data.push(-scale * m);
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    let mut out = [0f32; MAP_LEN];
    out.copy_from_slice(&data);
    out
}

/// The dynamic map as a [`Codebook`] with bitsandbytes' decisions: its 8-bit kernel
/// (`dQuantize`) binary-searches the odd entries, then compares with the midpoints to the
/// neighbours, so an exact midpoint goes to the *even* index. Any 256-entry sorted map can be
/// given.
///
/// # Errors
///
/// [`Error::Codebook`] if the map is not strictly ascending within `[-1, 1]`.
pub fn bnb_map_codebook(map: &[f32; MAP_LEN]) -> Result<Codebook, Error> {
    // Validate first (ascending, in range) with midpoint bounds, then set the tie direction.
    Codebook::new(map)?;
    let bounds: Vec<f32> = map
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let mid = (w[0] + w[1]) * 0.5;
            // Between k and k+1: the tie goes to whichever is even.
            if (k + 1) % 2 == 0 && mid > w[0] {
                mid.next_down()
            } else {
                mid
            }
        })
        .collect();
    Codebook::with_bounds(map, &bounds)
}

/// The mean of `f32` values in the order torch's CUDA reduction (`Reduce.cuh`, one block of
/// up to 512 threads) sums them, as bitsandbytes' `absmax.mean()` does on a GPU.
///
/// Inputs of at least 128 values are read as 4-vectors: thread `t` of `W = min(2^⌊log2(n/4)⌋,
/// 512)` keeps four lane accumulators over vectors `t, t+W, ...`, adds the `n mod 4` tail
/// into lane 0 of the first threads, and combines its lanes left to right; shorter inputs give
/// thread `t` of `W = 2^⌊log2 n⌋` the elements `t, t+W, ...`. The `W` partial sums are then
/// added as a halving tree (`v[i] += v[i + W/2]`, ...) and the sum is multiplied by `1/n`.
/// This matched every offset of the reference data (inputs of 1 to 2048 values). For more
/// than 2^19 values torch splits the sum over several thread blocks, in an order that depends
/// on the GPU's multiprocessor count; there the single-block order is used, so the offset can
/// differ from a GPU's in the last bit.
pub fn torch_cuda_mean(x: &[f32]) -> f32 {
    let n = x.len();
    if n == 0 {
        return f32::NAN;
    }
    let last_pow2 = |v: usize| 1usize << (usize::BITS - 1 - v.max(1).leading_zeros());
    let mut partial: Vec<f32>;
    if n >= 128 {
        let w = last_pow2(n / 4).min(512);
        partial = vec![0.0; w];
        let vecs = n / 4;
        let tail_start = n - n % 4;
        for (t, p) in partial.iter_mut().enumerate() {
            let mut acc = [0f32; 4];
            let mut v = t;
            while v < vecs {
                for (i, a) in acc.iter_mut().enumerate() {
                    *a += x[4 * v + i];
                }
                v += w;
            }
            if tail_start + t < n {
                acc[0] += x[tail_start + t];
            }
            *p = ((acc[0] + acc[1]) + acc[2]) + acc[3];
        }
    } else {
        let w = last_pow2(n);
        partial = vec![0.0; w];
        for (t, p) in partial.iter_mut().enumerate() {
            // Four accumulators over t, t+W, t+2W, t+3W, then combined left to right.
            let mut acc = [0f32; 4];
            let mut i = t;
            let mut k = 0;
            while i < n {
                acc[k % 4] += x[i];
                i += w;
                k += 1;
            }
            *p = ((acc[0] + acc[1]) + acc[2]) + acc[3];
        }
    }
    let mut w = partial.len();
    while w > 1 {
        w /= 2;
        for i in 0..w {
            partial[i] += partial[i + w];
        }
    }
    let mean = partial[0] * (1.0 / n as f32);
    if mean.is_finite() || x.iter().any(|v| !v.is_finite()) {
        mean
    } else {
        // The f32 sum overflowed (scales near f32::MAX): the mean itself is finite, so take it
        // in f64 (torch would give inf and then NaN codes).
        (x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64) as f32
    }
}

/// Double-quantized scales: `absmax[i] ≈ map[codes[i]] * absmax2[i / blocksize2] + offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuant {
    codes: Vec<u8>,
    absmax2: Vec<f32>,
    offset: f32,
    blocksize2: usize,
}

impl DoubleQuant {
    /// Double-quantized scales from their parts (as read from a checkpoint), checked.
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`] for `blocksize2 == 0`, [`Error::LengthMismatch`] unless there
    /// is one `absmax2` per nested block of `codes`, [`Error::NonFinite`] for a non-finite
    /// `absmax2` or offset.
    pub fn from_parts(codes: Vec<u8>, absmax2: Vec<f32>, offset: f32, blocksize2: usize) -> Result<Self, Error> {
        if blocksize2 == 0 {
            return Err(Error::ZeroGroupSize);
        }
        super::check_len("absmax2", codes.len().div_ceil(blocksize2), absmax2.len())?;
        if let Some(i) = absmax2.iter().position(|a| !a.is_finite()) {
            return Err(Error::NonFinite { group: i, index: i });
        }
        if !offset.is_finite() {
            return Err(Error::NonFinite { group: 0, index: 0 });
        }
        Ok(Self {
            codes,
            absmax2,
            offset,
            blocksize2,
        })
    }

    /// 8-bit codes of `absmax - offset` under [`dynamic_map`].
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// `f32` absmax of each nested block of `absmax - offset`.
    pub fn absmax2(&self) -> &[f32] {
        &self.absmax2
    }

    /// The mean of the first-level absmax ([`torch_cuda_mean`]), subtracted before coding.
    pub fn offset(&self) -> f32 {
        self.offset
    }

    /// Nested block size (bitsandbytes: 256).
    pub fn blocksize2(&self) -> usize {
        self.blocksize2
    }

    /// Double-quantize first-level scales with bitsandbytes' rules: `offset` by
    /// [`torch_cuda_mean`], `absmax - offset` in `f32`, then the 8-bit blockwise quantizer
    /// with the dynamic map (an all-zero nested block stores code 0, as bitsandbytes).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroGroupSize`] for `blocksize2 == 0`; [`Error::NonFinite`] for non-finite scales.
    pub fn quantize(absmax: &[f32], blocksize2: usize) -> Result<Self, Error> {
        if blocksize2 == 0 {
            return Err(Error::ZeroGroupSize);
        }
        if let Some(i) = absmax.iter().position(|a| !a.is_finite()) {
            return Err(Error::NonFinite { group: i, index: i });
        }
        let offset = if absmax.is_empty() {
            0.0
        } else {
            torch_cuda_mean(absmax)
        };
        let centred: Vec<f32> = absmax.iter().map(|a| a - offset).collect();
        let mut codes = vec![0u8; centred.len()];
        let mut absmax2 = vec![0f32; centred.len().div_ceil(blocksize2)];
        bnb_blocks(dynamic_codebook(), blocksize2)?.quantize_to(&centred, &mut codes, &mut absmax2)?;
        Ok(Self {
            codes,
            absmax2,
            offset,
            blocksize2,
        })
    }

    /// The restored first-level scales: `map[code] * absmax2` then `+ offset`, each rounded
    /// to `f32` (bitsandbytes runs them as two kernels, so there is no fused multiply-add).
    ///
    /// A sum that overflows `f32` (scales near `f32::MAX`, where the offset and the centred
    /// scale add up past it) saturates to `±f32::MAX`: bitsandbytes would restore an infinite
    /// scale and dequantize its block to infinities and NaN (`0 × inf`). Every other scale is
    /// bitsandbytes' value, bit for bit.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] / [`Error::BlockSize`] if the parts do not fit together.
    pub fn restore(&self) -> Result<Vec<f32>, Error> {
        let mut out = vec![0f32; self.codes.len()];
        self.restore_into(&mut out)?;
        Ok(out)
    }

    /// [`Self::restore`] into a caller buffer of `codes.len()` values.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] / [`Error::BlockSize`] if the parts do not fit together.
    pub fn restore_into(&self, out: &mut [f32]) -> Result<(), Error> {
        super::check_len("restored absmax", self.codes.len(), out.len())?;
        bnb_blocks(dynamic_codebook(), self.blocksize2)?.dequantize_from(&self.codes, &self.absmax2, out)?;
        for v in out.iter_mut() {
            *v = restore_sum(*v, self.offset);
        }
        Ok(())
    }

    /// Bytes this takes: the codes, the `f32` second-level scales and the `f32` offset.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * self.absmax2.len() + 4
    }
}

/// `centred + offset` in `f32`, saturated to `±f32::MAX` where two finite values overflow
/// (see [`DoubleQuant::restore`]).
#[doc(hidden)]
pub fn restore_sum(centred: f32, offset: f32) -> f32 {
    let v = centred + offset;
    if v.is_infinite() && centred.is_finite() && offset.is_finite() {
        f32::MAX.copysign(v)
    } else {
        v
    }
}

/// [`bnb_map_codebook`] of [`dynamic_map`].
pub fn dynamic_codebook() -> Codebook {
    bnb_map_codebook(&dynamic_map()).expect("the dynamic map is a valid codebook")
}

/// Storage in bits per element of block-wise `code_bits`-bit codes with blocks of `block` and
/// `f32` scales; with `Some(blocksize2)` the scales are double-quantized (8-bit codes plus one
/// `f32` per nested block; the one `f32` offset per tensor is not counted).
///
/// ```
/// use lowbit::quant::double::bits_per_element;
/// assert_eq!(bits_per_element(4, 64, None), 4.5);
/// assert_eq!(bits_per_element(4, 64, Some(256)), 4.0 + 8.0 / 64.0 + 32.0 / (64.0 * 256.0));
/// ```
pub fn bits_per_element(code_bits: u32, block: usize, double: Option<usize>) -> f64 {
    let b = block as f64;
    match double {
        None => f64::from(code_bits) + 32.0 / b,
        Some(b2) => f64::from(code_bits) + 8.0 / b + 32.0 / (b * b2 as f64),
    }
}

/// A codebook quantizer over blocks of `block` that stores what bitsandbytes' kernels store.
///
/// # Errors
/// [`Error::ZeroGroupSize`] for a zero block.
pub(crate) fn bnb_blocks(cb: Codebook, block: usize) -> Result<CodebookQuantizer, Error> {
    Ok(CodebookQuantizer::new(cb, Granularity::PerBlock(block))?.with_zero_block(ZeroBlock::Bitsandbytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bitsandbytes' `dQuantize<0>` (csrc/kernels.cu), ported literally as an oracle.
    fn dquantize(code: &[f32; 256], x: f32) -> u8 {
        let mut pivot = 127usize;
        let mut upper_pivot = 255usize;
        let mut lower_pivot = 0usize;
        let mut lower = -1.0f32;
        let mut upper = 1.0f32;
        let mut val = code[pivot];
        let mut i = 64;
        while i > 0 {
            if x > val {
                lower_pivot = pivot;
                lower = val;
                pivot += i;
            } else {
                upper_pivot = pivot;
                upper = val;
                pivot -= i;
            }
            val = code[pivot];
            i >>= 1;
        }
        if upper_pivot == 255 {
            upper = code[upper_pivot];
        }
        if lower_pivot == 0 {
            lower = code[lower_pivot];
        }
        if x > val {
            let mid = (upper + val) * 0.5;
            if x > mid {
                upper_pivot as u8
            } else {
                pivot as u8
            }
        } else {
            let mid = (lower + val) * 0.5;
            if x < mid {
                lower_pivot as u8
            } else {
                pivot as u8
            }
        }
    }

    #[test]
    fn codebook_matches_binary_search_kernel() {
        let map = dynamic_map();
        let cb = dynamic_codebook();
        let mut probes = vec![f32::NAN, -1.0, 1.0, 0.0, -0.0];
        for w in map.windows(2) {
            let mid = (w[0] + w[1]) * 0.5;
            probes.extend([w[0], mid, mid.next_down(), mid.next_up(), w[1]]);
        }
        let mut s = 0x1234_5678u32;
        for _ in 0..20000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            probes.push((s as f32 / u32::MAX as f32) * 2.0 - 1.0);
        }
        for &x in &probes {
            assert_eq!(cb.encode(x), dquantize(&map, x), "x = {x:e}");
        }
    }

    #[test]
    fn mean_small_cases() {
        assert_eq!(torch_cuda_mean(&[2.0]), 2.0);
        assert_eq!(torch_cuda_mean(&[1.0, 2.0, 3.0]), 2.0);
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        // torch multiplies the sum by the f32 reciprocal of the count.
        assert_eq!(torch_cuda_mean(&v), 499_500.0 * (1.0f32 / 1000.0));
    }

    #[test]
    fn storage() {
        assert_eq!(bits_per_element(4, 64, None), 4.5);
        let d = bits_per_element(4, 64, Some(256));
        assert!((d - 4.127).abs() < 0.0005, "{d}");
    }
}
