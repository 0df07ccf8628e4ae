//! Writing: the header in one piece, then the tensors one at a time.

use std::collections::HashSet;
use std::io::Write;

use super::value::{Array, Metadata, Value};
use super::{Error, TensorInfo, MAGIC};

/// Writes a GGUF file to any [`Write`]: [`GgufWriter::new`] writes the header (metadata, tensor
/// infos with their offsets, padding), then [`GgufWriter::write_tensor`] takes each tensor's
/// data in the order of the header, and [`GgufWriter::finish`] checks they all came.
///
/// The layout is gguf-py's and ggml's: tensors laid out in order from offset 0, each padded
/// with zeros to the alignment (the last one too), the data section starting at the first
/// aligned offset after the tensor infos (a file without tensors ends after its metadata,
/// unpadded). Tensor infos keep the dims they are given (gguf-py
/// writes a NumPy shape's dims; ggml drops trailing 1s: see [`TensorInfo::ggml_n_dims`]).
///
/// ```
/// use lowbit::io::gguf::{Gguf, GgmlType, GgufWriter, Metadata, TensorInfo};
///
/// let mut meta = Metadata::new();
/// meta.insert("general.architecture", "llama");
/// let infos = [TensorInfo::new("a", vec![3], GgmlType::F32)?, TensorInfo::new("b", vec![2], GgmlType::F16)?];
/// let mut out = Vec::new();
/// let mut w = GgufWriter::new(&mut out, 3, &meta, &infos)?;
/// w.write_tensor(&[0u8; 12])?;
/// w.write_tensor(&[0u8; 4])?;
/// w.finish()?;
/// assert_eq!(out.len() % 32, 0); // every tensor is padded, the last one too
/// assert_eq!(Gguf::read(&out)?.tensors.len(), 2);
/// # Ok::<(), lowbit::io::gguf::Error>(())
/// ```
#[derive(Debug)]
pub struct GgufWriter<W: Write> {
    w: W,
    alignment: u64,
    sizes: Vec<(String, u64)>,
    next: usize,
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s);
}

fn put_value(buf: &mut Vec<u8>, v: &Value) {
    buf.extend_from_slice(&v.value_type().id().to_le_bytes());
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(u8::from(*x)),
        Value::String(s) => put_str(buf, s.as_bytes()),
        Value::Array(a) => put_array(buf, a),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Element type, count, elements; an element array is written the same way (gguf-py's layout).
fn put_array(buf: &mut Vec<u8>, a: &Array) {
    buf.extend_from_slice(&a.element_type().id().to_le_bytes());
    buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => buf.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => {
            for s in v {
                put_str(buf, s.as_bytes());
            }
        }
        Array::Array(v) => {
            for inner in v {
                put_array(buf, inner);
            }
        }
    }
}

fn padding(n: u64, alignment: u64) -> u64 {
    (alignment - n % alignment) % alignment
}

fn write_zeros<W: Write>(w: &mut W, n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 256] = [0; 256];
    let mut left = n;
    while left > 0 {
        let k = left.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        left -= k as u64;
    }
    Ok(())
}

impl<W: Write> GgufWriter<W> {
    /// Write the header for these tensors.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] unless `version` is 2 or 3; [`Error::BadAlignment`];
    /// [`Error::EmptyKey`]; [`Error::DuplicateTensor`]; the [`TensorInfo::new`] errors;
    /// [`Error::Io`].
    pub fn new(mut w: W, version: u32, metadata: &Metadata, tensors: &[TensorInfo]) -> Result<Self, Error> {
        if version != 2 && version != 3 {
            return Err(Error::UnsupportedVersion(version));
        }
        let alignment = u64::from(metadata.alignment()?);
        let mut buf = Vec::new();
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&version.to_le_bytes());
        buf.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (i, (key, value)) in metadata.iter().enumerate() {
            if key.is_empty() {
                return Err(Error::EmptyKey { index: i as u64 });
            }
            put_str(&mut buf, key.as_bytes());
            put_value(&mut buf, value);
        }
        let mut names = HashSet::new();
        let mut sizes = Vec::with_capacity(tensors.len());
        let mut offset: u64 = 0;
        for t in tensors {
            if !names.insert(t.name.as_str()) {
                return Err(Error::DuplicateTensor(t.name.clone()));
            }
            let size = t.checked_n_bytes()?;
            put_str(&mut buf, t.name.as_bytes());
            buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                buf.extend_from_slice(&d.to_le_bytes());
            }
            buf.extend_from_slice(&t.ty.id().to_le_bytes());
            buf.extend_from_slice(&offset.to_le_bytes());
            offset = size
                .checked_add(padding(size, alignment))
                .and_then(|s| offset.checked_add(s))
                .ok_or_else(|| Error::TensorTooLarge { tensor: t.name.clone() })?;
            sizes.push((t.name.clone(), size));
        }
        // The data section starts on the alignment. A file without tensors has none, and is
        // not padded: readers (ggml, gguf-py, lowbit) need no padding there, and a large
        // `general.alignment` (up to 2^31) would otherwise turn a few bytes of metadata into
        // gigabytes.
        if !tensors.is_empty() {
            let pad = padding(buf.len() as u64, alignment);
            buf.resize(buf.len() + pad as usize, 0);
        }
        w.write_all(&buf)?;
        Ok(Self {
            w,
            alignment,
            sizes,
            next: 0,
        })
    }

    /// Write the next tensor's data (and its padding).
    ///
    /// # Errors
    /// [`Error::TensorCount`] when every tensor has been written, [`Error::DataSizeMismatch`],
    /// [`Error::Io`].
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<(), Error> {
        let Some((name, size)) = self.sizes.get(self.next) else {
            return Err(Error::TensorCount {
                expected: self.sizes.len(),
                written: self.next + 1,
            });
        };
        if data.len() as u64 != *size {
            return Err(Error::DataSizeMismatch {
                tensor: name.clone(),
                expected: *size,
                actual: data.len() as u64,
            });
        }
        self.w.write_all(data)?;
        write_zeros(&mut self.w, padding(*size, self.alignment))?;
        self.next += 1;
        Ok(())
    }

    /// The name of the tensor [`GgufWriter::write_tensor`] expects next.
    pub fn next_tensor(&self) -> Option<&str> {
        self.sizes.get(self.next).map(|(n, _)| n.as_str())
    }

    /// Check that every tensor was written, flush, and return the writer.
    ///
    /// # Errors
    /// [`Error::TensorCount`], [`Error::Io`].
    pub fn finish(mut self) -> Result<W, Error> {
        if self.next != self.sizes.len() {
            return Err(Error::TensorCount {
                expected: self.sizes.len(),
                written: self.next,
            });
        }
        self.w.flush()?;
        Ok(self.w)
    }
}
