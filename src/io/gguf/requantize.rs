//! Re-quantization of a GGUF model as llama.cpp's `llama-quantize` does it
//! (`src/llama-quant.cpp`: `llama_model_quantize_impl`; the type of each tensor is
//! [`super::mix`]'s), for the types lowbit has, with or without an importance matrix.

use std::borrow::Cow;
use std::io::{Read, Seek, Write};

use super::dequant::from_f32_weighted;
use super::dequant::{from_f32, readable, to_f32, to_half, writable_block};
use super::mix::{parse_layer, TypeChooser};
use super::{
    Error, GgmlType, Gguf, GgufReader, GgufWriter, Imatrix, Metadata, Target, Tensor, TensorInfo, Value, VERSION,
};

/// `llama-quantize`'s options that apply to the targets lowbit has. The default is
/// `llama-quantize`'s default.
///
/// The struct is `#[non_exhaustive]`, so that options can be added (an importance matrix, a
/// per-tensor type override) without breaking code that builds one: start from
/// [`RequantizeOptions::default`] and set fields, or chain the `with_*` methods.
///
/// ```
/// use lowbit::io::gguf::{GgmlType, RequantizeOptions};
/// let opts = RequantizeOptions::default().with_pure(true).with_output_tensor_type(Some(GgmlType::Q8_0));
/// assert!(opts.pure);
/// let mut opts = RequantizeOptions::default();
/// opts.leave_output_tensor = true;
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RequantizeOptions {
    /// `--pure`: every quantizable tensor gets the target's type: no mix rule, no
    /// `output.weight` rule (rows that are not whole blocks still fall back).
    pub pure: bool,
    /// `--leave-output-tensor`: `output.weight` keeps its type.
    pub leave_output_tensor: bool,
    /// `--output-tensor-type`: the type of `output.weight`, and of `token_embd.weight` when
    /// the model has no `output.weight` (one lowbit writes: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
    /// Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`: the type of `token_embd.weight` (as above).
    pub token_embedding_type: Option<GgmlType>,
    /// `--allow-requantize`: convert tensors that are already quantized (lowbit dequantizes
    /// the block types it has, Q4_0 to Q8_K).
    pub allow_requantize: bool,
    /// `--imatrix FILE`: the importance matrix ([`Imatrix::read`]; filter it first with
    /// [`Imatrix::include`] / [`Imatrix::exclude`] for `--include-weights` /
    /// `--exclude-weights`). See [`requantize`] for what it changes. An empty matrix counts
    /// as none, as in `llama-quantize`.
    pub imatrix: Option<Imatrix>,
    /// The file name recorded as `quantize.imatrix.file` (`llama-quantize` records the path
    /// it was given, cut to 127 bytes).
    pub imatrix_file: String,
}

impl RequantizeOptions {
    /// With [`RequantizeOptions::pure`] set.
    #[must_use]
    pub fn with_pure(mut self, pure: bool) -> Self {
        self.pure = pure;
        self
    }

    /// With [`RequantizeOptions::leave_output_tensor`] set.
    #[must_use]
    pub fn with_leave_output_tensor(mut self, leave: bool) -> Self {
        self.leave_output_tensor = leave;
        self
    }

    /// With [`RequantizeOptions::output_tensor_type`] set.
    #[must_use]
    pub fn with_output_tensor_type(mut self, ty: Option<GgmlType>) -> Self {
        self.output_tensor_type = ty;
        self
    }

    /// With [`RequantizeOptions::token_embedding_type`] set.
    #[must_use]
    pub fn with_token_embedding_type(mut self, ty: Option<GgmlType>) -> Self {
        self.token_embedding_type = ty;
        self
    }

    /// With [`RequantizeOptions::allow_requantize`] set.
    #[must_use]
    pub fn with_allow_requantize(mut self, allow: bool) -> Self {
        self.allow_requantize = allow;
        self
    }

