//! Quantization schemes built on the formats, quantizers and calibrators: SmoothQuant,
//! quantization-aware training (fake quantization with straight-through and LSQ gradients),
//! logarithmic / binary / ternary quantization, and AMP loss scaling with f32 master weights.
//!
//! | module | what | reference |
//! |---|---|---|
//! | [`smooth`] | SmoothQuant: move activation outliers into the weights | Xiao et al. 2022, `smoothquant/smooth.py` |
//! | [`fake_quant`] | fake quantization, STE and LSQ backward, over plain slices | `torch.fake_quantize_per_tensor_affine`, `_fake_quantize_learnable_*` |
//! | [`log2`] | power-of-two values `±2^e`, `k`-bit exponent code relative to the max | Miyashita et al. 2016 |
//! | [`binary`] | `sign(x)·mean|x|` per channel, 1 bit per element | XNOR-Net |
//! | [`ternary`] | `{-α, 0, α}` with threshold `0.7·mean|x|`, 2 bits per element | TWN |
//! | [`amp`] | dynamic loss scaling, inf/NaN search in f16/bf16 codes, f32 master weights | `torch.amp.GradScaler` |
//! | [`ptq`] | recipes (layer name or glob → scheme), weight quantization, activation calibration, report | — |
//! | [`tflite`] | the TFLite converter's modes as recipes: dynamic range, float16, full integer, 16×8 | TFLite quantization spec |
//!
//! Everything here is a pure function of its inputs: no global state, no I/O, no randomness.
//!
//! # Examples
//!
//! SmoothQuant keeps `X·Wᵀ` and flattens the activation's outlier channel:
//!
//! ```
//! use lowbit::scheme::smooth::SmoothQuant;
//!
//! // X: 2 tokens × 3 input channels (channel 1 is an outlier); W: 2 outputs × 3 inputs.
//! let mut x = vec![0.5, 40.0, -0.2, -0.3, -35.0, 0.4];
//! let mut w = vec![0.1, 0.02, -0.3, 0.2, -0.01, 0.05];
//! let act_max = lowbit::scheme::smooth::column_absmax(&x, 3)?;
//! let s = SmoothQuant::default().scales(&act_max, &w)?;
//! lowbit::scheme::smooth::apply(&mut x, &mut w, &s)?;
//! let spread = |m: &[f32]| m.iter().cloned().fold(0f32, f32::max) / m.iter().cloned().fold(f32::MAX, f32::min);
//! assert!(spread(&lowbit::scheme::smooth::column_absmax(&x, 3)?) < spread(&act_max));
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

/// The accessors and `dequantize` of a per-channel tensor with fields `packed`, `alphas` and
/// `len`, dequantized by the walker kernel `$kernel` over rows ([`binary`], [`ternary`]).
macro_rules! per_channel_tensor {
    ($kernel:ident, $packed_doc:literal) => {
        /// Number of elements.
        pub fn len(&self) -> usize {
            self.len
        }
        /// Whether there are no elements.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
        /// The per-channel scales `α`.
        pub fn alphas(&self) -> &[f32] {
            &self.alphas
        }
        #[doc = $packed_doc]
        pub fn packed(&self) -> &[u8] {
            &self.packed
        }
        /// Storage in bytes: the codes and one f32 scale per channel.
        pub fn size_bytes(&self) -> usize {
            self.packed.len() + 4 * self.alphas.len()
        }
        /// Bits per element including the scales.
        pub fn bits_per_element(&self) -> f64 {
            if self.len == 0 {
                return 0.0;
            }
            8.0 * self.size_bytes() as f64 / self.len as f64
        }
        /// Dequantize into `out`.
        ///
        /// # Errors
        /// [`Error::Shape`] when `out.len() != self.len()`.
        pub fn dequantize(&self, out: &mut [f32]) -> Result<(), Error> {
            check_len("out", self.len, out.len())?;
            if self.len == 0 {
                return Ok(());
            }
            let k = $kernel::new(Granularity::PerRow {
                cols: self.len / self.alphas.len(),
            })?;
            walk::dequantize_slices(&k, &self.packed, &self.alphas, &[], out);
            Ok(())
        }
    };
}

pub mod amp;
pub mod binary;
pub mod fake_quant;
pub mod log2;
pub mod ptq;
pub mod smooth;
pub mod ternary;
pub mod tflite;

