//! GGUF v3, llama.cpp's model file: read, write, and re-quantize as `llama-quantize` does.
//!
//! A file is a header (magic `GGUF`, version, tensor count, key/value count), the key/value
//! metadata ([`Metadata`], every [`ValueType`]), one [`TensorInfo`] per tensor (name, dims in
//! ggml order — `dims[0]` is the fastest-varying axis, the row length — [`GgmlType`] and offset),
//! zero padding to the alignment (`general.alignment`, default 32), then the tensor data, each
//! tensor padded to the alignment (lowbit writes no padding in a file without tensors).
//! Everything is little-endian.
//!
//! - [`Gguf::read`] parses a byte slice (a memory-mapped file, say) and borrows the tensor
//!   data from it; [`GgufReader`] reads from any [`Read`] +
//!   [`Seek`], one tensor at a time.
//! - [`Gguf::write`] and the streaming [`GgufWriter`] write the layout gguf-py's `GGUFWriter`
//!   and ggml's `gguf_write_to_file` write, so reading a file those tools wrote and writing it
//!   back gives the same bytes.
//! - [`requantize`] converts a model's weights to one of `llama-quantize`'s file types
//!   ([`Target`]: the K-quant mixes `Q4_K_M`, `Q5_K_M`, `Q4_K_S`, `Q5_K_S`, `Q3_K_S`,
//!   `Q3_K_M`, `Q3_K_L`, `Q2_K`, `Q6_K`, and `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `F16`,
//!   `BF16`), choosing the tensors and their types as `llama-quantize` does without an
//!   importance matrix (see its docs for the rules).
//! - [`Tensor::to_f32`] reads a tensor of a type lowbit has as `f32` values.
//! - [`Imatrix`] reads and writes llama.cpp's importance-matrix files (`llama-imatrix`'s GGUF
//!   and legacy `.dat` formats), the per-column weights of
//!   [`crate::compat::ggml::quantize_with_imatrix`].
//!
//! Tensors of types lowbit has (F32, F16, BF16 and the blocks of [`crate::compat::ggml`]:
//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q8_K) and of every other ggml type (IQ types,
//! integers, ...) are read and written as bytes with their type id; the sizes come from ggml's
//! type table ([`GgmlType::block_size`], [`GgmlType::type_size`]).
//!
//! Input is untrusted: every count, length and offset is checked against the bytes that are
//! left before anything is allocated (a header claiming 2^60 tensors is an
//! [`Error::CountTooLarge`], not an allocation), every error names the key or tensor, and
//! nothing panics. The checks are ggml's (`gguf_init_from_file`): version 2 or 3, unique
//! non-empty keys, unique tensor names, at most 4 dims, rows of whole blocks, sizes that fit
//! in 64 bits, tensor data inside the file; lowbit also reads nested arrays (gguf-py writes
//! them, ggml refuses them) and tensor offsets that are not consecutive (gguf-py reads them,
//! ggml refuses them), but not tensors whose data overlap ([`Error::TensorsOverlap`]: each byte
//! of the file belongs to one tensor, so the tensors read are never larger than the file) or
//! that are not on the alignment ([`Error::MisalignedTensor`], as ggml), so that a file read
//! and written again is never much larger than it was.
//!
//! Checked against gguf-py 0.19 (`GGUFWriter`, `GGUFReader`, `gguf.quants`): lowbit reads its
//! files with every key and tensor byte equal and writes them back byte for byte, and gguf-py
//! reads the files lowbit writes (`tests/data/gguf/`).
//!
//! ```
//! use lowbit::io::gguf::{Gguf, GgmlType, Tensor, Value};
//! use lowbit::compat::ggml;
//!
//! // Build a file: metadata and a Q8_0 tensor of 2 rows of 64.
//! let w: Vec<f32> = (0..128).map(|i| (i as f32 * 0.1).sin()).collect();
//! let blocks = ggml::quantize_q8_0(&w)?;
//! let mut file = Gguf::new();
//! file.metadata.insert("general.architecture", "llama");
//! file.tensors.push(Tensor::new("blk.0.ffn_up.weight", vec![64, 2], GgmlType::Q8_0, bytemuck::cast_slice(&blocks))?);
//! let bytes = file.to_bytes()?;
//!
//! // Read it back without copying the tensor data.
//! let read = Gguf::read(&bytes)?;
//! assert_eq!(read.metadata.get_str("general.architecture"), Some("llama"));
//! let t = read.tensor("blk.0.ffn_up.weight").unwrap();
//! assert_eq!((t.info.ty, t.info.shape()), (GgmlType::Q8_0, vec![2, 64]));
//! let mut back = vec![0f32; 128];
//! ggml::dequantize_q8_0(bytemuck::cast_slice(&t.data), &mut back)?;
//! assert_eq!(read.to_bytes()?, bytes); // written back byte for byte
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::io::{Read, Seek, Write};

