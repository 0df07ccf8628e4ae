//! Parsing: the header from any reader with a known length, tensor data from a slice or a
//! seekable reader.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::value::{Array, GgufString, Metadata, Value, ValueType};
use super::{Error, GgmlType, Gguf, Tensor, TensorInfo, MAGIC, MAX_DIMS};

/// Deepest array nesting read (a file could otherwise exhaust the stack).
const MAX_DEPTH: usize = 64;
/// Fewest bytes a key/value can take: key length, type, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes a tensor info can take: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Most elements reserved up front for a list whose elements are read one by one.
const MAX_RESERVE: usize = 4096;

/// Everything before the tensor data.
pub(super) struct Header {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// Offsets in the data section, as in the file.
    pub offsets: Vec<u64>,
    /// Start of the data section from the start of the file.
    pub data_offset: u64,
}

/// A reader that knows how many bytes are left.
struct Parser<R> {
    r: R,
    pos: u64,
    end: u64,
}

type Ctx<'c> = &'c dyn Fn() -> String;

impl<R: Read> Parser<R> {
    fn left(&self) -> u64 {
        self.end - self.pos
    }

    fn need(&self, n: u64, ctx: Ctx<'_>) -> Result<(), Error> {
        if n > self.left() {
            return Err(Error::Truncated {
                context: ctx(),
                offset: self.pos,
                needed: n,
                available: self.left(),
            });
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], ctx: Ctx<'_>) -> Result<(), Error> {
        self.need(buf.len() as u64, ctx)?;
        self.r.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self, ctx: Ctx<'_>) -> Result<[u8; N], Error> {
        let mut b = [0u8; N];
        self.fill(&mut b, ctx)?;
        Ok(b)
    }

    fn u32(&mut self, ctx: Ctx<'_>) -> Result<u32, Error> {
        self.array(ctx).map(u32::from_le_bytes)
    }

    fn u64(&mut self, ctx: Ctx<'_>) -> Result<u64, Error> {
        self.array(ctx).map(u64::from_le_bytes)
    }

    /// `count` items of at least `min_each` bytes: refused unless the bytes left can hold them.
    fn count(&self, count: u64, min_each: u64, ctx: Ctx<'_>) -> Result<usize, Error> {
        let fits = count.checked_mul(min_each).is_some_and(|b| b <= self.left());
        match usize::try_from(count) {
            Ok(n) if fits => Ok(n),
            _ => Err(Error::CountTooLarge {
                context: ctx(),
                count,
                available: self.left(),
            }),
        }
    }

    fn bytes(&mut self, n: u64, ctx: Ctx<'_>) -> Result<Vec<u8>, Error> {
        let n = self.count(n, 1, ctx)?;
        let mut v = vec![0u8; n];
        self.fill(&mut v, ctx)?;
        Ok(v)
    }

    fn string(&mut self, ctx: Ctx<'_>) -> Result<Vec<u8>, Error> {
        let n = self.u64(ctx)?;
        self.bytes(n, ctx)
    }