    /// With an importance matrix read from the file named `file` (the name recorded in the
    /// output, see [`RequantizeOptions::imatrix_file`]).
    #[must_use]
    pub fn with_imatrix(mut self, file: impl Into<String>, imatrix: Imatrix) -> Self {
        self.imatrix_file = file.into();
        self.imatrix = Some(imatrix);
        self
    }

    /// The importance matrix if it has entries (`llama-quantize` ignores an empty one).
    pub(super) fn active_imatrix(&self) -> Option<&Imatrix> {
        self.imatrix.as_ref().filter(|m| !m.is_empty())
    }
}

/// What happened to one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorReport {
    /// The name.
    pub name: String,
    /// Dims written (ggml order; trailing 1s dropped, as ggml writes them; a 0 is kept).
    pub dims: Vec<u64>,
    /// The type in the source.
    pub type_in: GgmlType,
    /// The type written.
    pub type_out: GgmlType,
    /// The type `llama-quantize` writes: always `type_out` (every type llama.cpp picks for
    /// the targets lowbit has is one lowbit writes; a type it could not write would be an
    /// [`Error::Unsupported`]).
    pub llama_cpp_type: GgmlType,
    /// Bytes in the source.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// The per-tensor report of a re-quantization, in output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `general.file_type` written.
    pub file_type: u32,
    /// One entry per tensor.
    pub tensors: Vec<TensorReport>,
}

impl Report {
    /// Bytes of tensor data in.
    pub fn bytes_in(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes_in).sum()
    }

    /// Bytes of tensor data out.
    pub fn bytes_out(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes_out).sum()
    }
}

/// The types lowbit writes.
fn writable(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) || writable_block(ty)
}

/// `GGML_QNT_VERSION`, written to `general.quantization_version`.
const QUANTIZATION_VERSION: u32 = 2;

struct Plan {
    metadata: Metadata,
    /// Source index of each output tensor.
    order: Vec<usize>,
    out: Vec<TensorInfo>,
    report: Report,
}

fn plan(metadata: &Metadata, tensors: &[TensorInfo], target: Target, opts: &RequantizeOptions) -> Result<Plan, Error> {
    for ty in [opts.output_tensor_type, opts.token_embedding_type]
        .into_iter()
        .flatten()
    {
        if !writable(ty) {
            return Err(Error::Unsupported {
                tensor: String::new(),
                reason: format!("lowbit does not write {ty} tensors"),
            });
        }
    }
    if metadata
        .get("split.count")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(Error::Unsupported {
            tensor: String::new(),
            reason: "a split GGUF file: merge the parts first (llama-gguf-split --merge)".to_owned(),
        });
    }
    let mut meta = metadata.clone();
    meta.set_last("general.quantization_version", QUANTIZATION_VERSION);
    meta.set_last("general.file_type", target.file_type());
    for key in ["split.no", "split.count", "split.tensors.count"] {
        meta.remove(key);
    }
    if let Some(m) = opts.active_imatrix() {
        // llama-quantize's key/value overrides, in its order, strings cut to 127 bytes.
        let cut = |s: &str| {
            let mut end = s.len().min(127);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        meta.set_last("quantize.imatrix.file", cut(&opts.imatrix_file));
        if let Some(d) = m.datasets().first() {
            meta.set_last("quantize.imatrix.dataset", cut(d));
        }
        meta.set_last("quantize.imatrix.entries_count", m.len() as u32);
        if m.chunk_count() > 0 {
            meta.set_last("quantize.imatrix.chunks_count", m.chunk_count());
        }
    }

    let mut chooser = TypeChooser::new(metadata, tensors, target, opts);

    // llama_model_loader's weights_map order: layer (-1 for names without one), then name.
    let layer = |name: &str| parse_layer(name).unwrap_or(-1);
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&tensors[a].name, &tensors[b].name);
        (layer(a), a).cmp(&(layer(b), b))
    });

    let mut out = Vec::with_capacity(order.len());
    let mut reports = Vec::with_capacity(order.len());
    for &i in &order {
        let t = &tensors[i];
        let llama_cpp_type = chooser.choose(t)?;
        let ty = llama_cpp_type;
        if ty != t.ty && !writable(ty) {
            return Err(Error::Unsupported {
                tensor: t.name.clone(),
                reason: format!("llama.cpp writes this tensor as {ty}, which lowbit does not write"),
            });
        }
        if ty != t.ty {
            check_convertible(t, opts)?;
        }
        // Trailing 1s dropped, as ggml writes them (`ggml_n_dims`), but never a 0: ggml would
        // drop a trailing 0 too and write a tensor of no bytes with dims that need some.
        let n = t.dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
        let dims = (0..n).map(|d| t.dims.get(d).copied().unwrap_or(1)).collect();
        let info = TensorInfo::new(t.name.clone(), dims, ty)?;
        reports.push(TensorReport {
            name: t.name.clone(),
            dims: info.dims.clone(),
            type_in: t.ty,
            type_out: ty,
            llama_cpp_type,
            bytes_in: t.n_bytes(),
            bytes_out: info.n_bytes(),
        });
        out.push(info);
    }
    Ok(Plan {
        metadata: meta,
        order,
        out,
        report: Report {
            file_type: target.file_type(),
            tensors: reports,
        },
    })
}