mod dequant;
mod imatrix;
mod mix;
mod read;
mod requantize;
mod value;
mod write;

pub use imatrix::{Imatrix, ImatrixFormat};
pub use mix::Target;
pub use read::GgufReader;
pub use requantize::{requantize, requantize_plan, Report, RequantizeOptions, TensorReport};
pub use value::{Array, GgufString, Metadata, Value, ValueType};
pub use write::GgufWriter;

pub use crate::compat::ggml::GgmlType;

/// The magic at the start of every file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version lowbit writes (it reads 2 and 3, which have the same little-endian layout).
pub const VERSION: u32 = 3;
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// The key that sets the data alignment (a `u32` power of two).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's limit on tensor dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Errors of GGUF reading, writing and re-quantization. Each names the key or tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error of the underlying reader or writer.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file: magic {0:02x?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    /// A version other than 2 or 3.
    #[error("GGUF version {0} is not supported (only 2 and 3)")]
    UnsupportedVersion(u32),
    /// A file written for big-endian machines (its version reads byte-swapped).
    #[error("big-endian GGUF files are not supported")]
    BigEndian,
    /// Fewer bytes left than a field needs.
    #[error("{context}: needs {needed} bytes at offset {offset}, only {available} left")]
    Truncated {
        /// What was being read.
        context: String,
        /// Byte offset in the file.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// A count (tensors, keys, array elements) that the bytes left cannot hold.
    #[error("{context}: count {count} cannot fit in the {available} bytes left")]
    CountTooLarge {
        /// What was being counted.
        context: String,
        /// The count in the file.
        count: u64,
        /// Bytes left.
        available: u64,
    },
    /// A key or tensor name that is not UTF-8.
    #[error("{context} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which key or tensor name.
        context: String,
    },
    /// An empty key.
    #[error("key #{index} is empty")]
    EmptyKey {
        /// Position of the key.
        index: u64,
    },
    /// A key that appears twice.
    #[error("duplicate key '{0}'")]
    DuplicateKey(String),
    /// A tensor name that appears twice.
    #[error("duplicate tensor '{0}'")]
    DuplicateTensor(String),
    /// A value type id GGUF does not define.
    #[error("key '{key}': unknown value type {type_id}")]
    UnknownValueType {
        /// The key.
        key: String,
        /// The type id in the file.
        type_id: u32,
    },
    /// Arrays nested deeper than lowbit reads (64 levels).
    #[error("key '{key}': arrays nested too deeply")]
    NestingTooDeep {
        /// The key.
        key: String,
    },
    /// `general.alignment` that is not a `u32` power of two.
    #[error("general.alignment must be a u32 power of two, found {0}")]
    BadAlignment(String),
    /// A tensor type id that is not in ggml's type table, so its size is unknown.
    #[error("tensor '{tensor}': unknown ggml type {type_id}")]
    UnknownTensorType {
        /// The tensor.
        tensor: String,
        /// The type id in the file.
        type_id: u32,
    },
    /// More dimensions than ggml's [`MAX_DIMS`].
    #[error("tensor '{tensor}': {n_dims} dimensions, at most 4")]
    TooManyDims {
        /// The tensor.
        tensor: String,
        /// Dimensions in the file.
        n_dims: u64,
    },
    /// An element count or byte size beyond what 64-bit ggml can index.
    #[error("tensor '{tensor}': too many elements")]
    TensorTooLarge {
        /// The tensor.
        tensor: String,
    },
    /// A row length (`dims[0]`) that is not a whole number of the type's blocks.
    #[error("tensor '{tensor}': row length {row} is not a multiple of the {ty} block size {block}")]
    NotWholeBlocks {
        /// The tensor.
        tensor: String,
        /// `dims[0]`.
        row: u64,
        /// The type.
        ty: GgmlType,
        /// Elements per block.
        block: u64,
    },
    /// Tensor data that does not lie inside the file.
    #[error(
        "tensor '{tensor}': data at offset {offset} of {size} bytes is beyond the {available} bytes of tensor data"
    )]
    TensorOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Offset in the data section.
        offset: u64,
        /// Bytes of the tensor.
        size: u64,
        /// Bytes of the data section in the file.
        available: u64,
    },
    /// A tensor offset that is not a multiple of the alignment (ggml refuses it too).
    #[error("tensor '{tensor}': offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        /// The tensor.
        tensor: String,
        /// Its offset in the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// Two tensors whose data share bytes (ggml wants the tensors consecutive; lowbit reads
    /// them in any order, but each byte belongs to one tensor).
    #[error("tensor '{tensor}': its data overlaps that of tensor '{other}'")]
    TensorsOverlap {
        /// The tensor.
        tensor: String,
        /// The tensor whose data it overlaps.
        other: String,
    },
    /// Tensor data of the wrong length for its dims and type.
    #[error("tensor '{tensor}': {actual} bytes of data, its dims and type need {expected}")]
    DataSizeMismatch {
        /// The tensor.
        tensor: String,
        /// Bytes its dims and type need.
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
    /// A [`GgufWriter`] finished before every tensor was written, or got one too many.
    #[error("{written} tensors written, the header lists {expected}")]
    TensorCount {
        /// Tensors in the header.
        expected: usize,
        /// Tensors written.
        written: usize,
    },
    /// A tensor name not in the file.
    #[error("no tensor named '{0}'")]
    NoSuchTensor(String),
    /// A NaN or an infinity met while converting a tensor (llama-quantize refuses them too:
    /// `ggml_validate_row_data`), or a value that overflows the target type.
    #[error("tensor '{tensor}': non-finite value at element {index}")]
    NonFinite {
        /// The tensor.
        tensor: String,
        /// Index of the element.
        index: u64,
    },
    /// A quantization error of [`crate::compat::ggml`] on a tensor.
    #[error("tensor '{tensor}': {source}")]
    Quant {
        /// The tensor.
        tensor: String,
        /// The error.
        source: crate::quant::Error,
    },
    /// A mixture-of-experts model's FFN tensor whose `blk.N.` layer llama.cpp cannot read or
    /// is not below `{arch}.block_count` (`llama_tensor_get_type`'s `layer_info`, which
    /// llama-quantize also refuses).
    #[error("tensor '{tensor}': {}", layer_index_message(.layer, .n_layer))]
    LayerIndex {
        /// The tensor.
        tensor: String,
        /// The layer of its name, `None` when it has none.
        layer: Option<i64>,
        /// The model's layer count (`{arch}.block_count`).
        n_layer: u64,
    },
    /// An importance-matrix file ([`Imatrix`]) that `llama-quantize` would refuse or misread.
    #[error("imatrix entry '{entry}': {reason}")]
    Imatrix {
        /// The entry (empty for file-wide problems).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A conversion lowbit (or llama-quantize) does not do.
    #[error("tensor '{tensor}': {reason}")]
    Unsupported {
        /// The tensor (empty for file-wide refusals).
        tensor: String,
        /// Why.
        reason: String,
    },
}

fn layer_index_message(layer: &Option<i64>, n_layer: &u64) -> String {
    match layer {
        Some(l) => format!("layer {l} is not in [0, {n_layer}) (the model's block_count)"),
        None => "an expert model's FFN tensor without a layer number (blk.N.) in its name".to_owned(),
    }
}

/// A tensor's description: name, dims in ggml order (`dims[0]` is the row length, the
/// fastest-varying axis; the reverse of a NumPy or PyTorch shape) and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name.
    pub name: String,
    /// Dims, ggml order (`ne`).
    pub dims: Vec<u64>,
    /// The type.
    pub ty: GgmlType,
}

