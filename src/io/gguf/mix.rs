//! The file types of `llama-quantize` ([`Target`]) and the type it gives each tensor of one
//! (`llama_tensor_get_type` and what it reads in llama.cpp's `src/llama-quant.cpp`): which
//! tensors are quantized, the K-quant mixes (`Q4_K_M`, ...), the `output.weight` rule and the
//! fallback for rows that are not whole blocks.

use super::requantize::RequantizeOptions;
use super::{Array, Error, GgmlType, Metadata, TensorInfo, Value};

/// A `llama-quantize` file type: the type most weights get and, for the K-quant mixes, which
/// tensors get more bits (see [`crate::io::gguf::requantize`]).
///
/// [`Target::name`] is the name `llama-quantize` prints; [`Target::from_name`] reads it in any
/// case, with `llama-quantize`'s aliases `Q3_K`, `Q4_K` and `Q5_K` for the `_M` mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)] // llama.cpp's names
#[non_exhaustive]
pub enum Target {
    /// `Q8_0`, `LLAMA_FTYPE_MOSTLY_Q8_0` (7): every weight Q8_0.
    Q8_0,
    /// `Q4_0`, `LLAMA_FTYPE_MOSTLY_Q4_0` (2): Q4_0, `output.weight` Q6_K.
    Q4_0,
    /// `Q4_1`, `LLAMA_FTYPE_MOSTLY_Q4_1` (3): Q4_1, `output.weight` Q6_K.
    Q4_1,
    /// `Q5_0`, `LLAMA_FTYPE_MOSTLY_Q5_0` (8): Q5_0, `output.weight` Q6_K.
    Q5_0,
    /// `Q5_1`, `LLAMA_FTYPE_MOSTLY_Q5_1` (9): Q5_1, `output.weight` Q6_K.
    Q5_1,
    /// `Q2_K`, `LLAMA_FTYPE_MOSTLY_Q2_K` (10): Q2_K; attention V Q3_K (Q4_K with 4 or more
    /// query heads per KV head), `ffn_down` and `attn_output` Q3_K, `output.weight` Q6_K.
    Q2_K,
    /// `Q3_K_S`, `LLAMA_FTYPE_MOSTLY_Q3_K_S` (11): Q3_K, `output.weight` Q6_K.
    Q3_K_S,
    /// `Q3_K_M`, `LLAMA_FTYPE_MOSTLY_Q3_K_M` (12): Q3_K; the first two attention V Q5_K, the
    /// others Q4_K; `ffn_down` Q5_K in the first 1/16 of the layers, Q4_K after;
    /// `attn_output` Q4_K; `output.weight` Q6_K.
    Q3_K_M,
    /// `Q3_K_L`, `LLAMA_FTYPE_MOSTLY_Q3_K_L` (13): Q3_K; attention V, `ffn_down` and
    /// `attn_output` Q5_K; `output.weight` Q6_K.
    Q3_K_L,
    /// `Q4_K_S`, `LLAMA_FTYPE_MOSTLY_Q4_K_S` (14): Q4_K; the first four attention V and the
    /// `ffn_down` of the first 1/8 of the layers Q5_K; `output.weight` Q6_K.
    Q4_K_S,
    /// `Q4_K_M`, `LLAMA_FTYPE_MOSTLY_Q4_K_M` (15): Q4_K; attention V and `ffn_down` Q6_K in
    /// the layers `use_more_bits` picks (the first and last eighth, every third between);
    /// `output.weight` Q6_K.
    Q4_K_M,
    /// `Q5_K_S`, `LLAMA_FTYPE_MOSTLY_Q5_K_S` (16): Q5_K, `output.weight` Q6_K.
    Q5_K_S,
    /// `Q5_K_M`, `LLAMA_FTYPE_MOSTLY_Q5_K_M` (17): Q5_K; attention V and `ffn_down` Q6_K as
    /// in `Q4_K_M`; `output.weight` Q6_K.
    Q5_K_M,
    /// `Q6_K`, `LLAMA_FTYPE_MOSTLY_Q6_K` (18): every weight Q6_K.
    Q6_K,
    /// `F16`, `LLAMA_FTYPE_MOSTLY_F16` (1).
    F16,
    /// `BF16`, `LLAMA_FTYPE_MOSTLY_BF16` (32).
    BF16,
}

