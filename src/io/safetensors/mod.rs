//! safetensors files in and out, in the layouts the runtimes load (feature `safetensors`).
//!
//! Parsing and serialising go through the `safetensors` crate (0.7); this
//! module adds what a quantization tool needs on top:
//!
//! - **In**: [`SafetensorsFile`] over a byte buffer. F64, F32, F16, BF16 (and FP8) tensors of
//!   any shape decode to `f32` ([`TensorRef::to_f32`]); an F32 tensor is borrowed without a
//!   copy when its bytes are 4-byte aligned ([`TensorRef::as_f32`], [`SafetensorsFile::f32s`]).
//!   Integer tensors (`position_ids`, packed codes) are passed through untouched as bytes, a
//!   [`Dtype`] and a shape.
//! - **Out**: [`Tensor`]s (a name, a shape and [`TensorData`]) to [`to_bytes`] / [`write()`], with
//!   [`Tensor::cast`] for BF16 / F16 copies through lowbit's [`Bf16`] /
//!   [`Fp16`] encoders (round to nearest even).
//! - **Quantized layouts** and the `quantization_config` entries of `config.json` that go with
//!   them: [`bnb`] (bitsandbytes' NF4 / FP4 with or without double quantization, as
//!   `QuantState.as_dict(packed=True)` writes it, for transformers' `Bnb4BitHfQuantizer`) and
//!   [`compressed`] (compressed-tensors 0.20: FP8 `float-quantized`, INT4/INT8
//!   `pack-quantized` / `int-quantized`, `nvfp4-pack-quantized`, `mxfp4-pack-quantized`,
//!   `mxfp8-quantized`, as vLLM and transformers load them). Each has a reader that takes the
//!   layout apart again and dequantizes it.
//!
//! Tensor names are the checkpoint's (`model.layers.0.mlp.down_proj.weight`); the quantized
//! writers take the module's name (`model.layers.0.mlp.down_proj`) and add the suffixes each
//! layout uses.
//!
//! # Examples
//!
//! ```
//! use lowbit::io::safetensors::{to_bytes, Dtype, SafetensorsFile, Tensor};
//!
//! let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.1).collect();
//! let tensors = vec![
//!     Tensor::f32("w", vec![2, 3], w.clone())?,
//!     Tensor::cast("w_bf16", vec![2, 3], &w, Dtype::BF16)?,
//!     Tensor::raw("position_ids", vec![1, 2], Dtype::I64, [0i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect())?,
//! ];
//! let bytes = to_bytes(&tensors, None)?;
//!
//! let file = SafetensorsFile::parse(&bytes)?;
//! assert_eq!(file.f32s("w")?.as_ref(), w.as_slice()); // borrowed when aligned
//! let bf16 = file.tensor("w_bf16")?;
//! assert_eq!(bf16.shape, [2, 3]);
//! assert_eq!(bf16.to_f32()?[1], 0.10009765625); // 0.1 in BF16
//! let ids = file.view("position_ids")?;
//! assert_eq!((ids.dtype, ids.bytes.len()), (Dtype::I64, 16)); // untouched
//! # Ok::<(), lowbit::io::safetensors::Error>(())
//! ```
use std::borrow::Cow;

pub use ::safetensors::Dtype;

/// A safetensors header's `__metadata__`: free-form string pairs.
pub type Metadata = std::collections::HashMap<String, String>;

use crate::{Bf16, FloatFormat, Fp16, E4M3, E5M2, E8M0};

pub mod bnb;
pub mod compressed;
mod json;
pub mod lowbit;
mod read;
mod write;

pub use read::{read, SafetensorsFile, TensorRef};
pub use write::{to_bytes, write};

/// Errors of reading and writing safetensors files. Each names the tensor it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `safetensors` crate refused the buffer or the tensors.
    #[error("safetensors: {0}")]
    Safetensors(#[from] ::safetensors::SafeTensorError),
    /// Reading or writing failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A tensor the layout needs is not in the file.
    #[error("tensor `{0}` is not in the file")]
    Missing(String),
    /// A tensor has a dtype, shape or content this layout does not allow.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Quantizing or dequantizing a tensor failed.
    #[error("tensor `{name}`: {source}")]
    Quant {
        /// The tensor's name.
        name: String,
        /// The lowbit error.
        source: crate::Error,
    },
    /// A JSON document (a packed quant state, a `quantization_config`) is not what the layout
    /// needs.
    #[error("JSON: {0}")]
    Json(String),
}