impl TensorInfo {
    /// A tensor description, checked as ggml checks a file's: at most [`MAX_DIMS`] dims,
    /// rows of whole blocks, an element count below 2^63.
    ///
    /// # Errors
    /// [`Error::TooManyDims`], [`Error::NotWholeBlocks`], [`Error::TensorTooLarge`].
    pub fn new(name: impl Into<String>, dims: Vec<u64>, ty: GgmlType) -> Result<Self, Error> {
        let info = Self {
            name: name.into(),
            dims,
            ty,
        };
        info.checked_n_bytes()?;
        Ok(info)
    }

    /// Number of elements (1 for no dims).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// Bytes of the tensor's data (saturating for a description that [`TensorInfo::new`]
    /// would refuse).
    pub fn n_bytes(&self) -> u64 {
        self.checked_n_bytes().unwrap_or(u64::MAX)
    }

    /// The shape in NumPy order (`dims` reversed).
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }

    /// Rows (all dims but the first multiplied).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// `ggml_n_dims`: 1 + the index of the last dim above 1 (at least 1).
    pub fn ggml_n_dims(&self) -> usize {
        self.dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
    }

    /// The checks of [`TensorInfo::new`] and the byte size.
    pub(crate) fn checked_n_bytes(&self) -> Result<u64, Error> {
        if self.dims.len() > MAX_DIMS {
            return Err(Error::TooManyDims {
                tensor: self.name.clone(),
                n_dims: self.dims.len() as u64,
            });
        }
        let too_large = || Error::TensorTooLarge {
            tensor: self.name.clone(),
        };
        let mut n: u64 = 1;
        for &d in &self.dims {
            // ggml's dims are i64, checked non-negative.
            if d > i64::MAX as u64 {
                return Err(too_large());
            }
            n = n.checked_mul(d).ok_or_else(too_large)?;
        }
        if n > i64::MAX as u64 {
            return Err(too_large());
        }
        let row = self.dims.first().copied().unwrap_or(1);
        let block = self.ty.block_size();
        if !row.is_multiple_of(block) {
            return Err(Error::NotWholeBlocks {
                tensor: self.name.clone(),
                row,
                ty: self.ty,
                block,
            });
        }
        self.ty.bytes_for(n).ok_or_else(too_large)
    }
}

