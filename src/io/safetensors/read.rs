//! Reading: a parsed buffer, borrowed tensor views, decoding to `f32`.

use std::borrow::Cow;
use std::io::Read;

use ::safetensors::SafeTensors;

use super::{decode_f32, Dtype, Error, Metadata, Tensor, TensorData};

/// A tensor in a [`SafetensorsFile`]: its dtype, shape and bytes, borrowed from the buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef<'a> {
    /// The safetensors dtype.
    pub dtype: Dtype,
    /// The shape, outermost first.
    pub shape: Vec<usize>,
    /// The little-endian bytes, borrowed from the file's buffer.
    pub bytes: &'a [u8],
}

impl<'a> TensorRef<'a> {
    /// Number of elements (`usize::MAX` for a shape, set by hand, whose product overflows).
    pub fn numel(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The values of an F32 tensor without a copy, if its bytes are 4-byte aligned in memory
    /// and the target is little-endian; `None` otherwise. Files written by the safetensors
    /// libraries (Rust or Python) pad the header to 8 bytes and order tensors by decreasing
    /// dtype size, so every F32 tensor is aligned whenever the buffer itself is (a `Vec<u8>`
    /// from the system allocator or a memory map is, in practice).
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        if self.dtype != Dtype::F32 || cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice(self.bytes).ok()
    }

    /// The values decoded to `f32`: F32 as they are, F64 rounded to nearest even, F16 and BF16
    /// exactly, F8_E4M3 / F8_E5M2 / F8_E8M0 exactly (their NaN codes give NaN).
    ///
    /// # Errors
    /// [`Error::Tensor`] for a dtype that is not a float (integers are passed through as
    /// bytes instead: see [`bytes`](Self::bytes)).
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        decode_f32("?", self.dtype, self.bytes)
    }
}

/// A parsed safetensors buffer: tensors are read from it by name, without copying until asked.
pub struct SafetensorsFile<'a> {
    inner: SafeTensors<'a>,
    metadata: Option<Metadata>,
}

impl std::fmt::Debug for SafetensorsFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("tensors", &self.names())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl<'a> SafetensorsFile<'a> {
    /// Parse a whole safetensors file held in memory (read it with [`std::fs::read`], or map
    /// it).
    ///
    /// # Errors
    /// [`Error::Safetensors`] if the header or the offsets are invalid.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let (_, meta) = SafeTensors::read_metadata(bytes)?;
        let metadata = meta.metadata().clone();
        Ok(Self {
            inner: SafeTensors::deserialize(bytes)?,
            metadata,
        })
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut n = self.inner.names();
        n.sort_unstable();
        n
    }

    /// Whether the file has a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.tensor(name).is_ok()
    }

    /// The header's `__metadata__` string map, if any.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// A tensor's dtype, shape and bytes, borrowed.
    ///
    /// # Errors
    /// [`Error::Missing`] if there is no such tensor.
    pub fn view(&self, name: &str) -> Result<TensorRef<'a>, Error> {
        let v = self.inner.tensor(name).map_err(|_| Error::Missing(name.to_string()))?;
        Ok(TensorRef {
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            bytes: v.data(),
        })
    }

    /// A float tensor's values as `f32`: borrowed for an aligned F32 tensor, decoded otherwise.
    ///
    /// # Errors
    /// [`Error::Missing`], or [`Error::Tensor`] for a dtype that is not a float.
    pub fn f32s(&self, name: &str) -> Result<Cow<'a, [f32]>, Error> {
        let v = self.view(name)?;
        match v.as_f32() {
            Some(s) => Ok(Cow::Borrowed(s)),
            None => Ok(Cow::Owned(decode_f32(name, v.dtype, v.bytes)?)),
        }
    }

    /// A tensor, owned: float dtypes (F64, F32, F16, BF16) decoded to [`TensorData::F32`],
    /// every other dtype passed through as [`TensorData::Raw`].
    ///
    /// # Errors
    /// [`Error::Missing`] if there is no such tensor.
    pub fn tensor(&self, name: &str) -> Result<Tensor, Error> {
        let v = self.view(name)?;
        let data = match v.dtype {
            Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16 => TensorData::F32(decode_f32(name, v.dtype, v.bytes)?),
            dtype => TensorData::Raw {
                dtype,
                bytes: v.bytes.to_vec(),
            },
        };
        Ok(Tensor {
            name: name.to_string(),
            shape: v.shape,
            data,
        })
    }

    /// A tensor exactly as stored ([`TensorData::Raw`] whatever its dtype).
    ///
    /// # Errors
    /// [`Error::Missing`] if there is no such tensor.
    pub fn raw(&self, name: &str) -> Result<Tensor, Error> {
        let v = self.view(name)?;
        Ok(Tensor {
            name: name.to_string(),
            shape: v.shape,
            data: TensorData::Raw {
                dtype: v.dtype,
                bytes: v.bytes.to_vec(),
            },
        })
    }

    /// Every tensor, in name order, as [`tensor`](Self::tensor) gives them.
    ///
    /// # Errors
    /// As [`tensor`](Self::tensor).
    pub fn tensors(&self) -> Result<Vec<Tensor>, Error> {
        self.names().into_iter().map(|n| self.tensor(n)).collect()
    }
}

/// Read a whole safetensors file from a reader: its tensors (as
/// [`SafetensorsFile::tensor`] gives them) and its `__metadata__`.
///
/// # Errors
/// [`Error::Io`] if reading fails, [`Error::Safetensors`] for an invalid file.
pub fn read<R: Read>(mut reader: R) -> Result<(Vec<Tensor>, Option<Metadata>), Error> {
    let mut buf = Vec::new();
    reader.read_to_end(&mut buf)?;
    let file = SafetensorsFile::parse(&buf)?;
    Ok((file.tensors()?, file.metadata().cloned()))
}
