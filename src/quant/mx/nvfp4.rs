//! NVFP4: blocks of 16 E2M1 elements with E4M3 scales and an optional tensor scale.

use super::math::{self, Nvfp4Block};
use super::{check_whole_blocks, decode_and_scale, has_nan, scale_and_encode, NVFP4_SCHEME};
use crate::format::{FloatFormat, Layout};
use crate::quant::pack::BitOrder;
use crate::quant::walk::{self, Kernel, Stats};
use crate::quant::{Error, Granularity, NonFinite, Quantized, Quantizer, Scale, Scheme};
use crate::E4M3;

/// Where an NVFP4 quantizer's second-level (per-tensor) scale comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum TensorScale {
    /// One level: the E4M3 block scales alone.
    #[default]
    None,
    /// `amax(|x|) / (448 × 6)` of the whole tensor (torchao's `per_tensor_amax_to_scale`);
    /// 1 for an all-zero tensor or an amax below about 5.07e-34 (where the division
    /// underflows, or the element multiplier `(1 / t) / 2^-6` of a block overflows: torchao
    /// then gives NaN blocks, or zeros that dequantize to nonzero values), so such a tensor
    /// codes as zeros; NaN or infinity for a tensor
    /// holding one under [`NonFinite::Propagate`], as torchao.
    FromAmax,
    /// A scale of your own (finite and positive), e.g. from a calibrated amax.
    Fixed(f32),
}

/// An NVFP4 quantizer: blocks of 16 E2M1 elements, one E4M3 scale per block (`amax / 6`
/// clamped to `[2^-6, 448]`), and optionally an `f32` tensor scale the block scales are
/// relative to; elements are `x × (1 / scale)` as torchao computes them, so the codes equal
/// `nvfp4_quantize`'s. See the [module docs](super).
///
/// # Examples
///
/// ```
/// use lowbit::quant::mx::{Nvfp4Quantizer, TensorScale};
/// use lowbit::quant::Quantizer;
///
/// let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
/// let q = Nvfp4Quantizer::new(TensorScale::FromAmax)?;
/// let z = q.quantize(&x)?;
/// assert_eq!(z.tensor_scale(), Some(16.0 / 2688.0));
/// assert_eq!(z.scale_codes().len(), 2); // E4M3 bytes, one per block of 16
/// let y = q.dequantize(&z)?;
/// assert_eq!(y[0], -16.0); // each block's amax is exact
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nvfp4Quantizer {
    tensor_scale: TensorScale,
    non_finite: NonFinite,
}

impl Nvfp4Quantizer {
    /// An NVFP4 quantizer, erroring on NaN and infinity.
    ///
    /// # Errors
    /// [`Error::ScaleOutOfRange`] for a [`TensorScale::Fixed`] scale that is not finite and
    /// positive.
    pub fn new(tensor_scale: TensorScale) -> Result<Self, Error> {
        if let TensorScale::Fixed(t) = tensor_scale {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::ScaleOutOfRange { group: 0, scale: t });
            }
        }
        Ok(Self {
            tensor_scale,
            non_finite: NonFinite::Error,
        })
    }

    /// The same quantizer with another policy for NaN and infinity: [`NonFinite::Error`] (the
    /// default) or [`NonFinite::Propagate`] (what torchao stores).
    ///
    /// # Errors
    /// [`Error::Incompatible`] for [`NonFinite::Skip`].
    pub fn with_non_finite(self, non_finite: NonFinite) -> Result<Self, Error> {
        if non_finite == NonFinite::Skip {
            return Err(Error::Incompatible("NVFP4 blocks take NonFinite::Error or Propagate"));
        }
        Ok(Self { non_finite, ..self })
    }

    /// Where the tensor scale comes from.
    pub fn tensor_scale(&self) -> TensorScale {
        self.tensor_scale
    }

    /// Fake quantization: `y` gets what [`quantize`](Quantizer::quantize) then
    /// [`dequantize`](Quantizer::dequantize) give, block by block, with no packed buffer.
    ///
    /// # Errors
    /// As [`Quantizer::quantize_into`], and [`Error::LengthMismatch`] when `y` is not as long
    /// as `x`.
    pub fn fake_quantize(&self, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        check_whole_blocks(x.len(), math::NVFP4_BLOCK)?;
        walk::fake_quantize(&self.kernel(x)?, x, y)
    }

    /// The kernel for the tensor `x`: its tensor scale decided.
    fn kernel(&self, x: &[f32]) -> Result<Nvfp4Kernel, Error> {
        let tensor_scale = match self.tensor_scale {
            TensorScale::None => None,
            TensorScale::Fixed(t) => Some(t),
            TensorScale::FromAmax => {
                // One vectorised pass; torchao's NaN rules only where a value is not finite.
                let (a, finite) = crate::arch::run(Amax(x));
                let amax = if finite { a } else { math::block_amax(x) };
                if !amax.is_finite() && self.non_finite == NonFinite::Error {
                    let index = x.iter().position(|v| !v.is_finite()).unwrap_or(0);
                    return Err(Error::NonFinite {
                        group: index / math::NVFP4_BLOCK,
                        index,
                    });
                }
                // An all-zero tensor would get a zero tensor scale, and torchao then NaN
                // blocks (0 / 0); so would a tensor whose amax / 2688 underflows (amax below
                // 2688 × 2^-150, about 1.9e-42), and a zero tensor scale cannot be stored
                // (fuzz finding F33). Below about 5.07e-34 the element multiplier of a block
                // with the smallest scale, `(1 / t) / 2^-6`, overflows: torchao's codes then
                // turn zeros into nonzero values and errors reach amax / 2 (F34). A scale of 1
                // codes such a tensor as zeros, within amax of every value.
                let t = math::nvfp4_tensor_scale(amax);
                Some(if t == 0.0 || (t.is_finite() && !((1.0 / t) * 64.0).is_finite()) {
                    1.0
                } else {
                    t
                })
            }
        };
        Ok(Nvfp4Kernel {
            tensor_scale,
            non_finite: self.non_finite,
        })
    }
}