impl Error {
    pub(crate) fn tensor(name: &str, reason: impl Into<String>) -> Self {
        Error::Tensor {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn quant(name: &str) -> impl FnOnce(crate::QuantError) -> Self + '_ {
        move |e| Error::Quant {
            name: name.to_string(),
            source: e.into(),
        }
    }
}

/// The values of a [`Tensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `f32` values: a float tensor decoded on reading, or written as F32.
    F32(Vec<f32>),
    /// Bytes exactly as stored (little-endian), with their dtype: integers, FP8, packed codes,
    /// BF16 or F16 casts.
    Raw {
        /// The safetensors dtype.
        dtype: Dtype,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// A named tensor with a shape: what a safetensors file holds, one entry at a time. Not a
/// tensor library: it carries values to and from files.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The name in the file (`model.layers.0.mlp.down_proj.weight`).
    pub name: String,
    /// The shape, outermost first (row-major).
    pub shape: Vec<usize>,
    /// The values.
    pub data: TensorData,
}

/// Number of elements of `shape`, or an error naming the tensor on overflow.
pub(crate) fn numel(name: &str, shape: &[usize]) -> Result<usize, Error> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::tensor(name, "the shape's element count overflows"))
}

/// Bytes that `n` elements of `dtype` take (sub-byte dtypes packed).
fn byte_len(dtype: Dtype, n: usize) -> Option<usize> {
    n.checked_mul(dtype.bitsize()).map(|b| b.div_ceil(8))
}

impl Tensor {
    /// An F32 tensor.
    ///
    /// # Errors
    /// [`Error::Tensor`] if `values` does not hold one value per element of `shape`.
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) -> Result<Self, Error> {
        let name = name.into();
        let n = numel(&name, &shape)?;
        if values.len() != n {
            return Err(Error::tensor(
                &name,
                format!("{} values for shape {shape:?} ({n} elements)", values.len()),
            ));
        }
        Ok(Self {
            name,
            shape,
            data: TensorData::F32(values),
        })
    }

    /// A tensor of any dtype from its little-endian bytes, passed through untouched.
    ///
    /// # Errors
    /// [`Error::Tensor`] if the byte count does not match the shape and dtype.
    pub fn raw(name: impl Into<String>, shape: Vec<usize>, dtype: Dtype, bytes: Vec<u8>) -> Result<Self, Error> {
        let name = name.into();
        let n = numel(&name, &shape)?;
        if byte_len(dtype, n) != Some(bytes.len()) {
            return Err(Error::tensor(
                &name,
                format!("{} bytes for {dtype:?} of shape {shape:?}", bytes.len()),
            ));
        }
        Ok(Self {
            name,
            shape,
            data: TensorData::Raw { dtype, bytes },
        })
    }

    /// `f32` values cast to `dtype`: F32 (as they are), F64 (exact), BF16 or F16 (lowbit's
    /// encoders: nearest, ties to even, overflow to infinity, as torch's `.to()`), F8_E4M3 /
    /// F8_E5M2 (nearest even; out of range goes to NaN for E4M3, infinity for E5M2, as
    /// torch).
    ///
    /// # Errors
    /// [`Error::Tensor`] for another dtype or a length that does not match the shape.
    pub fn cast(name: impl Into<String>, shape: Vec<usize>, values: &[f32], dtype: Dtype) -> Result<Self, Error> {
        let name = name.into();
        let bytes: Vec<u8> = match dtype {
            Dtype::F32 => return Self::f32(name, shape, values.to_vec()),
            Dtype::F64 => values.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect(),
            Dtype::BF16 => values.iter().flat_map(|&v| Bf16::encode_f32(v).to_le_bytes()).collect(),
            Dtype::F16 => values.iter().flat_map(|&v| Fp16::encode_f32(v).to_le_bytes()).collect(),
            Dtype::F8_E4M3 => values.iter().map(|&v| E4M3::encode_f32(v)).collect(),
            Dtype::F8_E5M2 => values.iter().map(|&v| E5M2::encode_f32(v)).collect(),
            other => return Err(Error::tensor(&name, format!("cannot cast f32 values to {other:?}"))),
        };
        Self::raw(name, shape, dtype, bytes)
    }

    /// The dtype the tensor is written as.
    pub fn dtype(&self) -> Dtype {
        match &self.data {
            TensorData::F32(_) => Dtype::F32,
            TensorData::Raw { dtype, .. } => *dtype,
        }
    }

    /// Number of elements (`usize::MAX` for a shape, set by hand, whose product overflows).
    pub fn numel(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The little-endian bytes as written.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match &self.data {
            TensorData::F32(v) => f32_bytes(v),
            TensorData::Raw { bytes, .. } => Cow::Borrowed(bytes),
        }
    }

    /// The values as `f32`: F32 values as they are, other float dtypes decoded (see
    /// [`TensorRef::to_f32`]).
    ///
    /// # Errors
    /// [`Error::Tensor`] for a dtype that is not a float.
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        match &self.data {
            TensorData::F32(v) => Ok(v.clone()),
            TensorData::Raw { dtype, bytes } => decode_f32(&self.name, *dtype, bytes),
        }
    }

    /// The view [`SafetensorsFile`] gives of this tensor.
    pub fn view(&self) -> TensorRef<'_> {
        match &self.data {
            TensorData::F32(v) => TensorRef {
                dtype: Dtype::F32,
                shape: self.shape.clone(),
                bytes: match f32_bytes(v) {
                    Cow::Borrowed(b) => b,
                    // Only on big-endian targets; there the view has no bytes of its own.
                    Cow::Owned(_) => &[],
                },
            },
            TensorData::Raw { dtype, bytes } => TensorRef {
                dtype: *dtype,
                shape: self.shape.clone(),
                bytes,
            },
        }
    }
}

