//! The quantized tensor and its documented byte layout.

use super::pack::{self, BitOrder};
use super::walk::Kernel;

mod wire;
use super::double::DoubleQuant;
use super::{Error, Granularity, Scheme};
use crate::format::codec;
use crate::format::{Code, FloatFormat, Layout, Options};
use crate::Fp32;

/// A quantized tensor: packed codes, per-group scales and zero points, and what they mean.
///
/// # Byte layout
///
/// [`to_bytes`](Self::to_bytes) writes, all little-endian, a 32-byte header then three parts:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `b"LBQT"` |
/// | 4 | 1 | version, `1` |
/// | 5 | 1 | bits per code, `1..=8` |
/// | 6 | 1 | scheme: 0 symmetric, 1 affine, `2 + t` for [`Scheme::Other`]`(t)` |
/// | 7 | 1 | granularity: 0 tensor, 1 row, 2 column, 3 block |
/// | 8 | 8 | element count (`u64`) |
/// | 16 | 8 | `cols` or block size (`u64`, 0 per tensor) |
/// | 24 | 1 | scale format exponent bits |
/// | 25 | 1 | scale format mantissa bits |
/// | 26 | 2 | scale format bias (`i16`) |
/// | 28 | 1 | scale format specials: 0 IEEE, 1 FN, 2 FNUZ, 3 finite, 4 power of two |
/// | 29 | 1 | scale format NaN rule: 0 canonical, 1 payload, 2 payload quieted |
/// | 30 | 1 | bytes per scale code `w`: 1, 2 or 4 |
/// | 31 | 1 | bit 0: bit order of the codes, 0 MSB first, 1 LSB first ([`BitOrder`]); bit 1: a tensor scale follows; bit 2: the scales are double-quantized; bit 3: the value holds non-finite scales (NaN blocks) |
/// | 32 | 0 or 4 | the tensor scale (`f32`), if bit 1 of byte 31 is set ([`Quantized::tensor_scale`]) |
/// | … | `g × w` | scale codes, one per group, in the scale format (an `f32` scale is its bits); or, if bit 2 is set, the [`DoubleQuant`] below |
/// | … | `g` or 0 | zero points (`u8`), one per group, affine only |
/// | … | `ceil(n k / 8)` | codes, packed in the bit order of byte 31 (see [`pack`]) |
///
/// `g` is the number of groups ([`Granularity::groups`]). Codes are in element order
/// whatever the granularity.
///
/// Double-quantized scales (bit 2; the scale format is then `f32`) are stored as
/// the offset (`f32`), the nested block size `b` (`u64`), `ceil(g / b)` second-level absmax
/// (`f32`) and `g` 8-bit codes ([`DoubleQuant`]); reading restores the scales from them.
///
/// A NaN or infinite scale (or tensor scale) is what a block holding a NaN gets under
/// [`NonFinite::Propagate`](super::NonFinite::Propagate), and MX's NaN scale code marks a
/// NaN block; [`to_bytes`](Quantized::to_bytes) then sets bit 3 of byte 31, and
/// [`from_bytes`](Quantized::from_bytes) refuses a non-finite scale in a buffer that does not
/// declare them, so that a corrupted scale is an error rather than a block of NaNs.
#[derive(Clone, Debug)]
pub struct Quantized {
    scheme: Scheme,
    bits: u32,
    order: BitOrder,
    /// A second-level scale of the whole tensor (NVFP4's), multiplied into every value.
    tensor_scale: Option<f32>,
    len: usize,
    granularity: Granularity,
    scale_layout: Layout,
    codes: Vec<u8>,
    /// The scale codes, as the codec produced them; what `to_bytes` writes.
    scale_codes: Vec<u32>,
    /// `scale_codes` decoded, kept so that dequantizing reads a value per group.
    scales: Vec<f32>,
    zero_points: Vec<u8>,
    /// The scales double-quantized; `scales` then holds their restored values.
    double: Option<DoubleQuant>,
}

