//! Fake quantization for quantization-aware training (QAT): quantize then dequantize in the
//! forward pass, with the straight-through estimator (STE) and the LSQ scale gradient in the
//! backward pass.
//!
//! Everything is a pure function over slices, so any autodiff framework can call it: the
//! forward writes `y`, the backward takes the upstream gradient `dy` and writes `dx`, and the
//! LSQ variant also returns the gradients of the scale (and zero point).
//!
//! # Integer formats
//!
//! Exactly `torch.fake_quantize_per_tensor_affine` and its learnable variant
//! (`torch._fake_quantize_learnable_per_tensor_affine`), with `inv = 1 / scale` in f32:
//!
//! ```text
//! r  = round_half_even(x * inv) + z          (the unclamped code)
//! y  = (clamp(r, qmin, qmax) - z) * scale
//! dx = dy            where qmin <= r <= qmax,   0 where r was clipped       (STE)
//! ds = dy * ((clamp(r) - z) * scale - x) * inv   where r is in range (= round(x/s) - x/s)
//!      dy * (qmin - z) or dy * (qmax - z)        where r was clipped below / above
//! dz = 0 in range, -dy * scale where clipped
//! ```
//!
//! `ds` and `dz` are summed over the slice (in f64) and multiplied by `grad_factor`; LSQ
//! (Esser et al., 2020) uses `grad_factor = 1 / sqrt(n · qmax)` ([`lsq_grad_factor`]).
//!
//! # Float formats
//!
//! For any [`FloatFormat`] `F` with a per-tensor scale: `y = decode(encode_sat(x / scale)) *
//! scale`, rounding to nearest even and saturating at `±F::MAX` (the FP8 training recipes'
//! cast). The STE passes the gradient where `|x / scale| <= F::MAX` and stops it where the value
//! saturated; the LSQ scale gradient is `Q(v) - v` with `v = x / scale` in range and
//! `±F::MAX` where clipped.
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::fake_quant::{self, IntParams};
//!
//! let p = IntParams::symmetric(4, 0.5)?; // codes -7..=7, step 0.5
//! let x = [0.26, -1.1, 9.0];
//! let mut y = [0.0; 3];
//! fake_quant::forward(&x, &p, &mut y)?;
//! assert_eq!(y, [0.5, -1.0, 3.5]); // 9.0 clipped at 7 * 0.5
//! let mut dx = [0.0; 3];
//! fake_quant::backward(&x, &[1.0; 3], &p, &mut dx)?;
//! assert_eq!(dx, [1.0, 1.0, 0.0]); // the STE stops the gradient of the clipped value
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::{check_finite, check_len, Error};
use crate::format::{FloatFormat, Options, Overflow};

/// Parameters of integer fake quantization: torch's `scale`, `zero_point`, `quant_min`,
/// `quant_max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntParams {
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
}

