//! bitsandbytes' block-wise quantization, byte for byte: `quantize_4bit` / `dequantize_4bit`
//! (NF4 and FP4, with or without double quantization) and `quantize_blockwise` /
//! `dequantize_blockwise` (8-bit, dynamic map).
//!
//! Checked against bitsandbytes 0.50.2 on a CUDA GPU (`tests/all/bnb.rs`, every key of the
//! reference file): packed bytes, absmax, double-quantization codes, second-level absmax,
//! offset, code tables and the dequantized values are all bit-identical.
//!
//! # What bitsandbytes does, and so what this does
//!
//! - `absmax = max |x|` per block (blocks of 32 to 4096, the last one shorter), `c = 1/absmax`
//!   in `f32`, and `x * c` is compared with the 15 NF4 midpoints (`x > t`: an exact midpoint
//!   goes to the lower level) or, for FP4, the sign is taken from `x < 0` and `|x * c|` is
//!   compared with FP4's own thresholds (ties toward zero).
//! - Two codes a byte, first element in the high nibble; an odd length pads the last low
//!   nibble with the code of 0.0.
//! - Dequantization is `value[code] * absmax` in `f32` (FP4: `lut[code & 7] * ±1`, so code
//!   `0b1000` gives `-0.0`).
//! - **All-zero blocks**: bitsandbytes computes `0 * (1/0) = NaN` and its comparisons put NaN
//!   on code 0 (NF4: the level -1.0; FP4: +0; 8-bit: the map's -0.99). That is reproduced, so
//!   the bytes match. Without double quantization such a block dequantizes to `-1.0 * 0 =
//!   -0.0` (NF4). *With* double quantization the restored absmax of that block is generally
//!   not 0, and bitsandbytes returns `-absmax'` for every element of an all-zero block (in the
//!   reference data, -0.00796 instead of 0). [`dequantize_4bit`] reproduces bitsandbytes'
//!   numbers; lowbit's own [`crate::quant::codebook`] quantizer codes zero blocks with the
//!   level 0 instead, which dequantizes to exactly 0 under any scale.
//! - Double quantization (`compress_statistics=True`): `offset = absmax.mean()` (summed in
//!   torch's CUDA reduction order: [`crate::quant::double::torch_cuda_mean`]), then
//!   `absmax - offset` through the 8-bit blockwise quantizer in blocks of 256
//!   ([`crate::quant::double::DoubleQuant`]). One difference: a restored scale that
//!   overflows `f32` (block maxima near `f32::MAX`, where `offset` plus the centred scale
//!   passes it) saturates to `f32::MAX`, where bitsandbytes restores `inf` and dequantizes the
//!   block to infinities and NaN.
//! - The 8-bit quantizer binary-searches the 256-entry map and rounds to the nearer
//!   neighbour; an exact midpoint goes to the even index.
//!
//! NaN and infinity inputs are errors here (bitsandbytes would quietly code them).
//! bitsandbytes' CUDA build uses `--use_fast_math` (subnormals flushed to zero); lowbit keeps
//! IEEE subnormals, which matters only for blocks whose absmax is below `1.2e-38`.
//!
//! # Examples
//!
//! ```
//! use lowbit::compat::bnb::{dequantize_4bit, quantize_4bit, QuantType};
//!
//! let x: Vec<f32> = (0..32768).map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0).collect();
//! let (packed, state) = quantize_4bit(&x, 64, QuantType::Nf4, true)?;
//! assert_eq!(packed.len(), 16384);
//! assert!((state.bits_per_element() - 4.127).abs() < 0.001);
//! let y = dequantize_4bit(&packed, &state)?;
//! let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
//! assert!(err < 0.2);
//! # Ok::<(), lowbit::QuantError>(())
//! ```

use crate::format::FloatFormat;
use crate::quant::codebook::{Codebook, NF4_LEVELS};
use crate::quant::double::bnb_blocks;
use crate::quant::double::{bnb_map_codebook, dynamic_map, DoubleQuant};
use crate::quant::{check_len, CodebookQuantizer, Error, Granularity, Quantized, ZeroBlock};
use crate::Fp32;

/// Block sizes bitsandbytes accepts for 4-bit quantization.
pub const BLOCKSIZES_4BIT: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];
/// Block sizes bitsandbytes accepts for 8-bit blockwise quantization.
pub const BLOCKSIZES_8BIT: [usize; 7] = [64, 128, 256, 512, 1024, 2048, 4096];
/// The nested block size of double quantization.
pub const BLOCKSIZE2: usize = 256;

