//! # lowbit
//!
//! Low-precision number formats and model quantization for Rust: FP8, FP6, FP4, E8M0, BF16,
//! FP16 and TF32 behind one [`FloatFormat`] trait, bit-exact with ml_dtypes and torch, and
//! correct where they are not (encoding from `f64` rounds once).
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
//! ## Errors
//!
//! Nothing panics on bad input: functions that can fail return a module error
//! ([`FormatError`], ...), all of which convert into [`Error`].
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `rayon` | parallel slice processing |
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
pub mod quant;
pub mod scheme;

pub use calib::Error as CalibError;
pub use error::Error;
pub use format::Error as FormatError;
pub use format::{
    Bf16, E4M3Fnuz, E5M2Fnuz, FloatFormat, Fp16, Fp32, Fp64, Tf32, E2M1, E2M3, E3M2, E3M4, E4M3, E5M2, E8M0,
};
pub use quant::Error as QuantError;
pub use scheme::Error as SchemeError;