impl IntParams {
    /// Any integer grid: codes `qmin..=qmax`, `zero_point` among them, `scale > 0`.
    ///
    /// The grid must be representable: `1 / scale` finite in `f32` (the forward pass
    /// multiplies by it: a scale below about `2.9e-39` made `0 · ∞` a NaN), and the grid's ends
    /// `(qmin - zero_point) · scale` and `(qmax - zero_point) · scale` finite.
    ///
    /// # Errors
    /// [`Error::Parameter`] when `scale` is not a positive finite number with a finite
    /// reciprocal, `qmin >= qmax`, the zero point lies outside `qmin..=qmax`, or an end of the
    /// grid overflows `f32`.
    pub fn new(scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> Result<Self, Error> {
        check_scale(scale)?;
        if !(1.0 / scale).is_finite() {
            return Err(Error::Parameter {
                name: "scale",
                value: f64::from(scale),
                why: "its reciprocal overflows f32",
            });
        }
        if qmin >= qmax {
            return Err(Error::Parameter {
                name: "quant_min",
                value: f64::from(qmin),
                why: "must be below quant_max",
            });
        }
        if zero_point < qmin || zero_point > qmax {
            return Err(Error::Parameter {
                name: "zero_point",
                value: f64::from(zero_point),
                why: "must lie in quant_min..=quant_max",
            });
        }
        let ends = [qmin, qmax].map(|q| (q as f32 - zero_point as f32) * scale);
        if !ends.iter().all(|e| e.is_finite()) {
            return Err(Error::Parameter {
                name: "scale",
                value: f64::from(scale),
                why: "the grid's ends (q - zero_point) * scale overflow f32",
            });
        }
        Ok(IntParams {
            scale,
            zero_point,
            qmin,
            qmax,
        })
    }

    /// Symmetric signed `bits`-bit codes `±(2^(bits-1) - 1)` (the narrow range of the absmax
    /// quantizer, so 0 is in the middle), zero point 0. For torch's full `qint8` range use
    /// [`new`](Self::new)`(scale, 0, -128, 127)`.
    ///
    /// # Errors
    /// [`Error::Bits`] unless `2 <= bits <= 16`; [`Error::Parameter`] for a bad scale.
    pub fn symmetric(bits: u32, scale: f32) -> Result<Self, Error> {
        check_bits(bits, 2)?;
        let q = (1i32 << (bits - 1)) - 1;
        Self::new(scale, 0, -q, q)
    }

    /// Affine (asymmetric) unsigned `bits`-bit codes `0..=2^bits - 1` with a zero point.
    ///
    /// # Errors
    /// [`Error::Bits`] unless `1 <= bits <= 16`; [`Error::Parameter`] for a bad scale or a zero
    /// point outside the codes.
    pub fn affine(bits: u32, scale: f32, zero_point: i32) -> Result<Self, Error> {
        check_bits(bits, 1)?;
        Self::new(scale, zero_point, 0, (1i32 << bits) - 1)
    }

    /// The grid of the crate's affine parameters (a calibrated range's, torch.ao's or ONNX
    /// Runtime's, [`QParams`](crate::quant::QParams)) over the codes of `range`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// use lowbit::calib::Range;
    /// use lowbit::quant::QRange;
    /// use lowbit::scheme::fake_quant::IntParams;
    ///
    /// let p = Range { min: -1.0, max: 3.0 }.affine_uint8()?;
    /// let grid = IntParams::from_qparams(p, QRange::QUINT8)?;
    /// assert_eq!((grid.zero_point(), grid.qmax()), (64, 255));
    /// assert_eq!(grid.qparams(), p);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_qparams(p: crate::quant::QParams, range: crate::quant::QRange) -> Result<Self, Error> {
        Self::new(p.scale, p.zero_point, range.min(), range.max())
    }

    /// The scale and zero point.
    pub fn qparams(&self) -> crate::quant::QParams {
        crate::quant::QParams {
            scale: self.scale,
            zero_point: self.zero_point,
        }
    }

    /// The scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }
    /// The zero point.
    pub fn zero_point(&self) -> i32 {
        self.zero_point
    }
    /// The smallest code.
    pub fn qmin(&self) -> i32 {
        self.qmin
    }
    /// The largest code.
    pub fn qmax(&self) -> i32 {
        self.qmax
    }

    /// The unclamped code `round_half_even(x * (1/scale)) + zero_point`, as f64 (exact).
    #[inline]
    fn code(&self, x: f32, inv: f32) -> f64 {
        f64::from((x * inv).round_ties_even()) + f64::from(self.zero_point)
    }
}

fn check_scale(scale: f32) -> Result<(), Error> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::Parameter {
            name: "scale",
            value: f64::from(scale),
            why: "must be a positive finite number",
        });
    }
    Ok(())
}

fn check_bits(bits: u32, min: u32) -> Result<(), Error> {
    if bits < min || bits > 16 {
        return Err(Error::Bits { bits, min, max: 16 });
    }
    Ok(())
}

/// Gradients of a learnable range (LSQ), summed over the slice and scaled by `grad_factor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LsqGrad {
    /// `∂L/∂scale`.
    pub scale: f32,
    /// `∂L/∂zero_point` (0 for float formats).
    pub zero_point: f32,
}