/// bitsandbytes' 4-bit data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// NormalFloat 4 (`"nf4"`).
    Nf4,
    /// bitsandbytes' FP4 (`"fp4"`: sign, 2 exponent and 1 mantissa bits, values
    /// `0, 0.0625, 2, 3, 4, 6, 8, 12` divided by 12).
    Fp4,
}

impl QuantType {
    /// The codebook that quantizes exactly like bitsandbytes' kernel for this type.
    pub fn codebook(self) -> Codebook {
        match self {
            Self::Nf4 => Codebook::nf4(),
            Self::Fp4 => Codebook::bnb_fp4(),
        }
    }

    /// `QuantState.code`: the 16 values bitsandbytes stores in the state (`get_4bit_type`), in
    /// code order. For FP4 entry 8 is `+0.0` there (Python's `-0` is an integer), while the
    /// kernel decodes code 8 as `-0.0`.
    pub fn code(self) -> [f32; 16] {
        match self {
            Self::Nf4 => NF4_LEVELS,
            Self::Fp4 => {
                let mut c = crate::quant::codebook::BNB_FP4_VALUES;
                c[8] = 0.0;
                c
            }
        }
    }

    /// bitsandbytes' name: `"nf4"` or `"fp4"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nf4 => "nf4",
            Self::Fp4 => "fp4",
        }
    }
}

/// The scales of a 4-bit quantization.
#[derive(Debug, Clone, PartialEq)]
pub enum Absmax {
    /// One `f32` per block.
    Plain(Vec<f32>),
    /// Double-quantized (`compress_statistics=True`).
    Double(DoubleQuant),
}

/// What `dequantize_4bit` needs besides the packed bytes (bitsandbytes' `QuantState`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantState {
    absmax: Absmax,
    blocksize: usize,
    quant_type: QuantType,
    len: usize,
}

impl QuantState {
    /// A state from its parts (as read from a checkpoint), checked: a block size bitsandbytes
    /// supports, and one scale (or scale code) per block of `len` elements.
    ///
    /// # Errors
    /// [`Error::BlockSize`] for an unsupported block size, [`Error::LengthMismatch`] when the
    /// scales do not count one per block.
    pub fn new(absmax: Absmax, blocksize: usize, quant_type: QuantType, len: usize) -> Result<Self, Error> {
        check_4bit_blocksize(blocksize)?;
        let scales = match &absmax {
            Absmax::Plain(a) => a.len(),
            Absmax::Double(dq) => dq.codes().len(),
        };
        check_len("absmax", len.div_ceil(blocksize), scales)?;
        Ok(Self {
            absmax,
            blocksize,
            quant_type,
            len,
        })
    }

    /// The block scales, as stored.
    pub fn scales(&self) -> &Absmax {
        &self.absmax
    }

    /// Block size.
    pub fn blocksize(&self) -> usize {
        self.blocksize
    }

    /// NF4 or FP4.
    pub fn quant_type(&self) -> QuantType {
        self.quant_type
    }