fn f32_bytes(v: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// `f32` values of a float tensor's bytes.
pub(crate) fn decode_f32(name: &str, dtype: Dtype, b: &[u8]) -> Result<Vec<f32>, Error> {
    Ok(match dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        // Rounded once, to nearest even (Rust's `as`), as torch's `.float()`.
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| Fp16::decode_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| Bf16::decode_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::F8_E4M3 => b.iter().map(|&c| E4M3::decode_f32(c)).collect(),
        Dtype::F8_E5M2 => b.iter().map(|&c| E5M2::decode_f32(c)).collect(),
        Dtype::F8_E8M0 => b.iter().map(|&c| E8M0::decode_f32(c)).collect(),
        other => return Err(Error::tensor(name, format!("{other:?} is not a float dtype"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_float_dtype_decodes() {
        let x = [0.1f32, -2.5, 448.0, 1e-3];
        for dtype in [Dtype::F32, Dtype::F64, Dtype::F16, Dtype::BF16, Dtype::F8_E4M3] {
            let t = Tensor::cast("x", vec![2, 2], &x, dtype).unwrap();
            let bytes = to_bytes(std::slice::from_ref(&t), None).unwrap();
            let f = SafetensorsFile::parse(&bytes).unwrap();
            let back = f.tensor("x").unwrap();
            assert_eq!(back.shape, [2, 2]);
            assert_eq!(back.to_f32().unwrap(), t.to_f32().unwrap(), "{dtype:?}");
        }
        assert!(Tensor::cast("x", vec![4], &x, Dtype::I32).is_err());
    }

    #[test]
    fn shapes_and_names_are_checked() {
        assert!(Tensor::f32("a", vec![2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::raw("a", vec![3], Dtype::I64, vec![0; 16]).is_err());
        assert!(Tensor::f32("a", vec![usize::MAX, 3], vec![]).is_err());
        let a = Tensor::f32("a", vec![1], vec![1.0]).unwrap();
        assert!(matches!(to_bytes(&[a.clone(), a], None), Err(Error::Tensor { .. })));
        let bytes = to_bytes(&[], None).unwrap();
        let f = SafetensorsFile::parse(&bytes).unwrap();
        assert!(matches!(f.view("w"), Err(Error::Missing(_))));
        assert!(SafetensorsFile::parse(&bytes[..4]).is_err());
    }
}