/// A group's scale: its code in the scale format and that code's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scale {
    pub code: u32,
    pub value: f32,
}

impl Scale {
    /// The scale of format `S` nearest to `raw` (the codec rounds, nearest-even).
    #[inline(always)]
    pub fn store<S: FloatFormat>(raw: f32) -> Self {
        let code = S::encode_f32(raw);
        Scale {
            code: code.to_u64() as u32,
            value: S::decode_f32(code),
        }
    }

    /// [`store`](Self::store), stepped down to the next smaller scale where `qmax × scale`
    /// would overflow `f32` (a group near `f32::MAX`), so that every code dequantizes to a
    /// finite value.
    #[inline(always)]
    pub fn store_bounded<S: FloatFormat>(raw: f32, qmax: f32) -> Self {
        let mut s = Self::store::<S>(raw);
        // A positive scale's code minus one is the next smaller value in every layout; a
        // couple of steps suffice (qmax × scale is within an ulp or two of f32::MAX).
        for _ in 0..4 {
            // A scale the format cannot hold (NaN, infinity) is the caller's error to see.
            if (s.value * qmax).is_finite() || !s.value.is_finite() || !raw.is_finite() || s.code == 0 {
                break;
            }
            s = s.step::<S>(-1);
        }
        s
    }

    /// The neighbouring code `delta` away (±1) in format `S` and its value; the caller keeps
    /// the code within the format.
    #[inline(always)]
    pub fn step<S: FloatFormat>(self, delta: i32) -> Self {
        let code = self.code.wrapping_add_signed(delta);
        Scale {
            code,
            value: S::decode_f32(S::Code::from_u64(u64::from(code))),
        }
    }
}

/// Two values are equal when every stored part is: the scales compare by their codes, so a
/// NaN scale (a propagated NaN block) equals itself.
impl PartialEq for Quantized {
    fn eq(&self, o: &Self) -> bool {
        self.scheme == o.scheme
            && self.bits == o.bits
            && self.order == o.order
            && self.tensor_scale.map(f32::to_bits) == o.tensor_scale.map(f32::to_bits)
            && self.len == o.len
            && self.granularity == o.granularity
            && self.scale_layout == o.scale_layout
            && self.codes == o.codes
            && self.scale_codes == o.scale_codes
            && self.zero_points == o.zero_points
            && self.double == o.double
    }
}

impl Default for Quantized {
    fn default() -> Self {
        Self::empty()
    }
}

impl Quantized {
    /// An empty value (no elements), to pass to [`Quantizer::quantize_into`](super::Quantizer::quantize_into).
    pub const fn empty() -> Self {
        Self {
            scheme: Scheme::Symmetric,
            bits: 8,
            order: BitOrder::MsbFirst,
            tensor_scale: None,
            len: 0,
            granularity: Granularity::PerTensor,
            scale_layout: Fp32::LAYOUT,
            codes: Vec::new(),
            scale_codes: Vec::new(),
            scales: Vec::new(),
            zero_points: Vec::new(),
            double: None,
        }
    }