/// A tensor: its description and its bytes, borrowed from the file when read with
/// [`Gguf::read`].
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<'a> {
    /// Name, dims and type.
    pub info: TensorInfo,
    /// The data, [`TensorInfo::n_bytes`] long.
    pub data: Cow<'a, [u8]>,
}

impl<'a> Tensor<'a> {
    /// A tensor, checked: the description as [`TensorInfo::new`], and the data's length.
    ///
    /// # Errors
    /// Those of [`TensorInfo::new`], and [`Error::DataSizeMismatch`].
    pub fn new(
        name: impl Into<String>,
        dims: Vec<u64>,
        ty: GgmlType,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<Self, Error> {
        let info = TensorInfo::new(name, dims, ty)?;
        let data = data.into();
        check_size(&info, data.len())?;
        Ok(Self { info, data })
    }

    /// The values as `f32`: F32, F16 and BF16 converted exactly, the block types of
    /// [`crate::compat::ggml`] (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`, `Q2_K` to `Q8_K`)
    /// dequantized as ggml's `dequantize_row_*` computes them, bit for bit.
    ///
    /// ```
    /// use lowbit::compat::ggml::{BlockQ6_K, GgmlBlock};
    /// use lowbit::io::gguf::{GgmlType, Tensor};
    ///
    /// let w: Vec<f32> = (0..512).map(|i| (i as f32 * 0.1).sin()).collect();
    /// let q = BlockQ6_K::quantize(&w)?;
    /// let t = Tensor::new("blk.0.ffn_up.weight", vec![256, 2], GgmlType::Q6_K, bytemuck::cast_slice(&q))?;
    /// assert_eq!(t.to_f32()?, BlockQ6_K::dequantize(&q));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Unsupported`] for the other types (IQ types, integers, ...),
    /// [`Error::TensorTooLarge`] when the element count does not fit in `usize`.
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        let tensor = || self.info.name.clone();
        let n = usize::try_from(self.info.n_elements()).map_err(|_| Error::TensorTooLarge { tensor: tensor() })?;
        match dequant::to_f32(self.info.ty, &self.data, n) {
            Some(r) => r.map_err(|source| Error::Quant {
                tensor: tensor(),
                source,
            }),
            None => Err(Error::Unsupported {
                tensor: tensor(),
                reason: format!("lowbit cannot convert {} to f32", self.info.ty),
            }),
        }
    }