impl Target {
    /// Every target, in `llama-quantize`'s listing order.
    pub const ALL: [Target; 16] = [
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q2_K,
        Self::Q3_K_S,
        Self::Q3_K_M,
        Self::Q3_K_L,
        Self::Q4_K_S,
        Self::Q4_K_M,
        Self::Q5_K_S,
        Self::Q5_K_M,
        Self::Q6_K,
        Self::Q8_0,
        Self::F16,
        Self::BF16,
    ];

    /// The type of the weights no rule picks another type for (`llama_ftype_get_default_type`).
    pub const fn ggml_type(self) -> GgmlType {
        match self {
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q2_K => GgmlType::Q2_K,
            Self::Q3_K_S | Self::Q3_K_M | Self::Q3_K_L => GgmlType::Q3_K,
            Self::Q4_K_S | Self::Q4_K_M => GgmlType::Q4_K,
            Self::Q5_K_S | Self::Q5_K_M => GgmlType::Q5_K,
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
            Self::Q2_K => 10,
            Self::Q3_K_S => 11,
            Self::Q3_K_M => 12,
            Self::Q3_K_L => 13,
            Self::Q4_K_S => 14,
            Self::Q4_K_M => 15,
            Self::Q5_K_S => 16,
            Self::Q5_K_M => 17,
            Self::Q6_K => 18,
            Self::F16 => 1,
            Self::BF16 => 32,
        }
    }