/// LSQ's gradient scale `1 / sqrt(n · qmax)` for a tensor of `n` elements (Esser et al.).
/// Returns 1 when `n` or `qmax` is 0.
pub fn lsq_grad_factor(n: usize, qmax: u32) -> f32 {
    let d = n as f64 * f64::from(qmax);
    if d == 0.0 {
        1.0
    } else {
        (1.0 / d.sqrt()) as f32
    }
}

/// Integer fake quantization of `x` into `y`.
///
/// # Errors
/// [`Error::Shape`] when `y.len() != x.len()`; [`Error::NonFinite`] for a NaN or infinity in `x`.
pub fn forward(x: &[f32], p: &IntParams, y: &mut [f32]) -> Result<(), Error> {
    check_len("y", x.len(), y.len())?;
    check_finite(x, "x")?;
    let inv = 1.0 / p.scale;
    // Clamping `x · inv` to the integer bounds before rounding gives the same codes as rounding
    // then clamping, and keeps |v| < 2^17, where adding and subtracting 1.5 · 2^23 rounds to
    // nearest even exactly (no libm call, so the loop vectorises).
    let z = p.zero_point as f32;
    let (lo, hi) = (p.qmin as f32 - z, p.qmax as f32 - z);
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    for (y, &x) in y.iter_mut().zip(x) {
        let v = (x * inv).clamp(lo, hi);
        let q = (v + MAGIC) - MAGIC;
        *y = q * p.scale;
    }
    Ok(())
}

/// [`forward`], returning how many values were clipped (their code fell outside the range).
pub(crate) fn forward_counting_clipped(x: &[f32], p: &IntParams, y: &mut [f32]) -> Result<usize, Error> {
    check_len("y", x.len(), y.len())?;
    check_finite(x, "x")?;
    let inv = 1.0 / p.scale;
    let (lo, hi, z) = (f64::from(p.qmin), f64::from(p.qmax), f64::from(p.zero_point));
    let mut clipped = 0;
    for (y, &x) in y.iter_mut().zip(x) {
        let r = p.code(x, inv);
        let q = r.clamp(lo, hi);
        clipped += usize::from(q != r);
        *y = (q - z) as f32 * p.scale;
    }
    Ok(clipped)
}

/// Straight-through backward of [`forward`]: `dx = dy` where the code was in range, else 0.
///
/// # Errors
/// [`Error::Shape`] when `dy` or `dx` is not as long as `x`; [`Error::NonFinite`] for `x`.
pub fn backward(x: &[f32], dy: &[f32], p: &IntParams, dx: &mut [f32]) -> Result<(), Error> {
    check_len("dy", x.len(), dy.len())?;
    check_len("dx", x.len(), dx.len())?;
    check_finite(x, "x")?;
    let inv = 1.0 / p.scale;
    let (lo, hi) = (f64::from(p.qmin), f64::from(p.qmax));
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        let r = p.code(x, inv);
        *dx = if r >= lo && r <= hi { dy } else { 0.0 };
    }
    Ok(())
}

/// Learnable-range backward (LSQ): writes the STE `dx` and returns the scale and zero-point
/// gradients, summed and multiplied by `grad_factor` (see the module docs for the formulas).
///
/// # Errors
/// As [`backward`].
pub fn backward_lsq(x: &[f32], dy: &[f32], p: &IntParams, grad_factor: f32, dx: &mut [f32]) -> Result<LsqGrad, Error> {
    check_len("dy", x.len(), dy.len())?;
    check_len("dx", x.len(), dx.len())?;
    check_finite(x, "x")?;
    let inv = 1.0 / p.scale;
    let (lo, hi, z) = (f64::from(p.qmin), f64::from(p.qmax), f64::from(p.zero_point));
    let (mut ds, mut dz) = (0f64, 0f64);
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        let r = p.code(x, inv);
        if r < lo || r > hi {
            *dx = 0.0;
            let edge = if r < lo { lo } else { hi };
            ds += f64::from(dy) * (edge - z);
            dz -= f64::from(dy) * f64::from(p.scale);
        } else {
            *dx = dy;
            let xq = (r - z) as f32 * p.scale;
            ds += f64::from(dy) * f64::from((xq - x) * inv);
        }
    }
    let g = f64::from(grad_factor);
    Ok(LsqGrad {
        scale: (ds * g) as f32,
        zero_point: (dz * g) as f32,
    })
}

