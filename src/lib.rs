//! # lowbit
//!
//! Low-precision number formats and model quantization for Rust: FP8, FP6, FP4, E8M0, BF16,
//! FP16 and TF32 behind one [`FloatFormat`] trait, quantizers behind one
//! [`Quantizer`](quant::Quantizer) trait, calibrators behind one
//! [`Calibrator`](calib::Calibrator) trait, and the schemes built on them. Bit-exact with
//! ml_dtypes, torch, bitsandbytes, ggml, ONNX Runtime and modelopt, and correct where they are
//! not (encoding from `f64` rounds once; calibration does not depend on batch order).
//!
//! ## Formats
//!
//! Each format is a zero-sized type; its codes are plain unsigned integers, right-aligned
//! (`u8` for formats of at most 8 bits, `u16`, `u32`, `u64`). All of them run through one
//! generic codec over a [`format::Layout`], so they round alike and a layout of your own gets
//! the whole API. See [`mod@format`] for the table of formats and their conventions.
//!
//! ```
//! use lowbit::{FloatFormat, E4M3, E2M1, Bf16};
//! use lowbit::format::{Options, Overflow, Rounding};
//!
//! // Scalars: encode, decode, bit fields.
//! let c = E4M3::encode_f32(0.3);
//! assert_eq!(E4M3::decode_f32(c), 0.3125);
//! assert_eq!(E4M3::decompose(c).to_string(), "0 0101 010 = (-1)^0 × 2^(5-7) × (1 + 2/8) = 0.3125");
//!
//! // Slices, into caller buffers (runtime-detected SIMD, identical to the portable path).
//! let x = [0.1f32, -1.7, 3.0, 7.0];
//! let mut fp4 = [0u8; 4];
//! E2M1::encode_slice(&x, &mut fp4)?;
//! let mut back = [0f32; 4];
//! E2M1::decode_slice(&fp4, &mut back)?;
//! assert_eq!(back, [0.0, -1.5, 3.0, 6.0]); // 7 saturates: FP4 is finite-only
//!
//! // Rounding and overflow options.
//! let trunc = Options::rounding(Rounding::TowardZero);
//! assert_eq!(Bf16::decode_f32(Bf16::encode_f32_with(1.0078125 * 0.99999, trunc)), 1.0);
//! let sat = Options::default().with_overflow(Overflow::Saturate);
//! assert_eq!(E4M3::decode_f32(E4M3::encode_f32_with(1e4, sat)), 448.0);
//! # Ok::<(), lowbit::Error>(())
//! ```
//!
//! ## Quantization
//!
//! [`quant`] turns `f32` tensors into bit-packed integer codes with one scale per group
//! (tensor, row, column or block): symmetric absmax and asymmetric zero-point k-bit quantizers
//! with torch.ao's qparams, and codebook quantizers (NF4, FP4, NFk) with double quantization of
//! the scales. [`compat`] writes the exact bytes other tools load: llama.cpp's `Q4_0`/`Q4_1`/
//! `Q5_0`/`Q5_1`/`Q8_0` and K-quant blocks and bitsandbytes' 4-bit and 8-bit blockwise formats.
//!
//! ```
//! use lowbit::quant::{AbsmaxQuantizer, Codebook, CodebookQuantizer, Granularity, Quantizer};
//!
//! let w: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
//! let int4 = AbsmaxQuantizer::new(4, Granularity::PerBlock(32))?;
//! let q = int4.quantize(&w)?;
//! assert_eq!(q.bits_per_element(), 5.0); // 4-bit codes + an f32 scale per 32
//! let back = int4.dequantize(&q)?;
//!
//! let nf4 = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64))?;
//! assert_eq!(nf4.quantize(&w)?.bits_per_element(), 4.5);
//! # Ok::<(), lowbit::Error>(())
//! ```
//!
//! ## Calibration
//!
//! [`calib`] chooses activation ranges from calibration batches: MinMax, percentile, entropy
//! (KL divergence) and MSE. The histogram's result depends only on the values seen, never on
//! the order of the batches, and its state merges across threads, processes and machines.
//!
//! ```
//! use lowbit::calib::{Calibrator, HistogramCalibrator, Method};
//!
//! let data: Vec<f32> = (0..4096).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0).collect();
//! let (a, b) = data.split_at(1000);
//! let mut shard = HistogramCalibrator::new(Method::Percentile(99.9))?;
//! shard.observe(b)?;
//! let mut total = HistogramCalibrator::new(Method::Percentile(99.9))?;
//! total.observe(a)?;
//! total.merge(&shard)?;
//! let mut other_order = HistogramCalibrator::new(Method::Percentile(99.9))?;
//! other_order.observe(b)?;
//! other_order.observe(a)?;
//! assert_eq!(total.range()?, other_order.range()?); // bit for bit
//! # Ok::<(), lowbit::Error>(())
//! ```
//!
//! ## Schemes
//!
//! [`scheme`] builds on the formats, quantizers and calibrators: post-training quantization
//! recipes with a per-layer error report ([`scheme::ptq`], and the TensorFlow Lite converter's
//! modes in [`scheme::tflite`]), SmoothQuant ([`scheme::smooth`]), fake quantization with STE
//! and LSQ gradients for QAT ([`scheme::fake_quant`]), power-of-two, binary and ternary
//! quantization, and AMP loss scaling with f32 master weights ([`scheme::amp`]).
//!
//! ## Errors
//!
//! Nothing panics on bad input: functions that can fail return a module error
//! ([`FormatError`], [`QuantError`], [`CalibError`], [`SchemeError`]), all of which convert
//! into [`Error`].
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `rayon` | parallel slice encode and decode (`format::par`), ggml blocks (`compat::ggml::par`) |
//! | `safetensors` | safetensors files in and out, with bitsandbytes' and compressed-tensors' quantized layouts (`io::safetensors`) |
//! | `gguf` | GGUF (llama.cpp) files: read, write, re-quantize as `llama-quantize` does (`io::gguf`) |
//!
//! ## Speed
//!
//! Slice encode and decode use a branch-free codec that LLVM vectorises; on x86-64 the crate
//! picks AVX2 (and F16C for `Fp16`) at run time, with no `target-cpu` flags needed. `unsafe`
//! is confined to one private module of fast paths, each tested bit-for-bit against the
//! portable loop.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod arch;
pub mod calib;
pub mod compat;
pub mod error;
pub mod format;
pub mod io;
pub mod metrics;
mod non_finite;
pub mod quant;
pub mod scheme;
#[cfg(test)]
mod testing;

/// The `bytemuck` crate, whose `Pod` casts this crate's block types support (ggml blocks as
/// bytes), re-exported so that the versions match.
pub use bytemuck;
/// The `half` crate, whose `f16`/`bf16` appear in this crate's API (ggml block scales, the
/// `half` interop), re-exported so that the versions match.
pub use half;

pub use calib::Error as CalibError;
pub use error::Error;
pub use format::Error as FormatError;
pub use format::{
    Bf16, E4M3Fnuz, E5M2Fnuz, FloatFormat, Fp16, Fp32, Fp64, Tf32, E2M1, E2M3, E3M2, E3M4, E4M3, E5M2, E8M0,
};
pub use non_finite::NonFinite;
pub use quant::Error as QuantError;
pub use scheme::Error as SchemeError;