fn check_convertible(t: &TensorInfo, opts: &RequantizeOptions) -> Result<(), Error> {
    let reason = match t.ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => return Ok(()),
        ty if ty.is_quantized() && readable(ty) && opts.allow_requantize => return Ok(()),
        ty if ty.is_quantized() && !opts.allow_requantize => {
            format!("requantizing from type {ty} is disabled (see RequantizeOptions::allow_requantize)")
        }
        ty if ty.is_quantized() => format!("lowbit cannot dequantize {ty}"),
        ty => format!("cannot convert tensor type {ty}"),
    };
    Err(Error::Unsupported {
        tensor: t.name.clone(),
        reason,
    })
}

/// A tensor's data in `to`, converted through `f32` as llama-quantize does, with the
/// importance matrix's weights for it when there are some.
fn convert<'d>(
    data: &'d [u8],
    from: &TensorInfo,
    to: GgmlType,
    opts: &RequantizeOptions,
) -> Result<Cow<'d, [u8]>, Error> {
    if from.ty == to {
        return Ok(Cow::Borrowed(data));
    }
    let weights = match opts.active_imatrix() {
        Some(m) => m.for_tensor(from)?,
        None => None,
    };
    let name = || from.name.clone();
    let quant = |source| Error::Quant { tensor: name(), source };
    let n = usize::try_from(from.n_elements()).map_err(|_| Error::TensorTooLarge { tensor: name() })?;
    let x = match to_f32(from.ty, data, n) {
        Some(x) => x.map_err(quant)?,
        None => {
            return Err(Error::Unsupported {
                tensor: name(),
                reason: format!("cannot convert tensor type {}", from.ty),
            })
        }
    };
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            tensor: name(),
            index: i as u64,
        });
    }
    let out: Vec<u8> = match to {
        GgmlType::F32 => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        // Values beyond the type's range round to infinity, which llama-quantize refuses.
        GgmlType::F16 | GgmlType::BF16 => to_half(to, &x).map_err(|i| Error::NonFinite {
            tensor: name(),
            index: i as u64,
        })?,
        _ => match weights.map_or_else(
            || from_f32(to, &x),
            |w| {
                let dim = |i: usize| from.dims.get(i).map_or(1, |&d| d as usize);
                from_f32_weighted(to, &x, dim(0), dim(1), w)
            },
        ) {
            Some(b) => b.map_err(quant)?,
            None => {
                return Err(Error::Unsupported {
                    tensor: name(),
                    reason: format!("lowbit does not write {to} tensors"),
                })
            }
        },
    };
    Ok(Cow::Owned(out))
}