const SATURATE: Options = Options::rounding(crate::format::Rounding::NearestEven).with_overflow(Overflow::Saturate);

/// Float-format fake quantization: `y = decode(encode_saturating(x / scale)) * scale` in `F`.
///
/// # Errors
/// [`Error::Shape`] when `y.len() != x.len()`; [`Error::NonFinite`] for `x`;
/// [`Error::Parameter`] when `scale` is not a positive finite number.
///
/// ```
/// use lowbit::{E4M3, scheme::fake_quant};
/// let mut y = [0.0; 3];
/// fake_quant::forward_float::<E4M3>(&[0.3, 1000.0, -0.01], 1.0, &mut y)?;
/// assert_eq!(y, [0.3125, 448.0, -0.009765625]);
/// # Ok::<(), lowbit::SchemeError>(())
/// ```
pub fn forward_float<F: FloatFormat>(x: &[f32], scale: f32, y: &mut [f32]) -> Result<(), Error> {
    check_scale(scale)?;
    check_len("y", x.len(), y.len())?;
    check_finite(x, "x")?;
    // Through the format's slice codec (its SIMD paths), a stack chunk at a time.
    const CHUNK: usize = 1024;
    let mut codes = [F::Code::default(); CHUNK];
    for (xs, ys) in x.chunks(CHUNK).zip(y.chunks_mut(CHUNK)) {
        let n = xs.len();
        for (y, &x) in ys.iter_mut().zip(xs) {
            *y = x / scale;
        }
        F::encode_slice_with(ys, &mut codes[..n], SATURATE)?;
        F::decode_slice(&codes[..n], ys)?;
        for y in ys.iter_mut() {
            *y *= scale;
        }
    }
    Ok(())
}

/// Straight-through backward of [`forward_float`]: `dx = dy` where `|x / scale| <= F::MAX`.
///
/// # Errors
/// As [`forward_float`], for `dy` and `dx`.
pub fn backward_float<F: FloatFormat>(x: &[f32], dy: &[f32], scale: f32, dx: &mut [f32]) -> Result<(), Error> {
    check_scale(scale)?;
    check_len("dy", x.len(), dy.len())?;
    check_len("dx", x.len(), dx.len())?;
    check_finite(x, "x")?;
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        *dx = if f64::from((x / scale).abs()) <= F::MAX {
            dy
        } else {
            0.0
        };
    }
    Ok(())
}

/// Learnable-scale backward of [`forward_float`] (LSQ): the STE `dx`, and
/// `∂L/∂scale = grad_factor · Σ dy · (Q(v) - v)` in range, `dy · ±F::MAX` where saturated.
///
/// # Errors
/// As [`backward_float`].
pub fn backward_float_lsq<F: FloatFormat>(
    x: &[f32],
    dy: &[f32],
    scale: f32,
    grad_factor: f32,
    dx: &mut [f32],
) -> Result<LsqGrad, Error> {
    check_scale(scale)?;
    check_len("dy", x.len(), dy.len())?;
    check_len("dx", x.len(), dx.len())?;
    check_finite(x, "x")?;
    let mut ds = 0f64;
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        let v = x / scale;
        if f64::from(v.abs()) <= F::MAX {
            *dx = dy;
            let q = F::decode_f32(F::encode_f32_with(v, SATURATE));
            ds += f64::from(dy) * (f64::from(q) - f64::from(v));
        } else {
            *dx = 0.0;
            ds += f64::from(dy) * F::MAX.copysign(f64::from(v));
        }
    }
    Ok(LsqGrad {
        scale: (ds * f64::from(grad_factor)) as f32,
        zero_point: 0.0,
    })
}

/// MX fake quantization (MXFP8, MXFP6, MXFP4, MXINT8) for QAT: `y` gets the values an MX
/// round trip gives, one pass, no packed buffer ([`MxQuantizer::fake_quantize`](crate::quant::mx::MxQuantizer::fake_quantize)). Gradients
/// pass straight through ([`backward`]'s STE applies with the block's range).
///
/// # Errors
/// Those of [`MxQuantizer::fake_quantize`](crate::quant::mx::MxQuantizer::fake_quantize).
pub fn forward_mx(q: &crate::quant::mx::MxQuantizer, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(q.fake_quantize(x, y)?)
}

