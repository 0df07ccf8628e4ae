//! Re-quantization of a GGUF model as llama.cpp's `llama-quantize` does it
//! (`src/llama-quant.cpp`: `tensor_allows_quantization`, `llama_tensor_get_type`,
//! `tensor_type_fallback`, `llama_model_quantize_impl`), for the types lowbit has, without an
//! importance matrix and without the K-quant mixes (`Q4_K_M`, ...).

use std::borrow::Cow;
use std::io::{Read, Seek, Write};

use super::dequant::{from_f32, readable, to_f32, to_half, writable_block};
use super::{Error, GgmlType, Gguf, GgufReader, GgufWriter, Metadata, Tensor, TensorInfo, Value, VERSION};

/// The type a model is re-quantized to, as `llama-quantize`'s file types of that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)] // ggml's names
pub enum Target {
    /// `Q8_0`, `LLAMA_FTYPE_MOSTLY_Q8_0` (7).
    Q8_0,
    /// `Q4_0`, `LLAMA_FTYPE_MOSTLY_Q4_0` (2).
    Q4_0,
    /// `Q4_1`, `LLAMA_FTYPE_MOSTLY_Q4_1` (3).
    Q4_1,
    /// `Q5_0`, `LLAMA_FTYPE_MOSTLY_Q5_0` (8).
    Q5_0,
    /// `Q5_1`, `LLAMA_FTYPE_MOSTLY_Q5_1` (9).
    Q5_1,
    /// `Q6_K`, `LLAMA_FTYPE_MOSTLY_Q6_K` (18).
    Q6_K,
    /// `F16`, `LLAMA_FTYPE_MOSTLY_F16` (1).
    F16,
    /// `BF16`, `LLAMA_FTYPE_MOSTLY_BF16` (32).
    BF16,
}

impl Target {
    /// The tensor type of the weights (`llama_ftype_get_default_type`).
    pub const fn ggml_type(self) -> GgmlType {
        match self {
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q6_K => GgmlType::Q6_K,
            Self::F16 => GgmlType::F16,
            Self::BF16 => GgmlType::BF16,
        }
    }

    /// llama.cpp's `LLAMA_FTYPE_MOSTLY_*`, written to `general.file_type`.
    pub const fn file_type(self) -> u32 {
        match self {
            Self::Q8_0 => 7,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 8,
            Self::Q5_1 => 9,
            Self::Q6_K => 18,
            Self::F16 => 1,
            Self::BF16 => 32,
        }
    }
}

/// `llama-quantize`'s options that apply to these types. The default is `llama-quantize`'s
/// default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequantizeOptions {
    /// `--pure`: every quantizable tensor gets the target type (no `output.weight` rule).
    pub pure: bool,
    /// `--leave-output-tensor`: `output.weight` keeps its type.
    pub leave_output_tensor: bool,
    /// `--output-tensor-type`: the type of `output.weight` (one lowbit writes: F32, F16,
    /// BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`: the type of `token_embd.weight` (as above).
    pub token_embedding_type: Option<GgmlType>,
    /// `--allow-requantize`: convert tensors that are already quantized (lowbit dequantizes
    /// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K to Q8_K).
    pub allow_requantize: bool,
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
    /// The type `llama-quantize` writes. It would differ from `type_out` only where llama.cpp
    /// picks a type lowbit does not write (lowbit then writes `Q8_0`); for the targets lowbit
    /// has, the two are always equal.
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    Output,
    /// `attn_v`, `attn_qkv`, `attn_kv_b` (`category_is_attn_v`).
    AttnVLike,
    AttnK,
    Other,
}

/// `tensor_get_category`, as far as these file types use it.
fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Category::TokenEmbd
    } else if name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight") || name.contains("attn_v.weight") {
        Category::AttnVLike
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else {
        Category::Other
    }
}