    fn value(&mut self, type_id: u32, key: &str) -> Result<Value, Error> {
        let ctx = || format!("value of key '{key}'");
        let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
            key: key.to_owned(),
            type_id,
        })?;
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(&ctx)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(&ctx)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(&ctx)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(&ctx)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(&ctx)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(&ctx)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(&ctx)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(&ctx)?[0] != 0),
            ValueType::String => Value::String(GgufString(self.string(&ctx)?)),
            ValueType::Array => Value::Array(self.array_value(key, 0)?),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(&ctx)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(&ctx)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(&ctx)?)),
        })
    }

    /// An array: element type, count, elements (an element array repeats all three).
    fn array_value(&mut self, key: &str, depth: usize) -> Result<Array, Error> {
        if depth >= MAX_DEPTH {
            return Err(Error::NestingTooDeep { key: key.to_owned() });
        }
        let ctx = || format!("array of key '{key}'");
        let type_id = self.u32(&ctx)?;
        let n = self.u64(&ctx)?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
            key: key.to_owned(),
            type_id,
        })?;
        macro_rules! fixed {
            ($v:ident, $t:ty) => {{
                const S: usize = core::mem::size_of::<$t>();
                let n = self.count(n, S as u64, &ctx)?;
                let raw = self.bytes((n * S) as u64, &ctx)?;
                Array::$v(
                    raw.chunks_exact(S)
                        .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; S])))
                        .collect(),
                )
            }};
        }
        Ok(match ty {
            ValueType::U8 => Array::U8(self.bytes(n, &ctx)?),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => Array::Bool(self.bytes(n, &ctx)?.into_iter().map(|b| b != 0).collect()),
            ValueType::String => {
                let n = self.count(n, 8, &ctx)?;
                let mut v = Vec::with_capacity(n.min(MAX_RESERVE));
                for _ in 0..n {
                    v.push(GgufString(self.string(&ctx)?));
                }
                Array::String(v)
            }
            ValueType::Array => {
                let n = self.count(n, 4 + 8, &ctx)?;
                let mut v = Vec::with_capacity(n.min(MAX_RESERVE));
                for _ in 0..n {
                    v.push(self.array_value(key, depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

fn utf8(bytes: Vec<u8>, ctx: Ctx<'_>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 { context: ctx() })
}

/// Parse the header of a file of `len` bytes read from `r` (positioned at its start).
pub(super) fn parse_header<R: Read>(r: R, len: u64) -> Result<Header, Error> {
    let mut p = Parser { r, pos: 0, end: len };
    let magic = p.array::<4>(&|| "magic".to_owned())?;
    if magic != MAGIC {
        return Err(Error::BadMagic(magic));
    }
    let version = p.u32(&|| "version".to_owned())?;
    if version != 0 && version & 0xFFFF == 0 {
        return Err(Error::BigEndian);
    }
    if version != 2 && version != 3 {
        return Err(Error::UnsupportedVersion(version));
    }
    let n_tensors = p.u64(&|| "tensor count".to_owned())?;
    let n_kv = p.u64(&|| "key/value count".to_owned())?;
    p.count(n_tensors, MIN_TENSOR_INFO_BYTES, &|| "tensor count".to_owned())?;
    let n_kv = p.count(n_kv, MIN_KV_BYTES, &|| "key/value count".to_owned())?;

    let mut metadata = Metadata::new();
    let mut keys = HashSet::new();
    for i in 0..n_kv {
        let ctx = || format!("key #{i}");
        let key = utf8(p.string(&ctx)?, &ctx)?;
        if key.is_empty() {
            return Err(Error::EmptyKey { index: i as u64 });
        }
        if !keys.insert(key.clone()) {
            return Err(Error::DuplicateKey(key));
        }
        let type_id = p.u32(&|| format!("type of key '{key}'"))?;
        let value = p.value(type_id, &key)?;
        metadata.push_unchecked(key, value);
    }

    let n_tensors = p.count(n_tensors, MIN_TENSOR_INFO_BYTES, &|| "tensor count".to_owned())?;
    let mut tensors = Vec::with_capacity(n_tensors.min(MAX_RESERVE));
    let mut offsets = Vec::with_capacity(n_tensors.min(MAX_RESERVE));
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let name = utf8(p.string(&|| format!("name of tensor #{i}"))?, &|| {
            format!("name of tensor #{i}")
        })?;
        if !names.insert(name.clone()) {
            return Err(Error::DuplicateTensor(name));
        }
        let ctx = || format!("tensor '{name}'");
        let n_dims = p.u32(&ctx)?;
        if n_dims as usize > MAX_DIMS {
            return Err(Error::TooManyDims {
                tensor: name,
                n_dims: n_dims.into(),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(p.u64(&ctx)?);
        }
        let type_id = p.u32(&ctx)?;
        let offset = p.u64(&ctx)?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType {
            tensor: name.clone(),
            type_id,
        })?;
        let info = TensorInfo { name, dims, ty };
        info.checked_n_bytes()?;
        tensors.push(info);
        offsets.push(offset);
    }

    let alignment = u64::from(metadata.alignment()?);
    let data_offset = p.pos.checked_next_multiple_of(alignment).unwrap_or(u64::MAX);
    if !tensors.is_empty() && data_offset > len {
        return Err(Error::Truncated {
            context: "padding before the tensor data".to_owned(),
            offset: p.pos,
            needed: data_offset - p.pos,
            available: p.left(),
        });
    }
    let available = len.saturating_sub(data_offset);
    for (info, &offset) in tensors.iter().zip(&offsets) {
        let size = info.n_bytes();
        if offset.checked_add(size).is_none_or(|end| end > available) {
            return Err(Error::TensorOutOfBounds {
                tensor: info.name.clone(),
                offset,
                size,
                available,
            });
        }
    }
    // ggml's check: writing lays each tensor on the alignment, so a file of unaligned tensors
    // (every one a few bytes apart under a 1 MiB alignment, say) would be written back many
    // times larger than it was read.
    for (info, &offset) in tensors.iter().zip(&offsets) {
        if !offset.is_multiple_of(alignment) {
            return Err(Error::MisalignedTensor {
                tensor: info.name.clone(),
                offset,
                alignment,
            });
        }
    }
    // Tensors may lie in any order (gguf-py reads them so; ggml wants them consecutive), but
    // not on each other's bytes: a file whose tensors share their data would make every
    // owned copy (`GgufReader::into_gguf`, `Gguf::into_owned`, writing, re-quantizing) as large
    // as the number of tensors times the shared bytes.
    let mut spans: Vec<(u64, u64, usize)> = tensors
        .iter()
        .zip(&offsets)
        .enumerate()
        .filter(|(_, (info, _))| info.n_bytes() > 0)
        .map(|(i, (info, &offset))| (offset, offset + info.n_bytes(), i))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return Err(Error::TensorsOverlap {
                tensor: tensors[b].name.clone(),
                other: tensors[a].name.clone(),
            });
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        offsets,
        data_offset,
    })
}

pub(super) fn read_slice(bytes: &[u8]) -> Result<Gguf<'_>, Error> {
    let h = parse_header(bytes, bytes.len() as u64)?;
    let mut tensors = Vec::with_capacity(h.tensors.len());
    for (info, offset) in h.tensors.into_iter().zip(h.offsets) {
        // In bounds (checked by `parse_header`), so these fit in usize.
        let start = (h.data_offset + offset) as usize;
        let data = bytes
            .get(start..start + info.n_bytes() as usize)
            .ok_or_else(|| Error::TensorOutOfBounds {
                tensor: info.name.clone(),
                offset,
                size: info.n_bytes(),
                available: bytes.len() as u64,
            })?;
        tensors.push(Tensor {
            info,
            data: Cow::Borrowed(data),
        });
    }
    Ok(Gguf {
        version: h.version,
        metadata: h.metadata,
        tensors,
    })
}

/// A GGUF file read from a [`Read`] + [`Seek`] source: the header is parsed up front (and
/// checked, as [`Gguf::read`] checks it), tensor data is read on request, one tensor at a time.
/// The file starts at the source's position when [`GgufReader::new`] is called.
///
/// ```
/// use std::io::Cursor;
/// use lowbit::io::gguf::{Gguf, GgmlType, GgufReader, Tensor};
///
/// let mut file = Gguf::new();
/// file.metadata.insert("general.architecture", "llama");
/// let ones: Vec<u8> = [1.0f32; 32].iter().flat_map(|x| x.to_le_bytes()).collect();
/// file.tensors.push(Tensor::new("output_norm.weight", vec![32], GgmlType::F32, ones.clone())?);
/// let bytes = file.to_bytes()?;
///
/// let mut r = GgufReader::new(Cursor::new(bytes))?;
/// assert_eq!(r.tensors()[0].name, "output_norm.weight");
/// assert_eq!(r.data_offset() % 32, 0);
/// assert_eq!(r.read_tensor(0)?, ones);
/// # Ok::<(), lowbit::io::gguf::Error>(())
/// ```
#[derive(Debug)]
pub struct GgufReader<R> {
    inner: R,
    base: u64,
    header: Header,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("version", &self.version)
            .field("keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl<R: Read + Seek> GgufReader<R> {
    /// Parse the header.
    ///
    /// # Errors
    /// [`Error::Io`], and the format errors listed on [`Error`].
    pub fn new(mut inner: R) -> Result<Self, Error> {
        let base = inner.stream_position()?;
        let end = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(base))?;
        let header = parse_header(BufReader::new(&mut inner), end.saturating_sub(base))?;
        Ok(Self { inner, base, header })
    }

    /// The version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// The tensors' descriptions, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The index of the tensor with this name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.header.tensors.iter().position(|t| t.name == name)
    }

    /// Where the tensor data starts, from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// A tensor's offset in the data section, as the file gives it.
    pub fn tensor_offset(&self, index: usize) -> Option<u64> {
        self.header.offsets.get(index).copied()
    }

    /// Read tensor `index`'s data into `buf`, which must be [`TensorInfo::n_bytes`] long.
    ///
    /// # Errors
    /// [`Error::NoSuchTensor`], [`Error::DataSizeMismatch`], [`Error::Io`].
    pub fn read_tensor_into(&mut self, index: usize, buf: &mut [u8]) -> Result<(), Error> {
        let (info, offset) = self.entry(index)?;
        super::check_size(info, buf.len())?;
        let at = self.base + self.header.data_offset + offset;
        self.inner.seek(SeekFrom::Start(at))?;
        self.inner.read_exact(buf)?;
        Ok(())
    }

    /// Read tensor `index`'s data.
    ///
    /// # Errors
    /// As [`GgufReader::read_tensor_into`], and [`Error::TensorTooLarge`] when the tensor
    /// does not fit in memory's address space.
    pub fn read_tensor(&mut self, index: usize) -> Result<Vec<u8>, Error> {
        let (info, _) = self.entry(index)?;
        let n = usize::try_from(info.n_bytes()).map_err(|_| Error::TensorTooLarge {
            tensor: info.name.clone(),
        })?;
        let mut buf = vec![0u8; n];
        self.read_tensor_into(index, &mut buf)?;
        Ok(buf)
    }

    fn entry(&self, index: usize) -> Result<(&TensorInfo, u64), Error> {
        match (self.header.tensors.get(index), self.header.offsets.get(index)) {
            (Some(info), Some(&offset)) => Ok((info, offset)),
            _ => Err(Error::NoSuchTensor(format!("#{index}"))),
        }
    }

    /// Read every tensor into a [`Gguf`].
    ///
    /// # Errors
    /// As [`GgufReader::read_tensor`].
    pub fn into_gguf(mut self) -> Result<Gguf<'static>, Error> {
        let mut tensors = Vec::with_capacity(self.header.tensors.len());
        for i in 0..self.header.tensors.len() {
            let data = self.read_tensor(i)?;
            tensors.push(Tensor {
                info: self.header.tensors[i].clone(),
                data: Cow::Owned(data),
            });
        }
        Ok(Gguf {
            version: self.header.version,
            metadata: self.header.metadata,
            tensors,
        })
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