/// NVFP4 fake quantization ([`Nvfp4Quantizer::fake_quantize`](crate::quant::mx::Nvfp4Quantizer::fake_quantize)).
///
/// # Errors
/// Those of `Nvfp4Quantizer::fake_quantize`.
pub fn forward_nvfp4(q: &crate::quant::mx::Nvfp4Quantizer, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(q.fake_quantize(x, y)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{E2M1, E4M3};

    #[test]
    fn torch_rounding_and_clipping() {
        // Ties go to even, as nearbyint does: 0.25/0.5 = 0.5 -> 0, 0.75/0.5 = 1.5 -> 2.
        let p = IntParams::affine(8, 0.5, 10).unwrap();
        let mut y = [0.0; 4];
        forward(&[0.25, 0.75, -5.0, -6.0], &p, &mut y).unwrap();
        assert_eq!(y, [0.0, 1.0, -5.0, -5.0]); // code 0 is -10 * 0.5
        let mut dx = [0.0; 4];
        backward(&[0.25, 0.75, -5.0, -6.0], &[2.0; 4], &p, &mut dx).unwrap();
        assert_eq!(dx, [2.0, 2.0, 2.0, 0.0]);
    }

    /// The vectorised forward equals round-then-clamp through f64 (`IntParams::code`), ties and
    /// huge values included.
    #[test]
    fn forward_matches_round_then_clamp() {
        for p in [
            IntParams::symmetric(8, 0.5).unwrap(),
            IntParams::affine(8, 0.37, 131).unwrap(),
            IntParams::symmetric(16, 1.0).unwrap(),
            IntParams::affine(16, 0.25, 65535).unwrap(),
        ] {
            let mut x: Vec<f32> = (-300_000..300_000).map(|i| i as f32 * 0.25 * p.scale()).collect();
            x.extend([1e30, -1e30, f32::MAX, -f32::MAX, 1e-40, -0.0, 0.0]);
            let mut y = vec![0.0; x.len()];
            forward(&x, &p, &mut y).unwrap();
            let inv = 1.0 / p.scale();
            let (lo, hi, z) = (f64::from(p.qmin()), f64::from(p.qmax()), f64::from(p.zero_point()));
            for (&x, &y) in x.iter().zip(&y) {
                let q = p.code(x, inv).clamp(lo, hi);
                assert_eq!(y.to_bits(), ((q - z) as f32 * p.scale()).to_bits(), "{x}");
            }
        }
    }

    /// The chunked slice path equals the per-element definition, for fast and slow formats.
    #[test]
    fn forward_float_matches_the_definition() {
        fn check<F: FloatFormat>(scale: f32) {
            let x: Vec<f32> = (0..5000u32)
                .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)) % 1e4)
                .filter(|v| v.is_finite())
                .chain([0.0, -0.0, 1e30, -1e30])
                .collect();
            let mut y = vec![0.0; x.len()];
            forward_float::<F>(&x, scale, &mut y).unwrap();
            for (&x, &y) in x.iter().zip(&y) {
                let want = F::decode_f32(F::encode_f32_with(x / scale, SATURATE)) * scale;
                assert_eq!(y.to_bits(), want.to_bits(), "{} {x}", F::NAME);
            }
        }
        check::<E4M3>(0.37);
        check::<crate::E5M2>(3.0);
        check::<E2M1>(0.01);
        check::<crate::Bf16>(1.0);
        check::<crate::Fp16>(0.5);
        check::<crate::E3M2>(2.5);
    }

    #[test]
    fn lsq_edges() {
        let p = IntParams::symmetric(3, 1.0).unwrap(); // -3..=3
        let mut dx = [0.0; 3];
        let g = backward_lsq(&[0.4, 10.0, -10.0], &[1.0, 1.0, 2.0], &p, 1.0, &mut dx).unwrap();
        // 0.4: round 0 - 0.4 = -0.4; 10: qmax 3; -10: 2 * qmin = -6.
        assert!((g.scale - (-0.4 + 3.0 - 6.0)).abs() < 1e-6, "{g:?}");
        assert_eq!(g.zero_point, -3.0);
        assert_eq!(dx, [1.0, 0.0, 0.0]);
    }

    #[test]
    fn float_saturates_and_masks() {
        let x = [5.0, 7.0, -100.0, 0.2];
        let mut y = [0.0; 4];
        forward_float::<E2M1>(&x, 1.0, &mut y).unwrap();
        assert_eq!(y, [4.0, 6.0, -6.0, 0.0]);
        let mut dx = [0.0; 4];
        let g = backward_float_lsq::<E2M1>(&x, &[1.0; 4], 1.0, 1.0, &mut dx).unwrap();
        assert_eq!(dx, [1.0, 0.0, 0.0, 1.0]);
        assert!((g.scale - ((4.0 - 5.0) + 6.0 - 6.0 + (0.0 - 0.2))).abs() < 1e-6);
        forward_float::<E4M3>(&[448.0 * 3.0], 3.0, &mut y[..1]).unwrap();
        assert_eq!(y[0], 1344.0);
    }

    #[test]
    fn bad_parameters() {
        assert!(matches!(IntParams::symmetric(1, 1.0), Err(Error::Bits { .. })));
        assert!(matches!(IntParams::symmetric(17, 1.0), Err(Error::Bits { .. })));
        assert!(matches!(IntParams::affine(8, 0.0, 0), Err(Error::Parameter { .. })));
        assert!(matches!(IntParams::affine(8, 1.0, 256), Err(Error::Parameter { .. })));
        assert!(matches!(IntParams::new(1.0, 0, 5, 5), Err(Error::Parameter { .. })));
        let p = IntParams::symmetric(8, 1.0).unwrap();
        assert!(matches!(
            forward(&[1.0, f32::NAN], &p, &mut [0.0; 2]),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(forward(&[1.0], &p, &mut [0.0; 2]), Err(Error::Shape { .. })));
        assert!(matches!(
            forward_float::<E4M3>(&[1.0], -1.0, &mut [0.0]),
            Err(Error::Parameter { .. })
        ));
    }

    /// A scale whose reciprocal overflows made `0 · ∞` a NaN in the forward pass; a scale
    /// whose grid ends overflow gave infinities. Both are refused; the smallest and largest
    /// usable scales give finite results.
    #[test]
    fn scales_at_the_ends_of_f32() {
        for scale in [1e-45, f32::MIN_POSITIVE / 8.0, 2.9e-39] {
            assert!(matches!(
                IntParams::symmetric(8, scale),
                Err(Error::Parameter { name: "scale", .. })
            ));
        }
        assert!(IntParams::symmetric(8, f32::MAX / 2.0).is_err()); // 127 * scale overflows
        assert!(IntParams::affine(8, f32::MAX / 200.0, 0).is_err()); // 255 * scale
        let x = [0.0, -0.0, 1e-40, -3.0, f32::MAX, -f32::MAX];
        for p in [
            IntParams::symmetric(8, 3e-39).unwrap(),
            IntParams::symmetric(8, f32::MAX / 128.0).unwrap(),
            IntParams::affine(8, f32::MAX / 256.0, 0).unwrap(),
            IntParams::new(f32::MIN_POSITIVE, -5, -128, 127).unwrap(),
        ] {
            let mut y = [0.0; 6];
            forward(&x, &p, &mut y).unwrap();
            assert!(y.iter().all(|v| v.is_finite()), "{p:?}: {y:?}");
            let mut dx = [0.0; 6];
            let g = backward_lsq(&x, &[1.0; 6], &p, 1.0, &mut dx).unwrap();
            assert!(g.scale.is_finite() && g.zero_point.is_finite(), "{p:?}: {g:?}");
            assert_eq!(forward_counting_clipped(&x, &p, &mut y).map(|_| ()), Ok(()));
            assert!(y.iter().all(|v| v.is_finite()));
        }
        let p = IntParams::symmetric(8, 3e-39).unwrap();
        let mut y = [1.0];
        forward(&[0.0], &p, &mut y).unwrap();
        assert_eq!(y, [0.0]);
    }
}