    /// The name `llama-quantize` prints (`"Q4_K_M"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "Q8_0",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q2_K => "Q2_K",
            Self::Q3_K_S => "Q3_K_S",
            Self::Q3_K_M => "Q3_K_M",
            Self::Q3_K_L => "Q3_K_L",
            Self::Q4_K_S => "Q4_K_S",
            Self::Q4_K_M => "Q4_K_M",
            Self::Q5_K_S => "Q5_K_S",
            Self::Q5_K_M => "Q5_K_M",
            Self::Q6_K => "Q6_K",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
        }
    }

    /// The target of a `llama-quantize` file type name, in any case (`q4_k_m`, `Q4_K_M`);
    /// `Q3_K`, `Q4_K` and `Q5_K` are `llama-quantize`'s aliases of `Q3_K_M`, `Q4_K_M` and
    /// `Q5_K_M`. `None` for other names (file types lowbit does not write, such as `IQ4_XS`
    /// or `Q2_K_S`, included).
    ///
    /// ```
    /// use lowbit::io::gguf::Target;
    /// assert_eq!(Target::from_name("q4_k_m"), Some(Target::Q4_K_M));
    /// assert_eq!(Target::from_name("Q5_K"), Some(Target::Q5_K_M));
    /// assert_eq!(Target::from_name("iq4_xs"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Target> {
        let alias = match name.to_ascii_uppercase().as_str() {
            "Q3_K" => Some(Self::Q3_K_M),
            "Q4_K" => Some(Self::Q4_K_M),
            "Q5_K" => Some(Self::Q5_K_M),
            _ => None,
        };
        alias.or_else(|| Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name)))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `tensor_category`: the broad role of a tensor by its name (`tensor_get_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Category {
    TokenEmbd,
    Output,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    /// `tensor_get_category`: the first of these substrings the name contains.
    pub(super) fn of(name: &str) -> Category {
        const BY_SUBSTRING: [(&str, Category); 9] = [
            ("attn_qkv.weight", Category::AttnQkv),
            ("attn_kv_b.weight", Category::AttnKvB),
            ("attn_v.weight", Category::AttnV),
            ("attn_k.weight", Category::AttnK),
            ("attn_q.weight", Category::AttnQ),
            ("attn_output.weight", Category::AttnOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        if name == "output.weight" {
            Category::Output
        } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            Category::TokenEmbd
        } else {
            BY_SUBSTRING
                .iter()
                .find(|(s, _)| name.contains(s))
                .map_or(Category::Other, |&(_, c)| c)
        }
    }

    /// `category_is_attn_v`: the attention-V-like tensors, which get more bits.
    fn is_attn_v(self) -> bool {
        matches!(self, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
    }
}

/// `tensor_allows_quantization`: whether llama-quantize converts the tensor at all.
pub(super) fn allows_quantization(t: &TensorInfo, arch: &str, opts: &RequantizeOptions) -> bool {
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

/// The layer of a `blk.N.` name as `sscanf(name, "blk.%d.", &il)` reads it (`None` when it
/// converts nothing; values beyond `i32` clamp).
pub(super) fn parse_layer(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v = digits[..n]
        .bytes()
        .fold(0i64, |a, d| a.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    Some((if neg { -v } else { v }).clamp(i32::MIN.into(), i32::MAX.into()))
}

/// `use_more_bits`: the layers the `_M` mixes give more bits, the first and last eighth and
/// every third layer between.
fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// A value's first element as `u64`, for keys that are a number or one per layer
/// (`get_key_or_arr`).
fn first_u64(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let first = |x: Option<i128>| x.and_then(|x| u64::try_from(x).ok());
    match v.as_array()? {
        Array::U8(a) => first(a.first().map(|&x| x.into())),
        Array::I8(a) => first(a.first().map(|&x| x.into())),
        Array::U16(a) => first(a.first().map(|&x| x.into())),
        Array::I16(a) => first(a.first().map(|&x| x.into())),
        Array::U32(a) => first(a.first().map(|&x| x.into())),
        Array::I32(a) => first(a.first().map(|&x| x.into())),
        Array::U64(a) => first(a.first().map(|&x| x.into())),
        Array::I64(a) => first(a.first().map(|&x| x.into())),
        _ => None,
    }
}

/// What `llama_tensor_get_type` reads of the model: the hyperparameters llama.cpp loads from
/// the metadata, and two facts of the tensor list.
#[derive(Clone, Debug)]
struct Model {
    arch: String,
    /// `{arch}.block_count` (`n_layer_all`, which sets `n_ffn_down`, `n_ffn_gate` and
    /// `n_ffn_up`); without it, one more than the highest `blk.N` of the tensors.
    n_layer_all: i64,
    /// `{arch}.expert_count`, 0 when absent.
    n_expert: u64,
    /// `n_gqa()`: layer 0's `head_count / head_count_kv` (`head_count_kv` defaults to
    /// `head_count`; 0 when it is 0).
    n_gqa: u64,
    /// `model.type == LLM_TYPE_70B`, as the architecture's `load_arch_hparams` sets it.
    is_70b: bool,
    /// No `output.weight`: `token_embd.weight` is also the output and takes its rule.
    tied_embeddings: bool,
    /// `n_attention_wv`: the attention-V-like tensors of the file.
    n_attention_wv: i64,
}

impl Model {
    fn new(metadata: &Metadata, tensors: &[TensorInfo]) -> Model {
        let arch = metadata.get_str("general.architecture").unwrap_or("").to_owned();
        let key = |k: &str| metadata.get(&format!("{arch}.{k}")).and_then(first_u64);
        let n_layer_all = key("block_count").unwrap_or_else(|| {
            tensors
                .iter()
                .filter_map(|t| parse_layer(&t.name))
                .max()
                .map_or(0, |l| u64::try_from(l.saturating_add(1)).unwrap_or(0))
        });
        let n_layer = n_layer_all.saturating_sub(key("nextn_predict_layers").unwrap_or(0));
        let n_expert = key("expert_count").unwrap_or(0);
        let n_head = key("attention.head_count").unwrap_or(0);
        let n_head_kv = key("attention.head_count_kv").unwrap_or(n_head);
        let is_70b = match arch.as_str() {
            "llama" => n_expert != 8 && n_layer == 80 && n_head != n_head_kv,
            "qwen2" | "deci" | "olmo" => n_layer == 80,
            "jais2" => n_layer == 68,
            _ => false,
        };
        Model {
            n_layer_all: i64::try_from(n_layer_all).unwrap_or(i64::MAX),
            n_expert,
            n_gqa: n_head.checked_div(n_head_kv).unwrap_or(0),
            is_70b,
            tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
            n_attention_wv: tensors.iter().filter(|t| Category::of(&t.name).is_attn_v()).count() as i64,
            arch,
        }
    }
}

/// `llama_tensor_get_type` with its state (`quantize_state_impl`): called once per tensor, in
/// the file's tensor order (llama.cpp's loading order), since the layer counters
/// (`i_attention_wv`, `i_ffn_down`, ...) count the tensors seen.
#[derive(Clone, Debug)]
pub(super) struct TypeChooser<'a> {
    opts: &'a RequantizeOptions,
    target: Target,
    model: Model,
    /// `has_imatrix`: an importance matrix with entries was given.
    has_imatrix: bool,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

impl<'a> TypeChooser<'a> {
    /// The state before the first tensor of a file with this metadata and these tensors.
    pub(super) fn new(
        metadata: &Metadata,
        tensors: &[TensorInfo],
        target: Target,
        opts: &'a RequantizeOptions,
    ) -> TypeChooser<'a> {
        TypeChooser {
            opts,
            target,
            model: Model::new(metadata, tensors),
            has_imatrix: opts.active_imatrix().is_some(),
            i_attention_wv: 0,
            i_ffn_down: 0,
            i_ffn_gate: 0,
            i_ffn_up: 0,
        }
    }

    /// `llama_tensor_get_type`: the type llama-quantize gives the next tensor.
    ///
    /// # Errors
    /// [`Error::LayerIndex`] where llama.cpp needs the layer of a mixture-of-experts FFN
    /// tensor's name and cannot read it; [`Error::Unsupported`] for a row length no type
    /// falls back to (not reached by the targets lowbit has).
    pub(super) fn choose(&mut self, t: &TensorInfo) -> Result<GgmlType, Error> {
        if !allows_quantization(t, &self.model.arch, self.opts) {
            return Ok(t.ty);
        }
        let cat = Category::of(&t.name);
        // (llama.cpp lets a --tensor-type pattern name per_layer_token_embd.weight; lowbit has
        // no such patterns.)
        if let (Some(ty), Category::TokenEmbd) = (self.opts.token_embedding_type, cat) {
            return Ok(ty);
        }
        if let (Some(ty), Category::Output) = (self.opts.output_tensor_type, cat) {
            return Ok(ty);
        }
        let default = self.target.ggml_type();
        if !default.is_quantized() {
            return Ok(default);
        }
        let ty = if self.opts.pure {
            default
        } else {
            self.mixture_type(default, t, cat)?
        };
        fallback(ty, t)
    }

    /// The model's `(i_layer, n_layer)` for an FFN tensor (`layer_info`): the running count
    /// of that category, or with experts the layer of the name, which must be in range.
    fn layer_info(&self, count: i64, t: &TensorInfo) -> Result<(i64, i64), Error> {
        let n_layer = self.model.n_layer_all;
        if self.model.n_expert <= 1 {
            return Ok((count, n_layer));
        }
        match parse_layer(&t.name) {
            Some(l) if (0..n_layer).contains(&l) => Ok((l, n_layer)),
            layer => Err(Error::LayerIndex {
                tensor: t.name.clone(),
                layer,
                n_layer: u64::try_from(n_layer).unwrap_or(0),
            }),
        }
    }

    /// `llama_tensor_get_type_impl` for the file types of [`Target`]: the mix's rules.
    fn mixture_type(&mut self, default: GgmlType, t: &TensorInfo, cat: Category) -> Result<GgmlType, Error> {
        use GgmlType::{Q3_K, Q4_K, Q5_K, Q6_K, Q8_0};
        use Target as F;
        let ftype = self.target;
        let m = &self.model;
        let falcon = m.arch == "falcon";
        let mut ty = default;

        // glm5-next keeps these at Q8_0 or above.
        if m.arch == "glm5-next"
            && ["attn_q_a", "attn_q_b", "nextn.eh_proj"]
                .iter()
                .any(|s| t.name.contains(s))
        {
            return Ok(Q8_0);
        }

        if cat == Category::Output || (m.tied_embeddings && cat == Category::TokenEmbd) {
            // (--output-tensor-type applies to the tied token_embd.weight here.)
            if let Some(out) = self.opts.output_tensor_type {
                ty = out;
            } else if falcon || !t.dims.first().copied().unwrap_or(1).is_multiple_of(ty.block_size()) {
                ty = Q8_0;
            } else if ty != Q8_0 {
                ty = Q6_K;
            }
        } else if cat == Category::TokenEmbd {
            // Only the IQ and ternary file types change an untied token_embd.weight.
        } else if cat.is_attn_v() {
            // (attn_qkv is attention-V-like: llama.cpp's separate attn_qkv branch after this
            // one is never reached.)
            let gqa4 = m.n_gqa >= 4;
            ty = match ftype {
                F::Q2_K if gqa4 => Q4_K,
                F::Q2_K => Q3_K,
                F::Q3_K_M if self.i_attention_wv < 2 => Q5_K,
                F::Q3_K_M => Q4_K,
                F::Q3_K_L => Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(self.i_attention_wv, m.n_attention_wv) => Q6_K,
                F::Q4_K_S if self.i_attention_wv < 4 => Q5_K,
                _ => ty,
            };
            // 70B models: 8 heads share each V, so V is 8x smaller than Q.
            if m.is_70b && matches!(ty, Q3_K | Q4_K) {
                ty = Q5_K;
            }
            if m.n_expert == 8 {
                ty = Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if m.n_expert == 8 {
                ty = Q8_0;
            }
        } else if cat == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, t)?;
            let more = use_more_bits(i, n);
            ty = match ftype {
                F::Q2_K => Q3_K,
                F::Q3_K_M if i < n / 16 => Q5_K,
                F::Q3_K_M if !falcon || more => Q4_K,
                F::Q3_K_M => Q3_K,
                F::Q3_K_L if falcon => Q4_K,
                F::Q3_K_L => Q5_K,
                F::Q4_K_M if falcon && i < n / 16 => Q6_K,
                F::Q4_K_M if falcon && more => Q5_K,
                F::Q4_K_M if falcon => Q4_K,
                F::Q4_K_M | F::Q5_K_M if more => Q6_K,
                F::Q4_K_S if !falcon && i < n / 8 => Q5_K,
                // With an importance matrix only: the first eighth of ffn_down one bit up.
                F::Q4_0 if self.has_imatrix && i < n / 8 => GgmlType::Q4_1,
                F::Q5_0 if self.has_imatrix && i < n / 8 => GgmlType::Q5_1,
                _ => ty,
            };
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            ty = if falcon {
                match ftype {
                    F::Q3_K_L => Q4_K,
                    _ => ty,
                }
            } else if m.n_expert == 8 {
                match ftype {
                    F::Q2_K | F::Q3_K_S | F::Q3_K_M | F::Q4_K_S | F::Q4_K_M => Q5_K,
                    _ => ty,
                }
            } else {
                match ftype {
                    F::Q2_K => Q3_K,
                    F::Q3_K_M => Q4_K,
                    F::Q3_K_L => Q5_K,
                    _ => ty,
                }
            };
        } else if cat == Category::FfnGate {
            // Only IQ3_XS changes these; llama.cpp still checks the layer of expert tensors.
            self.layer_info(self.i_ffn_gate, t)?;
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            self.layer_info(self.i_ffn_up, t)?;
            self.i_ffn_up += 1;
        }
        Ok(ty)
    }
}

/// `tensor_type_fallback`: a row (`dims[0]`) that is not whole blocks of the chosen type. A
/// 256-block K type falls back to a 32-block one (`Q2_K` and `Q3_K` to `Q4_0`, `Q4_K` to
/// `Q5_0`, `Q5_K` to `Q5_1`, `Q6_K` to `Q8_0`, all types lowbit writes); a 32-block type, or a
/// fallback that still does not fit (a row that is not a multiple of 32), to `F16`.
///
/// (Older llama.cpp fell back from `Q2_K` and `Q3_K` to `IQ4_NL`, which lowbit does not
/// write; the llama.cpp lowbit follows falls back to `Q4_0`. Only the IQ types fall back to
/// `IQ4_NL` there, and lowbit has no IQ file type.)
pub(super) fn fallback(ty: GgmlType, t: &TensorInfo) -> Result<GgmlType, Error> {
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

#[cfg(test)]
mod tests;
