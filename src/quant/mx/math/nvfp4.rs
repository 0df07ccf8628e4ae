//! NVFP4 as torchao's `nvfp4_quantize` computes it.

use super::*;

/// NVFP4 block size.
pub const NVFP4_BLOCK: usize = 16;

/// `per_tensor_amax_to_scale`: `amax / (448 * 6)` in `f32`.
#[inline]
pub fn nvfp4_tensor_scale(amax_tensor: f32) -> f32 {
    tdiv(amax_tensor, 2688.0)
}

/// One NVFP4 block prepared for quantizing its elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nvfp4Block {
    /// The E4M3 block scale code.
    pub scale_code: u8,
    /// `scale_code` decoded to `f32`.
    scale: f32,
    /// The multiplier of the elements: `1 / scale`, or `(1 / tensor_scale) / scale`.
    recip: f32,
    tensor_scale: Option<f32>,
}

impl Nvfp4Block {
    /// The block whose amax is `amax`, with the optional per-tensor scale
    /// ([`nvfp4_tensor_scale`]).
    ///
    /// `bs = amax / 6`; single level: `code = e4m3(clamp(bs, 2^-6, 448))`; two levels:
    /// `code = e4m3(clamp(bs / tensor_scale, 2^-6, 448))` (NaN kept: code `0x7f`).
    pub fn new(amax: f32, tensor_scale: Option<f32>) -> Self {
        let bs = tdiv(amax, 6.0);
        let v = match tensor_scale {
            None => bs,
            Some(t) => tdiv(bs, t),
        };
        let code = E4M3::encode_f32(clamp_keep_nan(v, pow2f(-6), 448.0));
        Self::from_code(code, tensor_scale)
    }

    /// The block with a given E4M3 scale code. The element multiplier is
    /// `1.0 / scale` (single level) or `(1.0 / tensor_scale) / scale` (two levels), as
    /// `nvfp4_quantize` computes it "to match the MSLK triton kernel".
    pub fn from_code(scale_code: u8, tensor_scale: Option<f32>) -> Self {
        let scale = E4M3::decode_f32(scale_code);
        let recip = match tensor_scale {
            None => tdiv(1.0, scale),
            Some(t) => tdiv(tdiv(1.0, t), scale),
        };
        Self {
            scale_code,
            scale,
            recip,
            tensor_scale,
        }
    }

    /// The element multiplier when it is finite (then `scaled(x) == clamp(x * m, -6, 6)` for
    /// every `x` that is not NaN).
    #[inline]
    pub fn multiplier(&self) -> Option<f32> {
        self.recip.is_finite().then_some(self.recip)
    }

    /// The block scale and the tensor scale when both are finite (then [`dequant`](Self::dequant)
    /// is two plain multiplies).
    #[inline]
    pub fn finite_scales(&self) -> Option<(f32, Option<f32>)> {
        match self.tensor_scale {
            _ if !self.scale.is_finite() => None,
            Some(t) if !t.is_finite() => None,
            t => Some((self.scale, t)),
        }
    }

    /// `clamp(x * recip, -6, 6)`, the value cast to E2M1.
    #[inline]
    pub fn scaled(&self, x: f32) -> f32 {
        clamp_keep_nan(tmul(x, self.recip), -6.0, 6.0)
    }

    /// The E2M1 code of `x` (`f32_to_f4_unpacked` of [`scaled`](Self::scaled)).
    #[inline]
    pub fn elem_code(&self, x: f32) -> u8 {
        Elem::E2M1.encode(self.scaled(x))
    }

    /// `e2m1(code) * scale` (then `* tensor_scale`), each an `f32` multiply.
    #[inline]
    pub fn dequant(&self, code: u8) -> f32 {
        let v = tmul(Elem::E2M1.decode(code), self.scale);
        match self.tensor_scale {
            None => v,
            Some(t) => tmul(v, t),
        }
    }
}

/// The E4M3 scale code of an NVFP4 block ([`Nvfp4Block::new`]).
pub fn nvfp4_block_scale_code(amax: f32, tensor_scale: Option<f32>) -> u8 {
    Nvfp4Block::new(amax, tensor_scale).scale_code
}

/// The E2M1 code of `x` in an NVFP4 block with this scale code.
pub fn nvfp4_elem_code(x: f32, block_scale_code: u8, tensor_scale: Option<f32>) -> u8 {
    Nvfp4Block::from_code(block_scale_code, tensor_scale).elem_code(x)
}

/// The dequantized value of an E2M1 code in an NVFP4 block with this scale code.
pub fn nvfp4_dequant(code: u8, block_scale_code: u8, tensor_scale: Option<f32>) -> f32 {
    Nvfp4Block::from_code(block_scale_code, tensor_scale).dequant(code)
}