    /// Number of elements (bitsandbytes keeps the shape; this is its product).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.len.div_ceil(self.blocksize)
    }

    /// The first-level absmax per block (restored from the double quantization if needed).
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] / [`Error::Incompatible`] if the parts do not fit together.
    pub fn absmax(&self) -> Result<Vec<f32>, Error> {
        let a = match &self.absmax {
            Absmax::Plain(a) => a.clone(),
            Absmax::Double(dq) => dq.restore()?,
        };
        check_len("absmax", self.blocks(), a.len())?;
        Ok(a)
    }

    /// The quantizer that makes what `quantize_4bit` makes, as a lowbit [`Quantizer`](crate::quant::Quantizer):
    /// the codebook, blocks of `blocksize`, bitsandbytes' zero blocks and, with
    /// `compress_statistics`, double quantization in nested blocks of 256.
    ///
    /// # Errors
    /// [`Error::BlockSize`] for a block size bitsandbytes does not support.
    ///
    /// ```
    /// use lowbit::compat::bnb::{quantize_4bit, QuantState, QuantType};
    /// use lowbit::quant::Quantizer;
    ///
    /// let x: Vec<f32> = (0..4096).map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0).collect();
    /// let q = QuantState::quantizer(64, QuantType::Nf4, true)?.quantize(&x)?;
    /// assert_eq!(QuantState::from_quantized(&q)?, quantize_4bit(&x, 64, QuantType::Nf4, true)?);
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    pub fn quantizer(
        blocksize: usize,
        quant_type: QuantType,
        compress_statistics: bool,
    ) -> Result<CodebookQuantizer, Error> {
        check_4bit_blocksize(blocksize)?;
        CodebookQuantizer::new(quant_type.codebook(), Granularity::PerBlock(blocksize))?
            .with_zero_block(ZeroBlock::Bitsandbytes)
            .with_double_quant(compress_statistics.then_some(BLOCKSIZE2))
    }

    /// The packed bytes and state of a [`Quantized`] made by a 4-bit NF4 or bitsandbytes FP4
    /// codebook quantizer over blocks bitsandbytes supports (plain or double-quantized
    /// scales), as `quantize_4bit` returns them.
    ///
    /// # Errors
    /// [`Error::Incompatible`] for another scheme, bit width, bit order, granularity or scale
    /// format; [`Error::BlockSize`] for a block size bitsandbytes does not support.
    pub fn from_quantized(q: &Quantized) -> Result<(Vec<u8>, Self), Error> {
        let quant_type = [QuantType::Nf4, QuantType::Fp4]
            .into_iter()
            .find(|t| t.codebook().scheme() == q.scheme())
            .ok_or(Error::Incompatible("not an NF4 or bitsandbytes FP4 codebook"))?;
        let Granularity::PerBlock(blocksize) = q.granularity() else {
            return Err(Error::Incompatible("bitsandbytes quantizes per block"));
        };
        if q.bits() != 4 || q.bit_order() != crate::quant::pack::BitOrder::MsbFirst || q.scale_layout() != Fp32::LAYOUT
        {
            return Err(Error::Incompatible("bits, bit order or scale format"));
        }
        let absmax = match q.double_quant() {
            Some(d) => Absmax::Double(d.clone()),
            None => Absmax::Plain(q.scales().to_vec()),
        };
        Ok((q.codes().to_vec(), Self::new(absmax, blocksize, quant_type, q.len())?))
    }

    /// The same as a lowbit [`Quantized`], which the [`quantizer`](Self::quantizer) of this
    /// state dequantizes exactly as `dequantize_4bit` does.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `packed` holds `len` 4-bit codes; those of
    /// [`Quantized::with_double_quant`].
    pub fn to_quantized(&self, packed: Vec<u8>) -> Result<Quantized, Error> {
        let g = self.blocks();
        let scales = match &self.absmax {
            Absmax::Plain(a) => a.clone(),
            Absmax::Double(_) => vec![0.0; g],
        };
        let q = Quantized::from_parts(
            self.quant_type.codebook().scheme(),
            4,
            self.len,
            Granularity::PerBlock(self.blocksize),
            Fp32::LAYOUT,
            packed,
            scales,
            Vec::new(),
        )?;
        match &self.absmax {
            Absmax::Plain(_) => Ok(q),
            Absmax::Double(d) => q.with_double_quant(d.clone()),
        }
    }

    /// Storage in bits per element: packed codes, scales (or their codes, second-level
    /// scales and the offset).
    pub fn bits_per_element(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let scale_bytes = match &self.absmax {
            Absmax::Plain(a) => 4 * a.len(),
            Absmax::Double(dq) => dq.bytes(),
        };
        (8 * (self.len.div_ceil(2) + scale_bytes)) as f64 / self.len as f64
    }
}

fn check_4bit_blocksize(blocksize: usize) -> Result<(), Error> {
    if BLOCKSIZES_4BIT.contains(&blocksize) {
        Ok(())
    } else {
        Err(Error::BlockSize {
            size: blocksize,
            supported: "32, 64, 128, 256, 512, 1024, 2048, 4096",
        })
    }
}

/// `bitsandbytes.functional.quantize_4bit(x, blocksize, quant_type, compress_statistics)`:
/// the packed codes (two a byte, first element high) and the state.
///
/// # Errors
///
/// [`Error::BlockSize`] for a block size bitsandbytes does not support;
/// [`Error::NonFinite`] if a block holds NaN or infinity.
pub fn quantize_4bit(
    x: &[f32],
    blocksize: usize,
    quant_type: QuantType,
    compress_statistics: bool,
) -> Result<(Vec<u8>, QuantState), Error> {
    let mut packed = vec![0u8; x.len().div_ceil(2)];
    let state = quantize_4bit_into(x, blocksize, quant_type, compress_statistics, &mut packed)?;
    Ok((packed, state))
}

