//! Block formats of today's hardware: OCP Microscaling (MXFP8, MXFP6, MXFP4, MXINT8) and
//! NVIDIA's NVFP4, bit-exact with torchao 0.18 (and, for MXINT8 and round-half-away,
//! Microsoft's microxcaling).
//!
//! Both are block quantizers on the crate's one block walker: a block's amax gives its scale
//! (an E8M0 power of two for MX, an E4M3 value for NVFP4), and each element is `x / scale`
//! rounded into a small [`FloatFormat`] (or, for MXINT8, to `k / 64`).
//!
//! | quantizer | block | scale | elements | packed |
//! |---|---|---|---|---|
//! | [`MxQuantizer`] `E4M3` / `E5M2` (MXFP8) | 32 | E8M0 | FP8 | a byte each |
//! | [`MxQuantizer`] `E2M3` / `E3M2` (MXFP6) | 32 | E8M0 | FP6 | four in three bytes, MSB first |
//! | [`MxQuantizer`] `E2M1` (MXFP4) | 32 | E8M0 | FP4 | two a byte, first in the low nibble |
//! | [`MxQuantizer`] `Int8` (MXINT8) | 32 | E8M0 | `k / 64`, `\|k\| <= 127` | a byte each (two's complement) |
//! | [`Nvfp4Quantizer`] | 16 | E4M3 (and an optional `f32` tensor scale) | FP4 | two a byte, first in the low nibble |
//!
//! The FP4 order is torch's `float4_e2m1fn_x2`, the OCP spec's and NVIDIA's (the opposite of
//! bitsandbytes' NF4). The scale codes are the raw E8M0 / E4M3 bytes
//! ([`Quantized::scale_codes`]), so the two arrays can go to a kernel or a file as they are;
//! [`swizzle_scales`] gives the 128×4 tiled scale layout that cuBLAS and CUTLASS block-scaled
//! matmuls read.
//!
//! # Scale rules
//!
//! [`ScaleRule`] is torchao's `ScaleCalculationMode`: `Floor` (the OCP v1.0 rule,
//! `2^(floor(log2 amax) - emax_elem)`, the default), `Ceil`, `Even` (amax rounded to the
//! element's mantissa first) and `RCeil` (NVIDIA's hardware rule, `2^ceil(log2(amax / max))`,
//! elements multiplied by the reciprocal). Elements round to nearest, ties to even, and
//! saturate at ± the element's max, with torchao's exact `f32` operations: `Floor`, `Ceil` and
//! `Even` divide by the scale clamped to at least `2^-126`; `RCeil` multiplies.
//! [`MxQuantizer::with_rounding`]`(Rounding::NearestAway)` gives microxcaling's round half away
//! from zero instead (with its `Floor` shared exponent).
//!
//! # NaN and infinity
//!
//! By default a block holding a NaN or an infinity is an error ([`NonFinite::Error`]).
//! [`NonFinite::Propagate`] gives exactly what torchao stores: a NaN block gets scale code
//! 255 and dequantizes to NaN; an infinity makes the block's scale as large as its rule allows
//! (code `255 - emax_elem` for `Floor`, 254 for `RCeil`), so the infinite element saturates
//! and the others flush to zero. (microxcaling's MXINT8 makes an infinite block NaN.)
//!
//! Finite data never gets a NaN scale. microxcaling's MXINT8 does for a block whose amax is
//! within an ulp of `f32::MAX` (its `f32` `log2` rounds to 128, above E8M0's 127); lowbit
//! saturates that block's shared exponent at 127 (code 254), so it dequantizes to finite values
//! within the element's error, and agrees with microxcaling on every other block.
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::mx::{MxElement, MxQuantizer, ScaleRule};
//! use lowbit::quant::Quantizer;
//!
//! let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
//! let q = MxQuantizer::new(MxElement::E2M1, ScaleRule::Floor)?; // MXFP4
//! let packed = q.quantize(&x)?;
//! assert_eq!(packed.scale_codes().len(), 2); // one E8M0 byte per block of 32
//! assert_eq!(packed.codes().len(), 32); // 64 four-bit codes
//! let y = q.dequantize(&packed)?;
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= 1.0));
//! # Ok::<(), lowbit::QuantError>(())
//! ```

#[doc(hidden)]
pub mod math;
mod nvfp4;
mod swizzle;

pub use nvfp4::{Nvfp4Quantizer, TensorScale};
pub use swizzle::{swizzle_scales, unswizzle_scales};

