//! llama.cpp's importance-matrix files, what `llama-imatrix` writes and `llama-quantize
//! --imatrix` reads: read, filter, look up per tensor, and write.
//!
//! An importance matrix holds, for each weight matrix of a model, the mean of the squared
//! activations entering each of its columns (`n_per_row` values; `n_per_row × n_expert` for a
//! mixture-of-experts tensor): the per-column weights of
//! [`crate::compat::ggml::quantize_with_imatrix`].
//!
//! Two file formats exist, and [`Imatrix::read`] takes both, as `llama-quantize` does:
//! - **GGUF** (current llama.cpp, `general.type = "imatrix"`): for each entry a tensor
//!   `<name>.in_sum2` (F32, `[n_per_row, n_mat]`, the sums of squares) and `<name>.counts` (F32,
//!   `[1, n_mat]`, the activations counted); keys `imatrix.datasets` (array of strings),
//!   `imatrix.chunk_count` and `imatrix.chunk_size` (`u32`). An entry's importance is
//!   `in_sum2 / count` for each matrix (the count rounded to an integer first), and `1.0` for a
//!   matrix that never got a count.
//! - **Legacy `.dat`**: `i32` entry count, then per entry `i32` name length, the name, `i32`
//!   `ncall`, `i32` value count and the values (`f32`, the mean times `ncall`), then optionally
//!   `i32` chunk count, `i32` dataset-name length and the dataset name; all little-endian. An
//!   entry's importance is `value / ncall` (the values as they are when `ncall <= 0`).
//!
//! The arithmetic is `llama-quantize`'s (`load_imatrix`, `load_legacy_imatrix`): each
//! importance is one `f32` division, so lowbit hands the quantizers the same bits.
//!
//! Input is untrusted: counts and lengths are checked against the bytes left before anything
//! is allocated, and a file that `llama-quantize` would misread (an `in_sum2` without its
//! `counts`, counts of the wrong length, a non-F32 tensor, a negative length) or whose
//! importances are not finite is an [`Error::Imatrix`] naming the entry.
//!
//! ```
//! use lowbit::io::gguf::Imatrix;
//!
//! // What a calibration run measured: the mean squared activation of each column.
//! let mut m = Imatrix::new();
//! m.insert("blk.0.ffn_down.weight", vec![0.5, 2.0, 1.0, 4.0])?;
//! m.set_provenance(vec!["calibration.txt".into()], 100, 512);
//!
//! // llama-imatrix's GGUF format (and the legacy one), read back to the same values.
//! let bytes = m.to_bytes()?;
//! let back = Imatrix::read(&bytes)?;
//! assert_eq!(back.get("blk.0.ffn_down.weight"), Some(&[0.5, 2.0, 1.0, 4.0][..]));
//! assert_eq!((back.chunk_count(), back.chunk_size()), (100, Some(512)));
//! assert_eq!(Imatrix::read(&m.to_legacy_bytes()?)?.get("blk.0.ffn_down.weight"), back.get("blk.0.ffn_down.weight"));
//! # Ok::<(), lowbit::io::gguf::Error>(())
//! ```

use std::collections::BTreeMap;

use super::{Array, Error, GgmlType, Gguf, Tensor, TensorInfo, Value, MAGIC};

/// `imatrix.datasets`: the calibration data files.
pub const DATASETS_KEY: &str = "imatrix.datasets";
/// `imatrix.chunk_count`: chunks of `chunk_size` tokens the statistics were collected on.
pub const CHUNK_COUNT_KEY: &str = "imatrix.chunk_count";
/// `imatrix.chunk_size`: tokens per chunk.
pub const CHUNK_SIZE_KEY: &str = "imatrix.chunk_size";
/// The suffix of the sums-of-squares tensors.
pub const SUMS_SUFFIX: &str = ".in_sum2";
/// The suffix of the count tensors.
pub const COUNTS_SUFFIX: &str = ".counts";

/// Which of the two file formats an [`Imatrix`] was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImatrixFormat {
    /// The GGUF file of current llama.cpp.
    Gguf,
    /// The legacy `.dat` file.
    Legacy,
}

/// One entry: the importances, and how many matrices (experts) they cover.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    values: Vec<f32>,
    n_mat: usize,
}