    /// Assemble a value from its parts, checking that they agree.
    ///
    /// `scales` must already be values of `scale_layout` (they are stored as its codes).
    ///
    /// # Errors
    /// [`Error::InvalidBits`], [`Error::ZeroGroupSize`], [`Error::NotAMultiple`],
    /// [`Error::UnsupportedScaleFormat`], [`Error::UnsupportedScheme`] for
    /// [`Scheme::Other`] tags above 253, [`Error::LengthMismatch`] when a part has the wrong
    /// length (zero points must be empty unless the scheme is affine),
    /// [`Error::CodeOutOfRange`] when a zero point does not fit in `bits`, and
    /// [`Error::ScaleNotInFormat`] for a scale that is not a value of `scale_layout`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        scheme: Scheme,
        bits: u32,
        len: usize,
        granularity: Granularity,
        scale_layout: Layout,
        codes: Vec<u8>,
        scales: Vec<f32>,
        zero_points: Vec<u8>,
    ) -> Result<Self, Error> {
        let scale_codes = scales
            .iter()
            .enumerate()
            .map(|(group, &v)| {
                let code = codec::encode_f64(&scale_layout, f64::from(v), Options::default());
                let back = codec::decode_f32(&scale_layout, code);
                if back.to_bits() == v.to_bits() || (back.is_nan() && v.is_nan()) {
                    Ok(code as u32)
                } else {
                    Err(Error::ScaleNotInFormat { group, scale: v })
                }
            })
            .collect::<Result<Vec<u32>, Error>>();
        Self::checked(
            scheme,
            bits,
            len,
            granularity,
            scale_layout,
            codes,
            scale_codes?,
            scales,
            zero_points,
        )
    }

    /// Assemble a value whose scale codes and values agree, checking everything else.
    #[allow(clippy::too_many_arguments)]
    fn checked(
        scheme: Scheme,
        bits: u32,
        len: usize,
        granularity: Granularity,
        scale_layout: Layout,
        codes: Vec<u8>,
        scale_codes: Vec<u32>,
        scales: Vec<f32>,
        zero_points: Vec<u8>,
    ) -> Result<Self, Error> {
        pack::check_bits(bits)?;
        check_scale_layout(&scale_layout)?;
        scheme.check_tag()?;
        let g = granularity.groups(len)?;
        expect_len(pack::packed_len(bits, len), codes.len())?;
        expect_len(g, scales.len())?;
        let zp = if scheme == Scheme::Affine { g } else { 0 };
        expect_len(zp, zero_points.len())?;
        if let Some(index) = zero_points.iter().position(|&z| bits < 8 && z >> bits != 0) {
            return Err(Error::CodeOutOfRange {
                index,
                code: zero_points[index],
                bits,
            });
        }
        Ok(Self {
            scheme,
            bits,
            order: BitOrder::MsbFirst,
            tensor_scale: None,
            len,
            granularity,
            scale_layout,
            codes,
            scale_codes,
            scales,
            zero_points,
            double: None,
        })
    }

    /// The same value with its scales double-quantized: `double` holds one 8-bit code per
    /// group, and the value's scales become `double`'s restored ones (what dequantizing
    /// uses, as bitsandbytes does). This is how a checkpoint's `absmax`, `nested_absmax`,
    /// `offset` parts are put back together; [`CodebookQuantizer::with_double_quant`]
    /// makes such values directly.
    ///
    /// [`CodebookQuantizer::with_double_quant`]: super::CodebookQuantizer::with_double_quant
    ///
    /// # Errors
    /// [`Error::Incompatible`] unless the scales are `f32` without zero points,
    /// [`Error::LengthMismatch`] unless `double` has one code per group.
    ///
    /// ```
    /// use lowbit::quant::double::DoubleQuant;
    /// use lowbit::quant::{Codebook, CodebookQuantizer, Granularity, Quantizer};
    ///
    /// let x: Vec<f32> = (0..4096).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    /// let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64))?;
    /// let plain = q.quantize(&x)?;
    /// let dq = DoubleQuant::quantize(plain.scales(), 256)?;
    /// let double = plain.clone().with_double_quant(dq)?;
    /// // The same as quantizing with double quantization on.
    /// assert_eq!(double, q.clone().with_double_quant(Some(256))?.quantize(&x)?);
    /// assert!(double.bits_per_element() < plain.bits_per_element());
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    pub fn with_double_quant(mut self, double: DoubleQuant) -> Result<Self, Error> {
        if self.scale_layout != Fp32::LAYOUT || !self.zero_points.is_empty() {
            return Err(Error::Incompatible(
                "double quantization needs f32 scales and no zero points",
            ));
        }
        expect_len(self.scales.len(), double.codes().len())?;
        double.restore_into(&mut self.scales)?;
        for (c, s) in self.scale_codes.iter_mut().zip(&self.scales) {
            *c = s.to_bits();
        }
        self.double = Some(double);
        Ok(self)
    }

    /// The double-quantized scales, if the scales are double-quantized
    /// ([`with_double_quant`](Self::with_double_quant)).
    pub fn double_quant(&self) -> Option<&DoubleQuant> {
        self.double.as_ref()
    }

    /// Whether a scale or the tensor scale is NaN or infinite (a NaN block).
    pub fn has_non_finite_scales(&self) -> bool {
        self.scales.iter().any(|s| !s.is_finite()) || self.tensor_scale.is_some_and(|t| !t.is_finite())
    }

    /// The same value with a second-level scale of the whole tensor (`None`: none), which
    /// every dequantized value is multiplied by (NVFP4's two-level scaling).
    ///
    /// # Errors
    /// [`Error::ScaleOutOfRange`] for a tensor scale that is zero or negative (NaN and
    /// infinity are kept: they are what a propagated non-finite tensor gets).
    pub fn with_tensor_scale(self, tensor_scale: Option<f32>) -> Result<Self, Error> {
        if let Some(t) = tensor_scale {
            if !(t > 0.0 || t.is_nan()) {
                return Err(Error::ScaleOutOfRange { group: 0, scale: t });
            }
        }
        Ok(Self { tensor_scale, ..self })
    }

    /// The second-level scale of the whole tensor, if there is one.
    pub fn tensor_scale(&self) -> Option<f32> {
        self.tensor_scale
    }

    /// The same value with its codes read in another bit order (the codes are not changed:
    /// say how the bytes you passed to [`from_parts`](Self::from_parts) are laid out).
    pub fn with_bit_order(self, order: BitOrder) -> Self {
        Self { order, ..self }
    }

    /// Take the parts apart: `(codes, scales, zero_points)`.
    pub fn into_parts(self) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
        (self.codes, self.scales, self.zero_points)
    }

    /// Reset to describe `len` elements quantized by `k`, resizing the parts (allocating only
    /// when a part grows past its capacity). Contents are unspecified until the caller fills
    /// them.
    ///
    /// # Errors
    /// Those of [`Granularity::groups`].
    pub(crate) fn reset<K: Kernel>(&mut self, k: &K, len: usize) -> Result<(), Error> {
        let groups = k.granularity().groups(len)?;
        self.scheme = k.scheme();
        self.bits = k.bits();
        self.order = k.order();
        self.tensor_scale = k.tensor_scale();
        self.len = len;
        self.granularity = k.granularity();
        self.scale_layout = k.layout();
        self.codes.resize(pack::packed_len(self.bits, len), 0);
        self.scale_codes.resize(groups, 0);
        self.scales.resize(groups, 0.0);
        self.zero_points
            .resize(if self.scheme == Scheme::Affine { groups } else { 0 }, 0);
        self.double = None;
        Ok(())
    }

    /// Mutable parts for the quantizers: the packed codes, and where each group's scale and
    /// zero point go.
    pub(crate) fn parts_mut(&mut self) -> (&mut [u8], GroupParams<'_>) {
        (
            &mut self.codes,
            GroupParams {
                scale_codes: &mut self.scale_codes,
                scales: &mut self.scales,
                zero_points: &mut self.zero_points,
            },
        )
    }

    /// For kernels that write `f32` scales directly: the packed codes and the scale values.
    /// Call [`f32_scales_written`](Self::f32_scales_written) afterwards.
    pub(crate) fn f32_parts_mut(&mut self) -> (&mut [u8], &mut [f32]) {
        debug_assert_eq!(self.scale_layout, Fp32::LAYOUT);
        (&mut self.codes, &mut self.scales)
    }

    /// Set the scale codes of `f32` scales written through [`f32_parts_mut`](Self::f32_parts_mut):
    /// an `f32`'s code is its bit pattern.
    pub(crate) fn f32_scales_written(&mut self) {
        for (c, s) in self.scale_codes.iter_mut().zip(&self.scales) {
            *c = s.to_bits();
        }
    }

    /// The scheme that produced the codes.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// Bits per code.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// How the codes fill each byte ([`pack`]).
    pub fn bit_order(&self) -> BitOrder {
        self.order
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// How elements are grouped.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }
    /// The storage format of the scales.
    pub fn scale_layout(&self) -> Layout {
        self.scale_layout
    }
    /// Packed codes, in [`bit_order`](Self::bit_order) (see [`pack`]).
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }
    /// One scale per group, already rounded to the scale format (exactly the stored values).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    /// One scale code per group in the scale format ([`scale_layout`](Self::scale_layout)),
    /// right-aligned; these are the bytes [`to_bytes`](Self::to_bytes) writes.
    pub fn scale_codes(&self) -> &[u32] {
        &self.scale_codes
    }
    /// One zero point per group (affine only; empty otherwise).
    pub fn zero_points(&self) -> &[u8] {
        &self.zero_points
    }
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.scales.len()
    }

    /// The codes unpacked, one per `u8` (two's complement for [`Scheme::Symmetric`]).
    pub fn unpacked_codes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        pack::unpack_ordered(self.order, self.bits, &self.codes, &mut out);
        out
    }

    /// Storage size in bits per element, counting the packed codes, each scale at its
    /// format's width (double-quantized scales: their [`DoubleQuant::bytes`]) and each zero
    /// point as a byte (the header is not counted).
    ///
    /// ```
    /// use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer};
    /// use lowbit::Fp16;
    /// let q = AbsmaxQuantizer::<Fp16>::with_scale_format(4, Granularity::PerBlock(64))?;
    /// let z = q.quantize(&[0.5; 128])?;
    /// assert_eq!(z.bits_per_element(), 4.25); // 4 + 16 / 64
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    pub fn bits_per_element(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let scale_bits = match &self.double {
            Some(d) => d.bytes() * 8,
            None => self.scales.len() * self.scale_layout.bits() as usize,
        };
        let bits = self.codes.len() * 8 + scale_bits + self.zero_points.len() * 8;
        bits as f64 / self.len as f64
    }
}