/// Errors of the scheme module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two buffers or shapes that must agree do not.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Which argument or dimension.
        what: &'static str,
        /// The length the other arguments imply.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A tensor of `len` elements cannot be split into `parts` equal rows or channels.
    #[error("{len} elements cannot be split into {parts} equal channels")]
    NotDivisible {
        /// Elements in the tensor.
        len: usize,
        /// Channels asked for.
        parts: usize,
    },
    /// A bit width outside what the scheme supports.
    #[error("bit width {bits} is outside {min}..={max}")]
    Bits {
        /// The width asked for.
        bits: u32,
        /// Smallest supported width.
        min: u32,
        /// Largest supported width.
        max: u32,
    },
    /// A parameter outside its domain (a negative scale, an alpha outside `[0, 1]`, ...).
    #[error("parameter {name} = {value} is invalid: {why}")]
    Parameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must satisfy.
        why: &'static str,
    },
    /// A NaN or infinity in an input that must be finite.
    #[error("non-finite value in {what} at index {index}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// Index of the first non-finite element.
        index: usize,
    },
    /// A layer name no rule of a recipe (or no tensor of a model) matches.
    #[error("unknown layer {name:?}")]
    UnknownLayer {
        /// The name looked up.
        name: String,
    },
    /// An activation range was asked for before any calibration data arrived.
    #[error("no calibration data for layer {layer:?}")]
    EmptyCalibration {
        /// The layer.
        layer: String,
    },
    /// A calibration state (or another shard's calibration) made with other activation rules
    /// than the recipe's: other patterns, calibrators, methods, bit widths, symmetry or
    /// qparams flavour.
    #[error("the calibration was made with other activation rules than this recipe's")]
    RecipeMismatch,
    /// A layer calibrated by a [`ptq::CalibratorKind::Custom`] calibrator, which a
    /// calibration cannot write to bytes, read back or merge (its concrete type is unknown).
    #[error("layer {layer:?} has a custom calibrator, which cannot be serialised or merged")]
    CustomCalibrator {
        /// The layer.
        layer: String,
    },
    /// An error from the float formats.
    #[error(transparent)]
    Format(#[from] crate::format::Error),
    /// An error from a quantizer.
    #[error(transparent)]
    Quant(#[from] crate::quant::Error),
    /// An error from a calibrator.
    #[error(transparent)]
    Calib(#[from] crate::calib::Error),
}

/// First index of a non-finite value, as an [`Error::NonFinite`] naming `what`.
///
/// The common all-finite case is a branch-free OR over the exponent bits (it vectorises); the
/// index is searched for only when there is one.
pub(crate) fn check_finite(x: &[f32], what: &'static str) -> Result<(), Error> {
    let bad = x.chunks(1024).any(|c| {
        c.iter()
            .fold(0u32, |acc, v| acc | u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000))
            != 0
    });
    if !bad {
        return Ok(());
    }
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { what, index }),
        None => Ok(()),
    }
}

pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Shape { what, expected, got })
    }
}

/// Split `len` elements into `channels` rows, or fail.
pub(crate) fn row_len(len: usize, channels: usize) -> Result<usize, Error> {
    if channels == 0 || !len.is_multiple_of(channels) {
        return Err(Error::NotDivisible { len, parts: channels });
    }
    Ok(len / channels)
}

/// Most channels an empty tensor may be split into by the functions that return something
/// per channel ([`binary::Binary::quantize`], [`ternary::Ternary::quantize`],
/// [`smooth::column_absmax`]): their per-channel results are allocated although the tensor
/// holds no data. A tensor with data has at most one channel per element.
pub const MAX_EMPTY_CHANNELS: usize = 1 << 16;

/// [`row_len`] for a function that allocates a result per channel: an empty tensor may have at
/// most [`MAX_EMPTY_CHANNELS`] of them.
pub(crate) fn channel_rows(len: usize, channels: usize) -> Result<usize, Error> {
    let row = row_len(len, channels)?;
    if len == 0 && channels > MAX_EMPTY_CHANNELS {
        return Err(Error::Parameter {
            name: "channels",
            value: channels as f64,
            why: "an empty tensor can be split into at most 65536 channels",
        });
    }
    Ok(row)
}

/// `codes` packed with the crate's one bit order ([`crate::quant::pack`]: dense, most
/// significant bit first).
pub(crate) fn pack_codes(codes: &[u8], bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; crate::quant::pack::packed_len(bits, codes.len())];
    crate::quant::pack::pack_unchecked(bits, codes, &mut out);
    out
}