/// An importance matrix: per tensor name, one importance per column (per matrix of a
/// mixture-of-experts tensor), with the provenance llama.cpp records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imatrix {
    entries: BTreeMap<String, Entry>,
    datasets: Vec<String>,
    chunk_count: u32,
    chunk_size: Option<u32>,
    format: Option<ImatrixFormat>,
}

fn imatrix_error(entry: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Imatrix {
        entry: entry.into(),
        reason: reason.into(),
    }
}

fn check_finite(name: &str, values: &[f32]) -> Result<(), Error> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(imatrix_error(
            name,
            format!("importance {i} is not finite ({})", values[i]),
        )),
        None => Ok(()),
    }
}

impl Imatrix {
    /// An empty importance matrix (no entries, no datasets, 0 chunks).
    pub fn new() -> Self {
        Self::default()
    }

    /// Read either format: GGUF when the bytes start with `GGUF`, the legacy format otherwise
    /// (`llama-quantize` falls back to the legacy reader when ggml's GGUF reader fails).
    ///
    /// # Errors
    /// Those of [`Imatrix::read_gguf`] or [`Imatrix::read_legacy`].
    pub fn read(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.starts_with(&MAGIC) {
            Self::read_gguf(bytes)
        } else {
            Self::read_legacy(bytes)
        }
    }