/// Checks that a buffer has the expected length.
pub(crate) fn check_len(_what: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    expect_len(expected, actual)
}

pub(crate) fn expect_len(expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch { expected, actual })
    }
}

pub(crate) fn check_scale_layout(l: &Layout) -> Result<(), Error> {
    if l.bits() > 32 || !in_f32_range(l) {
        Err(Error::UnsupportedScaleFormat { bits: l.bits() })
    } else {
        Ok(())
    }
}

/// Whether every value of the layout is an `f32` (its top binade at most `2^128`, its
/// smallest step at least `2^-149`).
const fn in_f32_range(l: &Layout) -> bool {
    let top = (1i32 << l.exp_bits) - 1 - l.bias;
    let bottom = 1 - l.bias - l.man_bits as i32;
    top <= 128 && bottom >= -149
}

/// Where a quantizer writes each group's scale and zero point.
pub(crate) struct GroupParams<'a> {
    scale_codes: &'a mut [u32],
    scales: &'a mut [f32],
    zero_points: &'a mut [u8],
}

impl GroupParams<'_> {
    /// Set group `g`'s scale, and its zero point if the scheme has them.
    #[inline(always)]
    pub fn set(&mut self, g: usize, scale: Scale, zero_point: u8) {
        self.scale_codes[g] = scale.code;
        self.scales[g] = scale.value;
        if let Some(z) = self.zero_points.get_mut(g) {
            *z = zero_point;
        }
    }

    /// Group `g`'s scale value and zero point (0 without zero points).
    #[inline(always)]
    pub fn get(&self, g: usize) -> (f32, u8) {
        (self.scales[g], self.zero_points.get(g).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests;