/// The kernel of one NVFP4 tensor: its tensor scale is known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Nvfp4Kernel {
    pub(crate) tensor_scale: Option<f32>,
    pub(crate) non_finite: NonFinite,
}

impl Kernel for Nvfp4Kernel {
    const ABSMAX_ONLY: bool = true;
    type Enc = Nvfp4Block;
    type Dec = Nvfp4Block;
    fn scheme(&self) -> Scheme {
        NVFP4_SCHEME
    }
    fn non_finite(&self) -> NonFinite {
        self.non_finite
    }
    fn layout(&self) -> Layout {
        E4M3::LAYOUT
    }
    fn order(&self) -> BitOrder {
        BitOrder::LsbFirst
    }
    fn tensor_scale(&self) -> Option<f32> {
        self.tensor_scale
    }
    #[inline(always)]
    fn params(&self, _group: usize, st: Stats) -> Result<(Scale, u8), Error> {
        let b = Nvfp4Block::new(st.max, self.tensor_scale);
        Ok((
            Scale {
                code: u32::from(b.scale_code),
                value: E4M3::decode_f32(b.scale_code),
            },
            0,
        ))
    }
    #[inline(always)]
    fn enc(&self, scale: f32, _zp: u8) -> Nvfp4Block {
        self.dec(scale, 0)
    }
    #[inline(always)]
    fn encode(&self, b: &Nvfp4Block, x: &[f32], out: &mut [u8]) {
        match b.multiplier() {
            // `clamp(x × r, ±6)` without NaN is what torch's NaN rules give too.
            Some(r) if self.non_finite == NonFinite::Error || !has_nan(x) => {
                scale_and_encode::<crate::E2M1>(r, 6.0, x, out)
            }
            _ => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = b.elem_code(v);
                }
            }
        }
    }
    #[inline(always)]
    fn dec(&self, scale: f32, _zp: u8) -> Nvfp4Block {
        let code = if scale.is_nan() {
            // E4M3's NaN with the sign torchao's NaN block scale has.
            0x7f | (scale.is_sign_negative() as u8) << 7
        } else {
            E4M3::encode_f32(scale)
        };
        Nvfp4Block::from_code(code, self.tensor_scale)
    }
    #[inline(always)]
    fn decode(&self, b: &Nvfp4Block, codes: &[u8], out: &mut [f32]) {
        match b.finite_scales() {
            // E2M1 values are never NaN: with finite scales the NaN rules change nothing.
            Some((s, None)) => decode_and_scale::<crate::E2M1>(s, 0x0f, codes, out),
            Some((s, Some(t))) => {
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = crate::E2M1::decode_f32(c & 0x0f) * s * t;
                }
            }
            None => {
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = b.dequant(c);
                }
            }
        }
    }
}

impl Quantizer for Nvfp4Kernel {
    fn bits(&self) -> u32 {
        4
    }
    fn granularity(&self) -> Granularity {
        Granularity::PerBlock(math::NVFP4_BLOCK)
    }
    fn quantize_into(&self, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
        walk::quantize(self, x, out)
    }
    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
        walk::dequantize(self, q, out)
    }
}

impl Quantizer for Nvfp4Quantizer {
    fn bits(&self) -> u32 {
        4
    }
    fn granularity(&self) -> Granularity {
        Granularity::PerBlock(math::NVFP4_BLOCK)
    }
    fn quantize_into(&self, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
        check_whole_blocks(x.len(), math::NVFP4_BLOCK)?;
        walk::quantize(&self.kernel(x)?, x, out)
    }
    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
        let k = Nvfp4Kernel {
            tensor_scale: q.tensor_scale(),
            non_finite: self.non_finite,
        };
        if (self.tensor_scale == TensorScale::None) != q.tensor_scale().is_none() {
            return Err(Error::Incompatible("tensor scale"));
        }
        walk::dequantize(&k, q, out)
    }
}

/// `max |x|` and whether every value is finite, compiled for the widest instruction set.
struct Amax<'a>(&'a [f32]);

impl crate::arch::Job for Amax<'_> {
    type Out = (f32, bool);
    #[inline(always)]
    fn run(self) -> (f32, bool) {
        crate::arch::portable::absmax_finite(self.0)
    }
}