/// What [`requantize`] would write for a model with this metadata and these tensors, without
/// converting anything (`llama-quantize --dry-run`): each tensor's type in llama.cpp's order
/// and its size, and `general.file_type`.
///
/// ```
/// use lowbit::io::gguf::{requantize_plan, GgmlType, Metadata, RequantizeOptions, Target, TensorInfo};
///
/// let mut metadata = Metadata::new();
/// metadata.insert("general.architecture", "llama");
/// metadata.insert("llama.block_count", 1u32);
/// let tensors = vec![
///     TensorInfo::new("blk.0.attn_v.weight", vec![4096, 4096], GgmlType::F16)?,
///     TensorInfo::new("blk.0.ffn_down.weight", vec![11008, 4096], GgmlType::F16)?,
///     TensorInfo::new("blk.0.ffn_up.weight", vec![4096, 11008], GgmlType::F16)?,
/// ];
/// let report = requantize_plan(&metadata, &tensors, Target::Q4_K_M, &RequantizeOptions::default())?;
/// let types: Vec<_> = report.tensors.iter().map(|t| t.type_out).collect();
/// assert_eq!(types, [GgmlType::Q6_K, GgmlType::Q6_K, GgmlType::Q4_K]);
/// assert_eq!(report.file_type, 15);
/// # Ok::<(), lowbit::io::gguf::Error>(())
/// ```
///
/// # Errors
/// As [`requantize`], for the checks that need no tensor data.
pub fn requantize_plan(
    metadata: &Metadata,
    tensors: &[TensorInfo],
    target: Target,
    options: &RequantizeOptions,
) -> Result<Report, Error> {
    plan(metadata, tensors, target, options).map(|p| p.report)
}

