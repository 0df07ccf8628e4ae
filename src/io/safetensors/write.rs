//! Writing: tensors to safetensors bytes through the `safetensors` crate.

use std::borrow::Cow;
use std::io::Write;

use ::safetensors::View;

use super::{Dtype, Error, Metadata, Tensor, TensorData};

struct Entry<'t>(&'t Tensor);

impl View for Entry<'_> {
    fn dtype(&self) -> Dtype {
        self.0.dtype()
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        self.0.bytes()
    }
    fn data_len(&self) -> usize {
        match &self.0.data {
            TensorData::F32(v) => 4 * v.len(),
            TensorData::Raw { bytes, .. } => bytes.len(),
        }
    }
}

/// The safetensors bytes of `tensors` (with an optional `__metadata__` map), as the
/// `safetensors` crate writes them: tensors ordered by dtype alignment then name, as the
/// Python library orders them too.
///
/// # Errors
/// [`Error::Tensor`] for two tensors of one name, [`Error::Safetensors`] if the crate refuses
/// them.
pub fn to_bytes(tensors: &[Tensor], metadata: Option<&Metadata>) -> Result<Vec<u8>, Error> {
    let mut seen = std::collections::HashSet::new();
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::tensor(&t.name, "two tensors have this name"));
        }
    }
    Ok(::safetensors::serialize(
        tensors.iter().map(|t| (t.name.as_str(), Entry(t))),
        metadata.cloned(),
    )?)
}

/// [`to_bytes`] written to `writer`.
///
/// # Errors
/// As [`to_bytes`], and [`Error::Io`] if writing fails.
pub fn write<W: Write>(tensors: &[Tensor], metadata: Option<&Metadata>, mut writer: W) -> Result<(), Error> {
    writer.write_all(&to_bytes(tensors, metadata)?)?;
    Ok(())
}