use crate::format::{Code, FloatFormat, Layout};
use crate::quant::pack::BitOrder;
use crate::quant::walk::{self, Kernel, Stats};
use crate::quant::{check_compatible, Error, Granularity, NonFinite, Quantized, Quantizer, Rounding, Scale, Scheme};
use crate::E8M0;
use math::{Elem, MsxElem, MsxRound, MxBlock};
use nvfp4::Nvfp4Kernel;

pub use math::ScaleRule;

/// The element format of an MX block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxElement {
    /// MXFP8 with [`E4M3`](crate::E4M3) elements (max 448).
    E4M3,
    /// MXFP8 with [`E5M2`](crate::E5M2) elements (max 57344).
    E5M2,
    /// MXFP6 with [`E2M3`](crate::E2M3) elements (max 7.5).
    E2M3,
    /// MXFP6 with [`E3M2`](crate::E3M2) elements (max 28).
    E3M2,
    /// MXFP4 with [`E2M1`](crate::E2M1) elements (max 6).
    E2M1,
    /// MXINT8: 8-bit two's complement `k` with an implicit `2^-6`, values `k / 64`,
    /// `|k| <= 127`.
    Int8,
}

impl MxElement {
    /// Every element format.
    pub const ALL: [MxElement; 6] = [
        MxElement::E4M3,
        MxElement::E5M2,
        MxElement::E2M3,
        MxElement::E3M2,
        MxElement::E2M1,
        MxElement::Int8,
    ];

    /// Bits per element code.
    pub const fn bits(self) -> u32 {
        match self {
            MxElement::E4M3 | MxElement::E5M2 | MxElement::Int8 => 8,
            MxElement::E2M3 | MxElement::E3M2 => 6,
            MxElement::E2M1 => 4,
        }
    }

    /// The [`Scheme`] tag of a [`Quantized`] value of this element format.
    pub const fn scheme(self) -> Scheme {
        Scheme::Other(match self {
            MxElement::E4M3 => 1,
            MxElement::E5M2 => 2,
            MxElement::E2M3 => 3,
            MxElement::E3M2 => 4,
            MxElement::E2M1 => 5,
            MxElement::Int8 => 6,
        })
    }

    /// How the codes are packed: FP4 low nibble first, FP6 as an MSB-first 6-bit stream.
    const fn order(self) -> BitOrder {
        match self {
            MxElement::E2M1 => BitOrder::LsbFirst,
            _ => BitOrder::MsbFirst,
        }
    }

    fn float(self) -> Option<Elem> {
        match self {
            MxElement::E4M3 => Some(Elem::E4M3),
            MxElement::E5M2 => Some(Elem::E5M2),
            MxElement::E2M3 => Some(Elem::E2M3),
            MxElement::E3M2 => Some(Elem::E3M2),
            MxElement::E2M1 => Some(Elem::E2M1),
            MxElement::Int8 => None,
        }
    }

    fn msx(self) -> MsxElem {
        match self {
            MxElement::E4M3 => MsxElem::E4M3,
            MxElement::E5M2 => MsxElem::E5M2,
            MxElement::E2M3 => MsxElem::E2M3,
            MxElement::E3M2 => MsxElem::E3M2,
            MxElement::E2M1 => MsxElem::E2M1,
            MxElement::Int8 => MsxElem::Int8,
        }
    }
}

/// The [`Scheme`] tag of NVFP4 values.
pub const NVFP4_SCHEME: Scheme = Scheme::Other(7);

/// An MX block quantizer (OCP Microscaling v1.0): blocks along the slice (a matrix's last
/// axis, row-major), one E8M0 scale per block. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use lowbit::quant::mx::{MxElement, MxQuantizer, ScaleRule};
/// use lowbit::quant::Quantizer;
///
/// let q = MxQuantizer::new(MxElement::E4M3, ScaleRule::Floor)?; // MXFP8
/// let mut x = vec![0.0f32; 32];
/// x[0] = 1000.0; // floor(log2 1000) = 9, E4M3's emax is 8: scale 2^1
/// x[1] = 3.0;
/// let z = q.quantize(&x)?;
/// assert_eq!(z.scale_codes(), &[128]); // 2^(128 - 127)
/// assert_eq!(q.dequantize(&z)?[..2], [448.0 * 2.0, 3.0]); // 500 saturates at 448
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxQuantizer {
    element: MxElement,
    rule: ScaleRule,
    block: usize,
    /// Ties away from zero, with microxcaling's arithmetic.
    away: bool,
    non_finite: NonFinite,
}