/// `tensor_allows_quantization`.
fn allows_quantization(t: &TensorInfo, arch: &str, opts: &RequantizeOptions) -> bool {
    const NOT_CONTAINING: [&str; 35] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    /// Also kept for `glm5-next`.
    const GLM5_NEXT: [&str; 14] = [
        "hc_",
        "indexer.attn_q_b",
        "indexer.attn_k",
        "indexer.proj",
        "indexer_compressor_gate",
        "indexer_compressor_ape",
        "ssm_f_a.weight",
        "ssm_f_b.weight",
        "ssm_g_a.weight",
        "ssm_g_b.weight",
        "ssm_beta.weight",
        "attn_kv_a_mqa.weight",
        "attn_k_b.weight",
        "attn_v_b.weight",
    ];
    let name = t.name.as_str();
    t.ggml_n_dims() >= 2
        && name.ends_with("weight")
        && !(opts.leave_output_tensor && name == "output.weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !NOT_CONTAINING.iter().any(|s| name.contains(s))
        && !(arch == "glm5-next" && GLM5_NEXT.iter().any(|s| name.contains(s)))
}

/// The layer of `blk.N.` names, -1 for the others (`sscanf(name, "blk.%d.", ...)`).
fn layer(name: &str) -> i64 {
    let Some(rest) = name.strip_prefix("blk.") else {
        return -1;
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return -1;
    }
    let v = digits[..n]
        .bytes()
        .fold(0i64, |a, d| a.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    (if neg { -v } else { v }).clamp(i32::MIN.into(), i32::MAX.into())
}

struct Context<'a> {
    opts: &'a RequantizeOptions,
    arch: &'a str,
    default: GgmlType,
    tied_embeddings: bool,
    falcon: bool,
    n_expert: u64,
}

impl Context<'_> {
    /// `llama_tensor_get_type`: the type llama-quantize gives a tensor.
    fn llama_type(&self, t: &TensorInfo) -> Result<GgmlType, Error> {
        if !allows_quantization(t, self.arch, self.opts) {
            return Ok(t.ty);
        }
        let cat = category(&t.name);
        if let (Some(ty), Category::TokenEmbd) = (self.opts.token_embedding_type, cat) {
            return Ok(ty);
        }
        if let (Some(ty), Category::Output) = (self.opts.output_tensor_type, cat) {
            return Ok(ty);
        }
        let mut ty = self.default;
        if ty.is_quantized() {
            if !self.opts.pure {
                ty = self.mixture_type(ty, t, cat);
            }
            ty = fallback(ty, t)?;
        }
        Ok(ty)
    }

    /// `llama_tensor_get_type_impl`, the branches that apply to the Q8_0, Q4_0, Q4_1, Q5_0,
    /// Q5_1 and Q6_K file types without an importance matrix.
    fn mixture_type(&self, ty: GgmlType, t: &TensorInfo, cat: Category) -> GgmlType {
        let row = t.dims.first().copied().unwrap_or(1);
        match cat {
            Category::Output | Category::TokenEmbd if cat == Category::Output || self.tied_embeddings => {
                if self.falcon || !row.is_multiple_of(ty.block_size()) {
                    GgmlType::Q8_0
                } else if ty != GgmlType::Q8_0 {
                    GgmlType::Q6_K
                } else {
                    ty
                }
            }
            Category::AttnVLike | Category::AttnK if self.n_expert == 8 => GgmlType::Q8_0,
            _ => ty,
        }
    }
}