    /// Read a GGUF importance matrix (`load_imatrix` of `llama-quantize`). Tensors whose
    /// names end neither in `.in_sum2` nor `.counts` are ignored, as there.
    ///
    /// # Errors
    /// The GGUF format errors of [`Gguf::read`]; [`Error::Imatrix`] for a file without
    /// tensors, without the three `imatrix.*` keys (or with keys of the wrong type), an
    /// entry missing its sums or counts, a tensor that is not F32 or has more than two dims,
    /// counts whose length is not the sums' `dims[1]`, and importances that are not finite.
    pub fn read_gguf(bytes: &[u8]) -> Result<Self, Error> {
        let g = Gguf::read(bytes)?;
        if g.tensors.is_empty() {
            return Err(imatrix_error("", "the file holds no tensors"));
        }
        let datasets = match g.metadata.get(DATASETS_KEY).and_then(Value::as_array) {
            Some(Array::String(v)) => v.iter().map(|s| s.to_string_lossy().into_owned()).collect(),
            _ => {
                return Err(imatrix_error(
                    "",
                    format!("{DATASETS_KEY} is missing or not an array of strings"),
                ))
            }
        };
        let key_u32 = |key: &str| {
            g.metadata
                .get(key)
                .and_then(Value::as_u32)
                .ok_or_else(|| imatrix_error("", format!("{key} is missing or not a u32")))
        };
        let chunk_count = key_u32(CHUNK_COUNT_KEY)?;
        let chunk_size = key_u32(CHUNK_SIZE_KEY)?;

        let mut pairs: BTreeMap<&str, (Option<&Tensor>, Option<&Tensor>)> = BTreeMap::new();
        for t in &g.tensors {
            let name = t.info.name.as_str();
            if let Some(base) = name.strip_suffix(SUMS_SUFFIX) {
                pairs.entry(base).or_default().0 = Some(t);
            } else if let Some(base) = name.strip_suffix(COUNTS_SUFFIX) {
                pairs.entry(base).or_default().1 = Some(t);
            }
        }
        let mut entries = BTreeMap::new();
        for (name, pair) in pairs {
            let (Some(sums), Some(counts)) = pair else {
                return Err(imatrix_error(name, "mismatched sums and counts"));
            };
            for t in [sums, counts] {
                if t.info.ty != GgmlType::F32 {
                    return Err(imatrix_error(
                        name,
                        format!("{} is {}, not F32", t.info.name, t.info.ty),
                    ));
                }
                if t.info.ggml_n_dims() > 2 {
                    return Err(imatrix_error(name, format!("{} has more than two dims", t.info.name)));
                }
            }
            let ne0 = sums.info.dims.first().copied().unwrap_or(1);
            let ne1 = sums.info.dims.get(1).copied().unwrap_or(1);
            if counts.info.n_elements() != ne1 {
                return Err(imatrix_error(
                    name,
                    format!("{} counts for {ne1} matrices", counts.info.n_elements()),
                ));
            }
            if ne0 == 0 || ne1 == 0 {
                return Err(imatrix_error(name, "no values"));
            }
            // The data are borrowed from the file, perhaps unaligned: read them by bytes.
            let f32s = |t: &Tensor| -> Vec<f32> {
                t.data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            let sums_v = f32s(sums);
            // llama.cpp rounds the counts to integers (`lround`) before it divides by them.
            let counts_v: Vec<f32> = f32s(counts).iter().map(|&c| lround(c) as f32).collect();
            let ne0 = ne0 as usize;
            let mut values = Vec::with_capacity(sums_v.len());
            for (row, &count) in sums_v.chunks_exact(ne0).zip(&counts_v) {
                if count > 0.0 {
                    values.extend(row.iter().map(|&s| s / count));
                } else {
                    // A matrix that never got input (an expert no token was routed to).
                    values.extend(std::iter::repeat_n(1.0, ne0));
                }
            }
            check_finite(name, &values)?;
            entries.insert(
                name.to_string(),
                Entry {
                    values,
                    n_mat: ne1 as usize,
                },
            );
        }
        Ok(Self {
            entries,
            datasets,
            chunk_count,
            chunk_size: Some(chunk_size),
            format: Some(ImatrixFormat::Gguf),
        })
    }

    /// Read a legacy `.dat` importance matrix (`load_legacy_imatrix` of `llama-quantize`).
    /// A name ends at its first NUL byte, as a C string; a name met twice keeps its last
    /// values.
    ///
    /// # Errors
    /// [`Error::Truncated`] for a file that ends inside a field (the trailer included),
    /// [`Error::CountTooLarge`] for a length the bytes left cannot hold, [`Error::Imatrix`] for
    /// an entry count below 1, a negative name length, a value count below 1, or non-finite
    /// importances.
    pub fn read_legacy(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Cursor { bytes, pos: 0 };
        let n_entries = r.i32("entry count")?;
        if n_entries < 1 {
            return Err(imatrix_error("", format!("no data: {n_entries} entries")));
        }
        let mut entries = BTreeMap::new();
        for i in 0..n_entries {
            let context = || format!("imatrix entry #{i}");
            let len = r.i32(&context())?;
            let len = usize::try_from(len).map_err(|_| imatrix_error(context(), format!("name length {len}")))?;
            let raw = r.take(len, &context())?;
            let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
            let name = String::from_utf8_lossy(raw).into_owned();
            let ncall = r.i32(&name)?;
            let nval = r.i32(&name)?;
            let nval = match usize::try_from(nval) {
                Ok(n) if n >= 1 => n,
                _ => return Err(imatrix_error(name, format!("{nval} values"))),
            };
            let data = r.take_count(nval, 4, &name)?;
            let mut values: Vec<f32> = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if ncall > 0 {
                let n = ncall as f32;
                values.iter_mut().for_each(|v| *v /= n);
            }
            check_finite(&name, &values)?;
            entries.insert(name, Entry { values, n_mat: 1 });
        }
        // The trailer (chunk count, dataset name) is optional; as in llama.cpp a negative count
        // counts no chunks and a name of length 0 or less is no dataset.
        let mut chunk_count = 0;
        let mut datasets = Vec::new();
        if r.pos < bytes.len() {
            chunk_count = u32::try_from(r.i32("imatrix chunk count")?).unwrap_or(0);
            let len = r.i32("imatrix dataset name length")?;
            if let Ok(len @ 1..) = usize::try_from(len) {
                let name = r.take(len, "imatrix dataset name")?;
                let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
                datasets.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        Ok(Self {
            entries,
            datasets,
            chunk_count,
            chunk_size: None,
            format: Some(ImatrixFormat::Legacy),
        })
    }

    /// The format the matrix was read from (`None` for one built with [`Imatrix::new`]).
    pub fn format(&self) -> Option<ImatrixFormat> {
        self.format
    }

    /// The calibration datasets recorded in the file.
    pub fn datasets(&self) -> &[String] {
        &self.datasets
    }

    /// Chunks the statistics were collected on (0 when a legacy file does not say).
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// Tokens per chunk (GGUF files only).
    pub fn chunk_size(&self) -> Option<u32> {
        self.chunk_size
    }

    /// Set the provenance written by [`Imatrix::to_bytes`]: datasets, chunk count and size.
    pub fn set_provenance(&mut self, datasets: Vec<String>, chunk_count: u32, chunk_size: u32) {
        self.datasets = datasets;
        self.chunk_count = chunk_count;
        self.chunk_size = Some(chunk_size);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The importances of an entry (all its matrices, one after the other).
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.entries.get(name).map(|e| e.values.as_slice())
    }

    /// How many matrices (experts) an entry covers: 1 for a plain weight matrix.
    pub fn n_matrices(&self, name: &str) -> Option<usize> {
        self.entries.get(name).map(|e| e.n_mat)
    }

    /// Add or replace an entry of one matrix; returns the importances it replaces.
    ///
    /// # Errors
    /// [`Error::Imatrix`] for no values or a NaN or infinite one.
    pub fn insert(&mut self, name: impl Into<String>, importance: Vec<f32>) -> Result<Option<Vec<f32>>, Error> {
        self.insert_experts(name, importance, 1)
    }

    /// Add or replace an entry of `n_mat` matrices of equal width (the experts of a
    /// mixture-of-experts tensor, one after the other); returns the importances it replaces.
    ///
    /// # Errors
    /// [`Error::Imatrix`] for no values, `n_mat` 0 or not dividing the length, or a NaN or
    /// infinite value.
    pub fn insert_experts(
        &mut self,
        name: impl Into<String>,
        importance: Vec<f32>,
        n_mat: usize,
    ) -> Result<Option<Vec<f32>>, Error> {
        let name = name.into();
        if importance.is_empty() || n_mat == 0 || !importance.len().is_multiple_of(n_mat) {
            return Err(imatrix_error(
                name,
                format!("{} values cannot be {n_mat} matrices", importance.len()),
            ));
        }
        check_finite(&name, &importance)?;
        Ok(self
            .entries
            .insert(
                name,
                Entry {
                    values: importance,
                    n_mat,
                },
            )
            .map(|e| e.values))
    }

    /// Remove an entry.
    pub fn remove(&mut self, name: &str) -> Option<Vec<f32>> {
        self.entries.remove(name).map(|e| e.values)
    }

    /// `llama-quantize --include-weights P1 --include-weights P2 ...`: keep only the entries
    /// whose name contains one of the patterns (plain substrings).
    pub fn include(&mut self, patterns: &[&str]) {
        self.entries.retain(|name, _| patterns.iter().any(|p| name.contains(p)));
    }

    /// `llama-quantize --exclude-weights P ...`: drop the entries whose name contains one of
    /// the patterns.
    pub fn exclude(&mut self, patterns: &[&str]) {
        self.entries
            .retain(|name, _| !patterns.iter().any(|p| name.contains(p)));
    }

    /// The importances `llama-quantize` uses for a tensor (`llama_model_quantize_impl`): the
    /// entry of the same name when it has `dims[0] × dims[2]` values (row length times
    /// experts), `None` when there is no entry.
    ///
    /// # Errors
    /// [`Error::Imatrix`] when the entry has another size, as `llama-quantize` refuses it —
    /// except for `token_embd.weight`, which gets `None` (llama.cpp ignores that mismatch,
    /// which an output-layer imatrix entry always causes).
    pub fn for_tensor(&self, info: &TensorInfo) -> Result<Option<&[f32]>, Error> {
        let Some(values) = self.get(&info.name) else {
            return Ok(None);
        };
        let ne0 = info.dims.first().copied().unwrap_or(1);
        let ne2 = info.dims.get(2).copied().unwrap_or(1);
        if ne0.checked_mul(ne2) == Some(values.len() as u64) {
            Ok(Some(values))
        } else if info.name == "token_embd.weight" {
            Ok(None)
        } else {
            Err(imatrix_error(
                &info.name,
                format!(
                    "imatrix size {} is different from tensor size {}",
                    values.len(),
                    ne0.saturating_mul(ne2)
                ),
            ))
        }
    }

    /// The file in llama-imatrix's GGUF format: `general.type = "imatrix"`, the three
    /// `imatrix.*` keys, and per entry (sorted by name) `<name>.in_sum2` holding the
    /// importances and `<name>.counts` holding 1 per matrix, so that reading it gives the same
    /// values bit for bit.
    ///
    /// # Errors
    /// [`Error::Imatrix`] for a matrix without entries (llama.cpp refuses a file without
    /// tensors), [`Error::TensorTooLarge`] for an entry too large for a GGUF tensor.
    pub fn to_gguf(&self) -> Result<Gguf<'static>, Error> {
        if self.is_empty() {
            return Err(imatrix_error("", "no entries to write"));
        }
        let mut g = Gguf::new();
        g.metadata.insert("general.type", "imatrix");
        let datasets: Vec<&str> = self.datasets.iter().map(String::as_str).collect();
        g.metadata.insert(DATASETS_KEY, datasets);
        g.metadata.insert(CHUNK_COUNT_KEY, self.chunk_count);
        g.metadata.insert(CHUNK_SIZE_KEY, self.chunk_size.unwrap_or(0));
        for (name, e) in &self.entries {
            let ne0 = (e.values.len() / e.n_mat) as u64;
            let sums: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let counts: Vec<u8> = std::iter::repeat_n(1f32.to_le_bytes(), e.n_mat).flatten().collect();
            g.tensors.push(Tensor::new(
                format!("{name}{SUMS_SUFFIX}"),
                vec![ne0, e.n_mat as u64],
                GgmlType::F32,
                sums,
            )?);
            g.tensors.push(Tensor::new(
                format!("{name}{COUNTS_SUFFIX}"),
                vec![1, e.n_mat as u64],
                GgmlType::F32,
                counts,
            )?);
        }
        Ok(g)
    }

    /// [`Imatrix::to_gguf`] as bytes.
    ///
    /// # Errors
    /// As [`Imatrix::to_gguf`] and [`Gguf::to_bytes`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        self.to_gguf()?.to_bytes()
    }

    /// The file in the legacy `.dat` format (`ncall` 1, so the values are the importances;
    /// the first dataset, or an empty name, in the trailer). Experts are not told apart in
    /// that format: an entry of several matrices is written as one row of all their values.
    ///
    /// # Errors
    /// [`Error::Imatrix`] for no entries (llama.cpp refuses a file without), more entries,
    /// longer names or more values than an `i32` counts, or an entry name with a NUL byte (it
    /// would be cut there when read).
    pub fn to_legacy_bytes(&self) -> Result<Vec<u8>, Error> {
        if self.is_empty() {
            return Err(imatrix_error("", "no entries to write"));
        }
        let i32_of = |n: usize, what: &str| {
            i32::try_from(n).map_err(|_| imatrix_error(what, format!("{n} is more than an i32 counts")))
        };
        let mut out = Vec::new();
        out.extend(i32_of(self.entries.len(), "entry count")?.to_le_bytes());
        for (name, e) in &self.entries {
            if name.contains('\0') {
                return Err(imatrix_error(name, "a NUL byte in the name"));
            }
            out.extend(i32_of(name.len(), name)?.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(1i32.to_le_bytes());
            out.extend(i32_of(e.values.len(), name)?.to_le_bytes());
            out.extend(e.values.iter().flat_map(|v| v.to_le_bytes()));
        }
        let dataset = self.datasets.first().map_or("", String::as_str);
        out.extend(i32_of(self.chunk_count as usize, "chunk count")?.to_le_bytes());
        out.extend(i32_of(dataset.len(), "dataset")?.to_le_bytes());
        out.extend(dataset.as_bytes());
        Ok(out)
    }
}

/// C's `lround` (half away from zero), saturating where C's is undefined (NaN gives 0).
fn lround(x: f32) -> i64 {
    x.round() as i64
}

/// A little-endian reader over untrusted bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, context: &str) -> Result<&'a [u8], Error> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(Error::Truncated {
                context: context.to_string(),
                offset: self.pos as u64,
                needed: n as u64,
                available: left as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// `count` items of `size` bytes, refused before any allocation when they cannot fit.
    fn take_count(&mut self, count: usize, size: usize, context: &str) -> Result<&'a [u8], Error> {
        let left = self.bytes.len() - self.pos;
        match count.checked_mul(size) {
            Some(n) if n <= left => self.take(n, context),
            _ => Err(Error::CountTooLarge {
                context: context.to_string(),
                count: count as u64,
                available: left as u64,
            }),
        }
    }

    fn i32(&mut self, context: &str) -> Result<i32, Error> {
        let b = self.take(4, context)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests;