impl MxQuantizer {
    /// An MX quantizer with blocks of 32, rounding half to even, erroring on NaN and infinity.
    ///
    /// # Errors
    /// [`Error::Incompatible`] for [`MxElement::Int8`] with a rule other than
    /// [`ScaleRule::Floor`] (MXINT8's scale is the OCP floor rule).
    pub fn new(element: MxElement, rule: ScaleRule) -> Result<Self, Error> {
        if element == MxElement::Int8 && rule != ScaleRule::Floor {
            return Err(Error::Incompatible("MXINT8 takes the Floor scale rule"));
        }
        Ok(Self {
            element,
            rule,
            block: 32,
            away: false,
            non_finite: NonFinite::Error,
        })
    }

    /// The same quantizer with blocks of `block` elements (32 is the OCP size).
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`] for 0, [`Error::BlockSize`] for a block whose packed codes
    /// would not fill whole bytes.
    pub fn with_block_size(self, block: usize) -> Result<Self, Error> {
        if block == 0 {
            return Err(Error::ZeroGroupSize);
        }
        if !block
            .checked_mul(self.element.bits() as usize)
            .is_some_and(|b| b.is_multiple_of(8))
        {
            return Err(Error::BlockSize {
                size: block,
                supported: "a block whose codes fill whole bytes (even for FP4, a multiple of 4 for FP6)",
            });
        }
        Ok(Self { block, ..self })
    }

    /// The same quantizer with another element rounding: [`Rounding::NearestEven`] (torchao,
    /// the default) or [`Rounding::NearestAway`] (microxcaling's `round="nearest"`; needs
    /// [`ScaleRule::Floor`], whose shared exponent microxcaling uses). MXINT8 always uses
    /// microxcaling's arithmetic, with either tie rule.
    ///
    /// # Errors
    /// [`Error::UnsupportedRounding`] for other roundings, [`Error::Incompatible`] for
    /// half-away with another rule.
    pub fn with_rounding(self, rounding: Rounding) -> Result<Self, Error> {
        let away = match rounding {
            Rounding::NearestEven => false,
            Rounding::NearestAway if self.rule == ScaleRule::Floor => true,
            Rounding::NearestAway => return Err(Error::Incompatible("round half away takes the Floor scale rule")),
            _ => return Err(Error::UnsupportedRounding),
        };
        Ok(Self { away, ..self })
    }

    /// The same quantizer with another policy for NaN and infinity: [`NonFinite::Error`] (the
    /// default) or [`NonFinite::Propagate`] (what torchao stores; see the module docs).
    ///
    /// # Errors
    /// [`Error::Incompatible`] for [`NonFinite::Skip`].
    pub fn with_non_finite(self, non_finite: NonFinite) -> Result<Self, Error> {
        if non_finite == NonFinite::Skip {
            return Err(Error::Incompatible("MX blocks take NonFinite::Error or Propagate"));
        }
        Ok(Self { non_finite, ..self })
    }

    /// The element format.
    pub fn element(&self) -> MxElement {
        self.element
    }

    /// The scale rule.
    pub fn rule(&self) -> ScaleRule {
        self.rule
    }

    /// Elements per block.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// Fake quantization for QAT and error measurement: `y` gets what
    /// [`quantize`](Quantizer::quantize) then [`dequantize`](Quantizer::dequantize) give,
    /// block by block, with no packed buffer.
    ///
    /// ```
    /// use lowbit::quant::mx::{MxElement, MxQuantizer, ScaleRule};
    /// use lowbit::quant::Quantizer;
    /// let q = MxQuantizer::new(MxElement::E2M1, ScaleRule::Floor)?;
    /// let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.3).cos()).collect();
    /// let mut y = vec![0f32; 64];
    /// q.fake_quantize(&x, &mut y)?;
    /// assert_eq!(y, q.dequantize(&q.quantize(&x)?)?);
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Quantizer::quantize_into`], and [`Error::LengthMismatch`] when `y` is not as long
    /// as `x`.
    pub fn fake_quantize(&self, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        check_whole_blocks(x.len(), self.block)?;
        walk::fake_quantize(self, x, y)
    }

    /// microxcaling's arithmetic (MXINT8, or half-away rounding), and its tie rule.
    fn msx_round(&self) -> Option<MsxRound> {
        match (self.element == MxElement::Int8 || self.away, self.away) {
            (false, _) => None,
            (true, true) => Some(MsxRound::Nearest),
            (true, false) => Some(MsxRound::Even),
        }
    }

    /// The scale code of a block whose amax is `amax`.
    fn scale_code(&self, amax: f32) -> u8 {
        match (self.element.float(), self.msx_round()) {
            (Some(elem), None) => math::mx_scale_code(amax, elem, self.rule),
            _ => {
                let se = math::msx_shared_exp(amax, self.element.msx());
                // microxcaling takes log2 in f32, where amaxes within an ulp of f32::MAX round
                // to 128 and an MXINT8 block of finite data gets the NaN scale. lowbit keeps
                // microxcaling's bits everywhere else and saturates the exponent at 127 there.
                if se.is_nan() && amax.is_finite() {
                    254
                } else {
                    math::msx_scale_code(se)
                }
            }
        }
    }
}

/// A block's code map.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MxEnc {
    /// torchao's `to_mx`.
    Torchao(MxBlock),
    /// microxcaling's `_quantize_mx` with the shared exponent `se` and its element format.
    Msx { se: f32, scale: f32, round: MsxRound },
}

/// `E8M0::decode_f32(code)` by bits (the walker asks for it once a block).
#[inline(always)]
fn e8m0_value(code: u8) -> f32 {
    match code {
        0 => f32::from_bits(0x0040_0000),
        255 => f32::from_bits(0x7fc0_0000),
        c => f32::from_bits(u32::from(c) << 23),
    }
}

/// The E8M0 code of a scale value [`e8m0_value`] gave.
#[inline(always)]
fn e8m0_code(scale: f32) -> u8 {
    let b = scale.to_bits();
    if scale.is_nan() {
        255
    } else if b < 0x0080_0000 {
        0
    } else {
        (b >> 23) as u8
    }
}

/// Whether `x` holds a NaN (no early exit, so it vectorises).
#[inline(always)]
pub(crate) fn has_nan(x: &[f32]) -> bool {
    x.iter().fold(false, |a, v| a | v.is_nan())
}

/// The shared exponent of an E8M0 scale code (NaN for 255).
fn shared_exp(code: u8) -> f32 {
    if code == 255 {
        f32::NAN
    } else {
        f32::from(code) - 127.0
    }
}

impl Kernel for MxQuantizer {
    const ABSMAX_ONLY: bool = true;
    type Enc = MxEnc;
    type Dec = f32;
    fn non_finite(&self) -> NonFinite {
        self.non_finite
    }
    fn layout(&self) -> Layout {
        E8M0::LAYOUT
    }
    fn order(&self) -> BitOrder {
        self.element.order()
    }
    fn scheme(&self) -> Scheme {
        self.element.scheme()
    }
    #[inline(always)]
    fn params(&self, _group: usize, st: Stats) -> Result<(Scale, u8), Error> {
        let code = self.scale_code(st.max);
        Ok((
            Scale {
                code: u32::from(code),
                value: e8m0_value(code),
            },
            0,
        ))
    }
    #[inline(always)]
    fn enc(&self, scale: f32, _zp: u8) -> MxEnc {
        let code = e8m0_code(scale);
        match (self.element.float(), self.msx_round()) {
            (Some(elem), None) => MxEnc::Torchao(MxBlock::from_code(code, elem, self.rule)),
            (_, round) => MxEnc::Msx {
                se: shared_exp(code),
                scale,
                round: round.unwrap_or(MsxRound::Even),
            },
        }
    }
    #[inline(always)]
    fn encode(&self, e: &MxEnc, x: &[f32], out: &mut [u8]) {
        match (e, self.element.float()) {
            (MxEnc::Torchao(b), Some(elem)) => match b.multiplier() {
                // No NaN can reach a block whose scale is not NaN (the walker refuses them
                // under NonFinite::Error; under Propagate a NaN makes the block's scale NaN).
                Some(m) if self.non_finite == NonFinite::Error || !has_nan(x) => match elem {
                    Elem::E4M3 => scale_and_encode::<crate::E4M3>(m, 448.0, x, out),
                    Elem::E5M2 => scale_and_encode::<crate::E5M2>(m, 57344.0, x, out),
                    Elem::E2M3 => scale_and_encode::<crate::E2M3>(m, 7.5, x, out),
                    Elem::E3M2 => scale_and_encode::<crate::E3M2>(m, 28.0, x, out),
                    Elem::E2M1 => scale_and_encode::<crate::E2M1>(m, 6.0, x, out),
                },
                _ => {
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = b.elem_code(v);
                    }
                }
            },
            (MxEnc::Torchao(b), None) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = b.elem_code(v);
                }
            }
            (&MxEnc::Msx { se, round, .. }, None) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = math::mxint8_code(v, se, round) as u8;
                }
            }
            (&MxEnc::Msx { se, scale, round }, Some(elem)) => {
                // microxcaling's value lies on the element grid times the scale: its code is
                // exact.
                for (o, &v) in out.iter_mut().zip(x) {
                    let q = math::msx_quantize(v, se, self.element.msx(), round);
                    *o = elem.encode(q / scale);
                }
            }
        }
    }
    #[inline(always)]
    fn dec(&self, scale: f32, _zp: u8) -> f32 {
        scale
    }
    #[inline(always)]
    fn decode(&self, scale: &f32, codes: &[u8], out: &mut [f32]) {
        let s = *scale;
        match self.element.float() {
            // A finite scale: torch's NaN rules give what a plain multiply gives.
            Some(Elem::E4M3) if s.is_finite() => decode_and_scale::<crate::E4M3>(s, 0xff, codes, out),
            Some(Elem::E5M2) if s.is_finite() => decode_and_scale::<crate::E5M2>(s, 0xff, codes, out),
            Some(Elem::E2M3) if s.is_finite() => decode_and_scale::<crate::E2M3>(s, 0x3f, codes, out),
            Some(Elem::E3M2) if s.is_finite() => decode_and_scale::<crate::E3M2>(s, 0x3f, codes, out),
            Some(Elem::E2M1) if s.is_finite() => decode_and_scale::<crate::E2M1>(s, 0x0f, codes, out),
            Some(elem) => {
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = math::tmul(elem.decode(c), *scale);
                }
            }
            None => {
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = math::tmul(f32::from(c as i8) / 64.0, *scale);
                }
            }
        }
    }
}

impl Quantizer for MxQuantizer {
    fn bits(&self) -> u32 {
        self.element.bits()
    }
    fn granularity(&self) -> Granularity {
        Granularity::PerBlock(self.block)
    }
    fn quantize_into(&self, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
        check_whole_blocks(x.len(), self.block)?;
        walk::quantize(self, x, out)
    }
    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
        check_compatible(q, self.element.scheme(), self.bits(), out.len())?;
        walk::dequantize(self, q, out)
    }
}

/// `clamp(x × m, ±max)` encoded in `F`, for blocks without NaN: the branch-free codec, so the
/// loop vectorises.
#[inline(always)]
pub(crate) fn scale_and_encode<F: FloatFormat>(m: f32, max: f32, x: &[f32], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let y = v * m;
        let y = if y < -max { -max } else { y };
        let y = if y > max { max } else { y };
        *o = F::encode_f32(y).to_u64() as u8;
    }
}

/// `decode(code) × s` for a finite scale `s`.
#[inline(always)]
pub(crate) fn decode_and_scale<F: FloatFormat<Code = u8>>(s: f32, mask: u8, codes: &[u8], out: &mut [f32]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = F::decode_f32(c & mask) * s;
    }
}

/// [`Error::NotWholeBlocks`] unless `len` is a multiple of `block`.
pub(crate) fn check_whole_blocks(len: usize, block: usize) -> Result<(), Error> {
    if len.is_multiple_of(block) {
        Ok(())
    } else {
        Err(Error::NotWholeBlocks { len, block })
    }
}

/// Dequantize any MX or NVFP4 value by what its header records (element format, block size,
/// tensor scale): the scale rule and the rounding only matter when quantizing.
///
/// # Errors
/// [`Error::Incompatible`] for a value of another scheme, and the errors of
/// [`Quantizer::dequantize_into`].
pub fn dequantize_into(q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
    let block = match q.granularity() {
        Granularity::PerBlock(b) => b,
        _ => return Err(Error::Incompatible("MX and NVFP4 values are block-wise")),
    };
    if q.scheme() == NVFP4_SCHEME {
        let k = Nvfp4Kernel {
            tensor_scale: q.tensor_scale(),
            non_finite: NonFinite::Propagate,
        };
        return walk::dequantize(&k, q, out);
    }
    let element = MxElement::ALL
        .into_iter()
        .find(|e| e.scheme() == q.scheme())
        .ok_or(Error::Incompatible("not an MX or NVFP4 value"))?;
    MxQuantizer::new(element, ScaleRule::Floor)?
        .with_block_size(block)?
        .dequantize_into(q, out)
}

#[cfg(test)]
mod tests;