/// `tensor_type_fallback`: a row that is not whole blocks of the chosen type. A 256-block type
/// falls back to a 32-block one (`Q2_K`, `Q3_K` to `Q4_0`, `Q4_K` to `Q5_0`, `Q5_K` to `Q5_1`,
/// `Q6_K` to `Q8_0`); a 32-block type, or a fallback that still does not fit, to F16.
fn fallback(ty: GgmlType, t: &TensorInfo) -> Result<GgmlType, Error> {
    let row = t.dims.first().copied().unwrap_or(1);
    if row.is_multiple_of(ty.block_size()) {
        return Ok(ty);
    }
    let to = match ty {
        GgmlType::Q6_K => GgmlType::Q8_0,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        _ if ty.block_size() <= 32 => ty,
        _ => {
            return Err(Error::Unsupported {
                tensor: t.name.clone(),
                reason: format!(
                    "row length {row} is not a multiple of the {ty} block size and llama.cpp defines no fallback"
                ),
            })
        }
    };
    Ok(if row.is_multiple_of(to.block_size()) {
        to
    } else {
        GgmlType::F16
    })
}

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

    let arch = metadata.get_str("general.architecture").unwrap_or("");
    let ctx = Context {
        opts,
        arch,
        default: target.ggml_type(),
        tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
        falcon: arch == "falcon",
        n_expert: metadata
            .get(&format!("{arch}.expert_count"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };

    // llama_model_loader's weights_map order: layer, then name.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&tensors[a].name, &tensors[b].name);
        (layer(a), a).cmp(&(layer(b), b))
    });

    let mut out = Vec::with_capacity(order.len());
    let mut reports = Vec::with_capacity(order.len());
    for &i in &order {
        let t = &tensors[i];
        let llama_cpp_type = ctx.llama_type(t)?;
        // A type lowbit does not write becomes Q8_0; kept tensors keep theirs.
        let ty = if llama_cpp_type == t.ty || writable(llama_cpp_type) {
            llama_cpp_type
        } else {
            GgmlType::Q8_0
        };
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

/// A tensor's data in `to`, converted through `f32` as llama-quantize does.
fn convert<'d>(data: &'d [u8], from: &TensorInfo, to: GgmlType) -> Result<Cow<'d, [u8]>, Error> {
    if from.ty == to {
        return Ok(Cow::Borrowed(data));
    }
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
        _ => match from_f32(to, &x) {
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
/// - **Which type** (`llama_tensor_get_type`): the target, except, unless
///   [`RequantizeOptions::pure`], `output.weight` — and `token_embd.weight` when the model has no
///   `output.weight` (tied embeddings) — which llama.cpp writes as `Q6_K` for every target but
///   `Q8_0`, as `Q8_0` for `falcon` or when its rows are not whole blocks of the target; and
///   `attn_v`/`attn_qkv`/`attn_kv_b`/`attn_k` of 8-expert models (`{arch}.expert_count == 8`),
///   which get `Q8_0`. `F16` and `BF16` targets convert every chosen tensor.
///   [`RequantizeOptions::output_tensor_type`] and [`RequantizeOptions::token_embedding_type`]
///   override (with any type lowbit writes, the K-quants included).
/// - **Rows that are not whole blocks** (`tensor_type_fallback`): a 256-block type falls back
///   to a 32-block one (`Q6_K` to `Q8_0`, `Q4_K` to `Q5_0`, `Q5_K` to `Q5_1`, `Q2_K` and `Q3_K`
///   to `Q4_0`); a tensor whose row length (`dims[0]`) is not a multiple of 32 is written as
///   `F16`.
/// - **Sources**: F32, F16 and BF16 tensors are converted through `f32` with ggml's reference
///   quantizers ([`crate::compat::ggml`], what llama-quantize runs without an importance
///   matrix) or round-to-nearest-even casts; quantized sources only with
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
/// Checked against `llama-quantize` (llama.cpp as vendored in llama-cpp-python 0.3.36) on
/// small llama models with F32, F16 and BF16 weights, to `Q8_0`, `Q4_0`, `Q4_1`, `F16` and
/// `BF16`, with and without `--pure`: the same file byte for byte, except the `Q6_K` tensor
/// above, which lowbit wrote as `Q8_0` then. It now writes `Q6_K`, with ggml's
/// `quantize_row_q6_K_ref` (checked byte for byte against ggml's C code), but that whole-file
/// comparison has not been repeated, nor made for the `Q5_0`, `Q5_1` and `Q6_K` targets.
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
        w.write_tensor(&convert(&data, from, info.ty)?)?;
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
        let data = convert(&t.data, &t.info, info.ty)?.into_owned();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_parses_like_sscanf() {
        assert_eq!(layer("blk.0.attn_q.weight"), 0);
        assert_eq!(layer("blk.12.ffn_up.weight"), 12);
        assert_eq!(layer("blk.x.weight"), -1);
        assert_eq!(layer("output.weight"), -1);
        assert_eq!(layer("blk.-3.a"), -3);
        assert_eq!(layer("blk. 7.a"), 7);
        assert_eq!(layer("blk.99999999999999999999.a"), i64::from(i32::MAX));
    }

    #[test]
    fn categories() {
        assert!(matches!(category("blk.0.attn_v.weight"), Category::AttnVLike));
        assert!(matches!(category("blk.0.attn_qkv.weight"), Category::AttnVLike));
        assert!(matches!(category("blk.0.attn_k.weight"), Category::AttnK));
        assert!(matches!(category("token_embd.weight"), Category::TokenEmbd));
        assert!(matches!(category("output.weight"), Category::Output));
        assert!(matches!(category("blk.0.attn_q.weight"), Category::Other));
    }
}