/// [`quantize_4bit`] writing the codes into `packed` (`x.len().div_ceil(2)` bytes).
///
/// # Errors
///
/// As [`quantize_4bit`], and [`Error::LengthMismatch`] if `packed` has the wrong length.
pub fn quantize_4bit_into(
    x: &[f32],
    blocksize: usize,
    quant_type: QuantType,
    compress_statistics: bool,
    packed: &mut [u8],
) -> Result<QuantState, Error> {
    check_4bit_blocksize(blocksize)?;
    // The plain path writes straight into the caller's buffer; `QuantState::quantizer` is the
    // same computation as a `Quantizer`.
    let mut absmax = vec![0f32; x.len().div_ceil(blocksize)];
    bnb_blocks(quant_type.codebook(), blocksize)?.quantize_to(x, packed, &mut absmax)?;
    let absmax = if compress_statistics {
        Absmax::Double(DoubleQuant::quantize(&absmax, BLOCKSIZE2)?)
    } else {
        Absmax::Plain(absmax)
    };
    Ok(QuantState {
        absmax,
        blocksize,
        quant_type,
        len: x.len(),
    })
}

/// `bitsandbytes.functional.dequantize_4bit(packed, state)`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if `packed` is not `state.len.div_ceil(2)` bytes or the scales do not
/// match the block count; [`Error::BlockSize`] for an unsupported block size.
pub fn dequantize_4bit(packed: &[u8], state: &QuantState) -> Result<Vec<f32>, Error> {
    // Check the input against the state before allocating what the state claims.
    check_len("packed", state.len.div_ceil(2), packed.len())?;
    let mut out = vec![0f32; state.len];
    dequantize_4bit_into(packed, state, &mut out)?;
    Ok(out)
}

/// [`dequantize_4bit`] into `out` (`state.len` values).
///
/// # Errors
///
/// As [`dequantize_4bit`], and [`Error::LengthMismatch`] if `out` has the wrong length.
pub fn dequantize_4bit_into(packed: &[u8], state: &QuantState, out: &mut [f32]) -> Result<(), Error> {
    check_4bit_blocksize(state.blocksize)?;
    check_len("output", state.len, out.len())?;
    check_len("packed", state.len.div_ceil(2), packed.len())?;
    let absmax = state.absmax()?;
    bnb_blocks(state.quant_type.codebook(), state.blocksize)?.dequantize_from(packed, &absmax, out)
}

/// The state of an 8-bit blockwise quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockwiseState {
    /// `f32` absmax per block.
    pub absmax: Vec<f32>,
    /// The 256-value map (by default [`dynamic_map`]).
    pub code: Vec<f32>,
    /// Block size.
    pub blocksize: usize,
}

fn map_codebook(code: &[f32]) -> Result<Codebook, Error> {
    let map: &[f32; 256] = code
        .try_into()
        .map_err(|_| Error::Codebook("an 8-bit map has 256 entries"))?;
    bnb_map_codebook(map)
}

fn check_8bit_blocksize(blocksize: usize) -> Result<(), Error> {
    if BLOCKSIZES_8BIT.contains(&blocksize) {
        Ok(())
    } else {
        Err(Error::BlockSize {
            size: blocksize,
            supported: "64, 128, 256, 512, 1024, 2048, 4096",
        })
    }
}

/// `bitsandbytes.functional.quantize_blockwise(x, blocksize=blocksize)` with the default
/// dynamic map: one 8-bit code per element and an `f32` absmax per block.
///
/// # Errors
///
/// [`Error::BlockSize`] for an unsupported block size; [`Error::NonFinite`] for NaN or
/// infinity.
///
/// # Examples
///
/// ```
/// use lowbit::compat::bnb::{dequantize_blockwise, quantize_blockwise};
/// use lowbit::quant::double::dynamic_map;
/// let x = [0.5f32, -1.0, 0.25, 0.0];
/// let (q, state) = quantize_blockwise(&x, 64)?;
/// assert_eq!(state.absmax, vec![1.0]);
/// assert_eq!(q[1], 0); // the map's smallest value is -0.99296874, not -1
/// assert_eq!(dequantize_blockwise(&q, &state)?[1], dynamic_map()[0]);
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub fn quantize_blockwise(x: &[f32], blocksize: usize) -> Result<(Vec<u8>, BlockwiseState), Error> {
    quantize_blockwise_with_code(x, &dynamic_map(), blocksize)
}