/// Re-quantize a GGUF model as llama.cpp's `llama-quantize` does, for the types lowbit has,
/// reading tensors one at a time from `reader` and writing the new file to `writer`.
///
/// The rules (llama.cpp's `src/llama-quant.cpp`):
///
/// - **Which tensors** (`tensor_allows_quantization`): those with two or more dims above 1
///   (`ggml_n_dims >= 2`: 1-D tensors such as norms and biases are kept), whose name ends in
///   `weight` and is none of the kept ones: `*_norm.weight`, `ffn_gate_inp.weight` (MoE
///   routers), `position_embd.weight`, `token_types.weight`, `ssm_conv1d`, RWKV's `time_mix_*`,
///   T5's `attn_rel_b.weight`, the vision and audio encoders' position and patch embeddings,
///   `glm5-next`'s indexer and small SSM projections, ...
///   (and `output.weight` with [`RequantizeOptions::leave_output_tensor`]). Every other tensor is
///   copied byte for byte.
/// - **Which type** (`llama_tensor_get_type`): the target's type ([`Target::ggml_type`]),
///   except, unless [`RequantizeOptions::pure`]:
///   - `output.weight`, and `token_embd.weight` when the model has no `output.weight` (tied
///     embeddings): `Q6_K` for every quantized target but `Q8_0`; `Q8_0` for `falcon` or when
///     its rows are not whole blocks of the target's type.
///   - The K-quant mixes' rules (see each [`Target`] variant), which read the tensor's role
///     from its name (`attn_v`, `attn_qkv` and `attn_kv_b` are attention-V-like; `attn_k`,
///     `attn_output`, `ffn_down`, ...), its position among the tensors of that role in the
///     file's order (the `i_attention_wv` and `i_ffn_down` counters, against the number of
///     attention-V-like tensors and `{arch}.block_count`; with experts, the `blk.N` of the
///     name), `use_more_bits` (the first and last eighth of the layers and every third
///     between), the grouped-query ratio (`{arch}.attention.head_count /
///     head_count_kv` of layer 0: `Q2_K` gives attention V `Q4_K` from 4 up), 70B models
///     (`llama` with 80 layers and grouped-query attention, `qwen2`, `deci` and `olmo` with 80,
///     `jais2` with 68: attention V `Q3_K`/`Q4_K` become `Q5_K`), `falcon`'s own `ffn_down` and
///     `attn_output` rules, and 8-expert models (`{arch}.expert_count == 8`: attention V and K
///     `Q8_0`, `attn_output` `Q5_K` in the `Q2_K` to `Q4_K_M` mixes). `glm5-next`'s
///     `attn_q_a`, `attn_q_b` and `nextn.eh_proj` are `Q8_0`.
///
///   `F16` and `BF16` targets convert every chosen tensor.
///   [`RequantizeOptions::output_tensor_type`] and [`RequantizeOptions::token_embedding_type`]
///   override (with any type lowbit writes, the K-quants included).
/// - **Rows that are not whole blocks** (`tensor_type_fallback`): a 256-block type falls back
///   to a 32-block one (`Q6_K` to `Q8_0`, `Q4_K` to `Q5_0`, `Q5_K` to `Q5_1`, `Q2_K` and `Q3_K`
///   to `Q4_0`); a tensor whose row length (`dims[0]`) is not a multiple of 32 is written as
///   `F16`. Every type llama.cpp picks for these targets is one lowbit writes. (Older
///   llama.cpp fell back from `Q2_K` and `Q3_K` to `IQ4_NL`, which lowbit does not write; the
///   llama.cpp lowbit follows falls back to `Q4_0`, and keeps `IQ4_NL` for the IQ types, which
///   are no [`Target`].) `output.weight` given a type by
///   [`RequantizeOptions::output_tensor_type`], and `token_embd.weight` given one by
///   [`RequantizeOptions::token_embedding_type`], do not fall back, as in llama.cpp: rows
///   that are not whole blocks of that type are an error. (A tied `token_embd.weight` that
///   takes `output_tensor_type` falls back, as in llama.cpp.)
/// - **Importance matrix** ([`RequantizeOptions::imatrix`], `--imatrix`): each quantized
///   tensor with an entry of its size ([`Imatrix::for_tensor`]: row length × experts) is
///   quantized with those per-column weights ([`crate::compat::ggml::quantize_with_imatrix`],
///   ggml's `quantize_<type>(.., quant_weights)`; each expert with its own slice); a tensor
///   without an entry is quantized without; an entry of another size is an error, except for
///   `token_embd.weight`. The `Q4_0` and `Q5_0` mixes then give `ffn_down` of the first eighth
///   of the layers `Q4_1` / `Q5_1`, and the output gets `quantize.imatrix.file`,
///   `quantize.imatrix.dataset` (the first dataset), `quantize.imatrix.entries_count` and
///   `quantize.imatrix.chunks_count` (when above 0), as `llama-quantize` writes them.
/// - **Sources**: F32, F16 and BF16 tensors are converted through `f32` with ggml's reference
///   quantizers ([`crate::compat::ggml`]) or round-to-nearest-even casts; quantized sources only with
///   [`RequantizeOptions::allow_requantize`] (and only the block types lowbit has); NaN,
///   infinities and values that overflow the target are refused, as llama.cpp's
///   `ggml_validate_row_data` refuses them.
/// - **The file**: every metadata key kept in order, except that `general.quantization_version`
///   (`2`) and `general.file_type` ([`Target::file_type`]) are set and moved to the end and the
///   `split.*` keys dropped, as `gguf_set_val_u32` and `gguf_remove_key` do; tensors in
///   llama.cpp's loading order (layer of `blk.N.` names, then name), with trailing 1-dims
///   dropped; version 3.
///
/// Metadata alignment other than 32 is kept and honoured (llama-quantize keeps the key but pads
/// to 32). Split files are refused.
///
/// Checked against `llama-quantize` (llama.cpp as vendored in llama-cpp-python 0.3.36, built
/// with `-DGGML_NATIVE=OFF`; `tests/data/gguf/mixes/`): for an 8-layer GQA llama of width 256
/// (its `ffn_down` rows of 640 falling back) and MiniLM's layer 0 as `bert` (rows of 384), the
/// files of every [`Target`], and with the options above, are `llama-quantize`'s byte for
/// byte, and so are the llama's files of every quantized [`Target`] with an importance matrix
/// (given in either file format); and the type of every tensor
/// of eight model layouts (LLaMA-7B, a small GQA llama with tied embeddings, a 70B llama,
/// Mixtral-8x7B, Qwen2-7B, Falcon-7B, Gemma-2B, MiniLM) for every [`Target`] is the one
/// llama.cpp's own `llama_quant_compute_types` picks.
///
/// ```
/// use std::io::Cursor;
/// use lowbit::io::gguf::{requantize, Gguf, GgmlType, GgufReader, RequantizeOptions, Target, Tensor};
///
/// let f16 = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| half::f16::from_f32((i as f32 * 0.01).sin()).to_le_bytes()).collect() };
/// let mut model = Gguf::new();
/// model.metadata.insert("general.architecture", "llama");
/// model.metadata.insert("general.file_type", 1u32);
/// model.tensors.push(Tensor::new("token_embd.weight", vec![256, 2], GgmlType::F16, f16(512))?);
/// model.tensors.push(Tensor::new("blk.0.attn_norm.weight", vec![64], GgmlType::F32, vec![0u8; 256])?);
/// model.tensors.push(Tensor::new("blk.0.attn_q.weight", vec![64, 64], GgmlType::F16, f16(4096))?);
/// model.tensors.push(Tensor::new("output.weight", vec![256, 2], GgmlType::F16, f16(512))?);
/// let bytes = model.to_bytes()?;
///
/// let mut out = Vec::new();
/// let report = requantize(&mut GgufReader::new(Cursor::new(&bytes))?, &mut out, Target::Q4_0, &RequantizeOptions::default())?;
/// let types: Vec<_> = report.tensors.iter().map(|t| (t.name.as_str(), t.type_out)).collect();
/// assert_eq!(types, [
///     ("output.weight", GgmlType::Q6_K), // as llama-quantize
///     ("token_embd.weight", GgmlType::Q4_0),
///     ("blk.0.attn_norm.weight", GgmlType::F32), // 1-D: kept
///     ("blk.0.attn_q.weight", GgmlType::Q4_0),
/// ]);
/// assert_eq!(report.tensors[0].llama_cpp_type, GgmlType::Q6_K);
/// let q = Gguf::read(&out)?;
/// assert_eq!(q.metadata.get("general.file_type"), Some(&2u32.into()));
/// assert_eq!(q.metadata.get("general.quantization_version"), Some(&2u32.into()));
/// # Ok::<(), lowbit::io::gguf::Error>(())
/// ```
///
/// # Errors
/// [`Error::Unsupported`] for a tensor llama-quantize (or lowbit) would not convert,
/// [`Error::NonFinite`], [`Error::Quant`], and the reading and writing errors.
pub fn requantize<R: Read + Seek, W: Write>(
    reader: &mut GgufReader<R>,
    writer: W,
    target: Target,
    options: &RequantizeOptions,
) -> Result<Report, Error> {
    let plan = plan(reader.metadata(), reader.tensors(), target, options)?;
    let mut w = GgufWriter::new(writer, VERSION, &plan.metadata, &plan.out)?;
    for (&i, info) in plan.order.iter().zip(&plan.out) {
        let data = reader.read_tensor(i)?;
        let from = &reader.tensors()[i];
        w.write_tensor(&convert(&data, from, info.ty, options)?)?;
    }
    w.finish()?;
    Ok(plan.report)
}

pub(super) fn requantize_gguf(
    src: &Gguf<'_>,
    target: Target,
    options: &RequantizeOptions,
) -> Result<(Gguf<'static>, Report), Error> {
    let infos: Vec<TensorInfo> = src.tensors.iter().map(|t| t.info.clone()).collect();
    let plan = plan(&src.metadata, &infos, target, options)?;
    let mut tensors = Vec::with_capacity(plan.out.len());
    for (&i, info) in plan.order.iter().zip(plan.out) {
        let t = &src.tensors[i];
        let data = convert(&t.data, &t.info, info.ty, options)?.into_owned();
        super::check_size(&info, data.len())?;
        tensors.push(Tensor {
            info,
            data: Cow::Owned(data),
        });
    }
    Ok((
        Gguf {
            version: VERSION,
            metadata: plan.metadata,
            tensors,
        },
        plan.report,
    ))
}