    /// The same tensor owning its data.
    pub fn into_owned(self) -> Tensor<'static> {
        Tensor {
            info: self.info,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

fn check_size(info: &TensorInfo, len: usize) -> Result<(), Error> {
    let expected = info.checked_n_bytes()?;
    if expected != len as u64 {
        return Err(Error::DataSizeMismatch {
            tensor: info.name.clone(),
            expected,
            actual: len as u64,
        });
    }
    Ok(())
}

/// A whole GGUF file in memory: version, metadata and tensors in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Gguf<'a> {
    /// The version (2 or 3); [`Gguf::new`] sets [`VERSION`].
    pub version: u32,
    /// Key/value metadata.
    pub metadata: Metadata,
    /// Tensors, in file order.
    pub tensors: Vec<Tensor<'a>>,
}

impl Default for Gguf<'_> {
    fn default() -> Self {
        Self {
            version: VERSION,
            metadata: Metadata::new(),
            tensors: Vec::new(),
        }
    }
}

impl<'a> Gguf<'a> {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a file held in memory; the tensors borrow their data from `bytes`.
    ///
    /// # Errors
    /// Any of the format errors listed on [`Error`].
    pub fn read(bytes: &'a [u8]) -> Result<Self, Error> {
        read::read_slice(bytes)
    }

    /// Read a whole file from a reader, from its current position to its end.
    ///
    /// # Errors
    /// As [`Gguf::read`], and [`Error::Io`].
    pub fn read_from<R: Read + Seek>(reader: R) -> Result<Gguf<'static>, Error> {
        GgufReader::new(reader)?.into_gguf()
    }

    /// Write the file: header, metadata, tensor infos with offsets laid out consecutively
    /// (each tensor padded to the alignment), padding, data.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::BadAlignment`], [`Error::EmptyKey`], [`Error::DuplicateTensor`],
    /// [`Error::UnsupportedVersion`], the [`TensorInfo::new`] errors and
    /// [`Error::DataSizeMismatch`] for a file that cannot be written as it is.
    pub fn write<W: Write>(&self, writer: W) -> Result<(), Error> {
        let infos: Vec<TensorInfo> = self.tensors.iter().map(|t| t.info.clone()).collect();
        let mut w = GgufWriter::new(writer, self.version, &self.metadata, &infos)?;
        for t in &self.tensors {
            w.write_tensor(&t.data)?;
        }
        w.finish()?;
        Ok(())
    }

    /// [`Gguf::write`] into a new buffer.
    ///
    /// # Errors
    /// As [`Gguf::write`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor<'a>> {
        self.tensors.iter().find(|t| t.info.name == name)
    }

    /// The same file owning all its data.
    pub fn into_owned(self) -> Gguf<'static> {
        Gguf {
            version: self.version,
            metadata: self.metadata,
            tensors: self.tensors.into_iter().map(Tensor::into_owned).collect(),
        }
    }

    /// Re-quantize as [`requantize`] does, in memory.
    ///
    /// # Errors
    /// As [`requantize`].
    pub fn requantize(&self, target: Target, options: &RequantizeOptions) -> Result<(Gguf<'static>, Report), Error> {
        requantize::requantize_gguf(self, target, options)
    }
}