/// [`quantize_blockwise`] with a map of your own (256 ascending values in `[-1, 1]`, e.g.
/// `create_normal_map()` or `create_fp8_map()`); bitsandbytes' search and tie rule.
///
/// # Errors
///
/// As [`quantize_blockwise`], and [`Error::Codebook`] for a bad map.
pub fn quantize_blockwise_with_code(
    x: &[f32],
    code: &[f32],
    blocksize: usize,
) -> Result<(Vec<u8>, BlockwiseState), Error> {
    check_8bit_blocksize(blocksize)?;
    let mut q = vec![0u8; x.len()];
    let mut absmax = vec![0f32; x.len().div_ceil(blocksize)];
    bnb_blocks(map_codebook(code)?, blocksize)?.quantize_to(x, &mut q, &mut absmax)?;
    Ok((
        q,
        BlockwiseState {
            absmax,
            code: code.to_vec(),
            blocksize,
        },
    ))
}

/// `bitsandbytes.functional.dequantize_blockwise(q, state)`: `code[q] * absmax`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the absmax count does not match, [`Error::BlockSize`] /
/// [`Error::Codebook`] for a bad state.
pub fn dequantize_blockwise(q: &[u8], state: &BlockwiseState) -> Result<Vec<f32>, Error> {
    check_8bit_blocksize(state.blocksize)?;
    let mut out = vec![0f32; q.len()];
    bnb_blocks(map_codebook(&state.code)?, state.blocksize)?.dequantize_from(q, &state.absmax, &mut out)?;
    Ok(out)
}

/// bitsandbytes' `create_fp8_map(signed, exponent_bits, precision_bits, total_bits)`: every
/// value of a small float format (bias `2^(e-1)`, normals `(1 + m) · 2^(bias + 1 - E)`,
/// subnormals `m · 2^-bias`), sorted, padded with zeros to 256 when `total_bits < 8`, rounded
/// to `f32` and divided by the largest. Usable as a map for
/// [`quantize_blockwise_with_code`]. bitsandbytes' own FP4 table is
/// `create_fp8_map(true, 2, 1, 4)` (see [`QuantType::code`]).
///
/// # Errors
///
/// [`Error::InvalidBits`] unless `exponent_bits + precision_bits + signed == total_bits <= 8`
/// with at least one exponent bit.
pub fn create_fp8_map(
    signed: bool,
    exponent_bits: u32,
    precision_bits: u32,
    total_bits: u32,
) -> Result<Vec<f32>, Error> {
    let sign = u32::from(signed);
    // bitsandbytes asserts `e + p == total_bits - has_sign` on Python integers; the sum is
    // taken without overflow here (widths near `u32::MAX` are refused, not wrapped).
    let width = exponent_bits
        .checked_add(precision_bits)
        .and_then(|w| w.checked_add(sign));
    if exponent_bits == 0 || total_bits > 8 || width != Some(total_bits) {
        return Err(Error::InvalidBits {
            bits: total_bits,
            min: 2,
            max: 8,
        });
    }
    let bias = 1i32 << (exponent_bits - 1);
    let mut values: Vec<f64> = Vec::with_capacity(256);
    for e in 0..(1i32 << exponent_bits) {
        for pattern in 0..(1u32 << precision_bits) {
            let mut v = if e != 0 { 1.0 } else { 0.0 };
            for i in 0..precision_bits {
                // itertools.product([0, 1], repeat=p): the first position is the most significant.
                if pattern >> (precision_bits - 1 - i) & 1 == 1 {
                    v += 2f64.powi(-(i as i32 + 1));
                }
            }
            v *= if e == 0 {
                2f64.powi(-bias)
            } else {
                2f64.powi(-(e - bias - 1))
            };
            values.push(v);
            if signed {
                values.push(-v);
            }
        }
    }
    // Python's sort is stable and treats -0.0 == 0.0.
    values.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    if total_bits < 8 {
        values.resize(256, 0.0);
        values.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    }
    let mut code: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let max = code.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in &mut code {
        *c /= max;
    }
    Ok(code)
}

#[cfg(test)]
mod tests;
