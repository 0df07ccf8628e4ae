//! bitsandbytes' 4-bit checkpoints (NF4 / FP4, with or without double quantization), as
//! `Linear4bit._save_to_state_dict` writes them and transformers' `Bnb4BitHfQuantizer` loads
//! them back (`Params4bit.from_prequantized` → `QuantState.from_dict`).
//!
//! For a module `prefix` holding a weight of shape `shape` (`n` elements, blocks of `B`),
//! checked against bitsandbytes 0.50.2's `QuantState.as_dict(packed=True)`
//! (`bitsandbytes/functional.py`) and the shapes its `quantize_4bit` op returns
//! (`bitsandbytes/_ops.py`, `backends/default/ops.py`):
//!
//! | tensor | dtype | shape | what |
//! |---|---|---|---|
//! | `prefix.weight` | U8 | `[ceil(n/2), 1]` | two codes a byte, first element in the high nibble |
//! | `prefix.weight.absmax` | F32, or U8 with double quantization | `[ceil(n/B)]` | block scales, or their 8-bit codes |
//! | `prefix.weight.quant_map` | F32 | `[16]` | the NF4 / FP4 levels (`get_4bit_type`) |
//! | `prefix.weight.nested_absmax` | F32 | `[ceil(n/B/256)]` | double quantization: second-level scales |
//! | `prefix.weight.nested_quant_map` | F32 | `[256]` | double quantization: the 8-bit dynamic map |
//! | `prefix.weight.quant_state.bitsandbytes__nf4` (or `__fp4`) | U8 | `[len]` | UTF-8 JSON of the rest |
//!
//! The JSON is `json.dumps` of `{"quant_type", "blocksize", "dtype", "shape"}` followed, with
//! double quantization, by `{"nested_blocksize", "nested_dtype", "nested_offset"}`, in that
//! order, with Python's separators and float repr, so the bytes are the ones bitsandbytes
//! writes. `dtype` is the torch dtype the weight had (and is dequantized back to).
//!
//! [`quantization_config`] gives the `quantization_config` entry of `config.json`
//! (transformers' `BitsAndBytesConfig.to_dict()`), which makes `from_pretrained` build
//! `Linear4bit` layers and load these tensors into them.
//!
//! # Examples
//!
//! ```
//! use lowbit::compat::bnb::QuantType;
//! use lowbit::io::safetensors::{bnb, to_bytes, Dtype, SafetensorsFile};
//!
//! let w: Vec<f32> = (0..64 * 32).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
//! let tensors = bnb::quantize("model.layers.0.mlp.down_proj", &[64, 32], &w, QuantType::Nf4, 64, true, Dtype::BF16)?;
//! assert_eq!(tensors.len(), 6);
//! let bytes = to_bytes(&tensors, None)?;
//!
//! let file = SafetensorsFile::parse(&bytes)?;
//! let q = bnb::read(&file, "model.layers.0.mlp.down_proj")?;
//! assert_eq!((q.shape.as_slice(), q.dtype.as_str()), (&[64, 32][..], "bfloat16"));
//! let y = q.dequantize()?;
//! assert!(w.iter().zip(&y).all(|(a, b)| (a - b).abs() <= 0.15)); // half the widest NF4 step
//!
//! let config = bnb::quantization_config(&bnb::Config::new(QuantType::Nf4, true, Dtype::BF16));
//! assert_eq!(config["quant_method"], "bitsandbytes");
//! # Ok::<(), lowbit::io::safetensors::Error>(())
//! ```

use serde_json::{json, Value};

use super::json::{py_float, py_str};
use super::{numel, Dtype, Error, SafetensorsFile, Tensor};
use crate::compat::bnb::{quantize_4bit, Absmax, QuantState, QuantType};
use crate::quant::double::{dynamic_map, restore_sum, DoubleQuant};

/// torch's name of a float dtype, as bitsandbytes stores it (`str(dtype).strip("torch.")`).
fn torch_name(name: &str, dtype: Dtype) -> Result<&'static str, Error> {
    Ok(match dtype {
        Dtype::F32 => "float32",
        Dtype::F16 => "float16",
        Dtype::BF16 => "bfloat16",
        Dtype::F64 => "float64",
        other => {
            return Err(Error::tensor(
                name,
                format!("{other:?} is not a dtype bitsandbytes quantizes"),
            ))
        }
    })
}

/// Quantize `w` (`shape`, row-major) with bitsandbytes' `quantize_4bit` (lowbit's
/// [`compat::bnb::quantize_4bit`](crate::compat::bnb::quantize_4bit), bit-exact with
/// bitsandbytes' CUDA kernel) and lay it out as [`tensors`] does. `dtype` is the dtype the
/// weight had (F32, F16 or BF16): bitsandbytes records it and dequantizes to it.
///
/// # Errors
/// [`Error::Tensor`] for a length that does not match `shape` or another `dtype`;
/// [`Error::Quant`] for a block size bitsandbytes does not support (32 to 4096) or a
/// non-finite value.
pub fn quantize(
    prefix: &str,
    shape: &[usize],
    w: &[f32],
    quant_type: QuantType,
    blocksize: usize,
    double_quant: bool,
    dtype: Dtype,
) -> Result<Vec<Tensor>, Error> {
    let name = format!("{prefix}.weight");
    if numel(&name, shape)? != w.len() {
        return Err(Error::tensor(&name, format!("{} values for shape {shape:?}", w.len())));
    }
    let (packed, state) = quantize_4bit(w, blocksize, quant_type, double_quant).map_err(Error::quant(&name))?;
    tensors(prefix, shape, packed, &state, dtype)
}

/// The tensors of a 4-bit weight already quantized (`packed` and `state` from
/// [`compat::bnb::quantize_4bit`](crate::compat::bnb::quantize_4bit)), named and shaped as
/// bitsandbytes saves them (see the [module docs](self)).
///
/// # Errors
/// [`Error::Tensor`] if `shape` does not have `state.len()` elements, `packed` is not
/// `ceil(len / 2)` bytes, or `dtype` is not a float dtype.
pub fn tensors(
    prefix: &str,
    shape: &[usize],
    packed: Vec<u8>,
    state: &QuantState,
    dtype: Dtype,
) -> Result<Vec<Tensor>, Error> {
    let name = format!("{prefix}.weight");
    let n = numel(&name, shape)?;
    if n != state.len() || packed.len() != n.div_ceil(2) {
        return Err(Error::tensor(
            &name,
            format!(
                "shape {shape:?}, {} packed bytes and a state of {} elements do not agree",
                packed.len(),
                state.len()
            ),
        ));
    }
    let qt = state.quant_type();
    let mut json = format!(
        "{{\"quant_type\": {}, \"blocksize\": {}, \"dtype\": {}, \"shape\": [{}]",
        py_str(qt.name()),
        state.blocksize(),
        py_str(torch_name(&name, dtype)?),
        shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    );
    let mut out = vec![
        Tensor::raw(name.clone(), vec![packed.len(), 1], Dtype::U8, packed)?,
        Tensor::f32(format!("{name}.quant_map"), vec![16], qt.code().to_vec())?,
    ];
    match state.scales() {
        Absmax::Plain(a) => out.push(Tensor::f32(format!("{name}.absmax"), vec![a.len()], a.clone())?),
        Absmax::Double(dq) => {
            out.push(Tensor::raw(
                format!("{name}.absmax"),
                vec![dq.codes().len()],
                Dtype::U8,
                dq.codes().to_vec(),
            )?);
            out.push(Tensor::f32(
                format!("{name}.nested_absmax"),
                vec![dq.absmax2().len()],
                dq.absmax2().to_vec(),
            )?);
            out.push(Tensor::f32(
                format!("{name}.nested_quant_map"),
                vec![256],
                dynamic_map().to_vec(),
            )?);
            json.push_str(&format!(
                ", \"nested_blocksize\": {}, \"nested_dtype\": \"float32\", \"nested_offset\": {}",
                dq.blocksize2(),
                py_float(f64::from(dq.offset()))
            ));
        }
    }
    json.push('}');
    let json = json.into_bytes();
    out.push(Tensor::raw(
        format!("{name}.quant_state.bitsandbytes__{}", qt.name()),
        vec![json.len()],
        Dtype::U8,
        json,
    )?);
    Ok(out)
}

/// A bitsandbytes 4-bit weight read back from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Bnb4bit {
    /// The weight's shape (from the quant state).
    pub shape: Vec<usize>,
    /// The torch dtype name the weight had (`"bfloat16"`, ...).
    pub dtype: String,
    /// The packed codes, two a byte, first element high.
    pub packed: Vec<u8>,
    /// The state, as lowbit's [`compat::bnb`](crate::compat::bnb) takes it.
    pub state: QuantState,
    /// The 16 levels stored in the file (`weight.quant_map`).
    pub quant_map: Vec<f32>,
    /// The 256-entry map of the double quantization stored in the file, if any. bitsandbytes
    /// builds it with torch on the device it runs on; lowbit's
    /// [`dynamic_map`] is the CUDA-built one (a CPU-built map differs in the
    /// last bit of some entries).
    pub nested_quant_map: Option<Vec<f32>>,
}

impl Bnb4bit {
    /// The dequantized weight (row-major, `shape`), computed as bitsandbytes'
    /// `dequantize_4bit` does with the maps stored in the file: with double quantization the
    /// block scales are first restored as `nested_quant_map[code] * nested_absmax + offset`
    /// (saturated to `±f32::MAX` where that overflows, as
    /// [`DoubleQuant::restore`] does),
    /// then every value is `quant_map[code] * absmax`, each product rounded to `f32`. With the
    /// standard maps this equals [`compat::bnb::dequantize_4bit`](crate::compat::bnb::dequantize_4bit)
    /// (up to the sign of FP4's zero code 8, which the stored map has as `+0.0` and bitsandbytes'
    /// CUDA kernel decodes as `-0.0`).
    ///
    /// # Errors
    /// [`Error::Quant`] if the state's parts do not fit together; [`Error::Tensor`] if the
    /// public fields do not (`packed` not `ceil(len / 2)` bytes, a `quant_map` of other than 16
    /// levels, a `nested_quant_map` of other than 256).
    pub fn dequantize(&self) -> Result<Vec<f32>, Error> {
        let n = self.state.len();
        if self.packed.len() != n.div_ceil(2) {
            return Err(Error::tensor(
                "weight",
                format!("{} bytes for {n} packed 4-bit codes", self.packed.len()),
            ));
        }
        if self.quant_map.len() != 16 {
            return Err(Error::tensor(
                "weight.quant_map",
                format!("{} levels, expected 16", self.quant_map.len()),
            ));
        }
        let absmax = match (self.state.scales(), &self.nested_quant_map) {
            (Absmax::Double(_), Some(map2)) if map2.len() != 256 => {
                return Err(Error::tensor(
                    "weight.nested_quant_map",
                    format!("{} levels, expected 256", map2.len()),
                ))
            }
            (Absmax::Double(dq), Some(map2)) => {
                let b2 = dq.blocksize2();
                dq.codes()
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| restore_sum(map2[usize::from(c)] * dq.absmax2()[i / b2], dq.offset()))
                    .collect()
            }
            _ => self.state.absmax().map_err(Error::quant("weight.absmax"))?,
        };
        let b = self.state.blocksize();
        Ok((0..n)
            .map(|i| {
                let byte = self.packed[i / 2];
                let code = if i % 2 == 0 { byte >> 4 } else { byte & 15 };
                self.quant_map[usize::from(code)] * absmax[i / b]
            })
            .collect())
    }
}

fn f32_vec(file: &SafetensorsFile<'_>, name: &str, len: usize) -> Result<Vec<f32>, Error> {
    let v = file.view(name)?;
    if v.dtype != Dtype::F32 || v.numel() != len {
        return Err(Error::tensor(
            name,
            format!("expected {len} F32 values, found {:?} {:?}", v.dtype, v.shape),
        ));
    }
    v.to_f32()
}

fn json_usize(v: &Value, key: &str) -> Result<usize, Error> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .ok_or_else(|| Error::Json(format!("quant state: `{key}` is not an integer")))
}

/// Read the 4-bit weight of module `prefix` (the tensors of the [module docs](self)), as
/// bitsandbytes' `QuantState.from_dict` does: the packed JSON gives the type, block size,
/// dtype and shape, the tensors the rest.
///
/// # Errors
/// [`Error::Missing`] for a missing tensor, [`Error::Json`] for a quant state without the
/// keys bitsandbytes writes, [`Error::Tensor`] / [`Error::Quant`] for parts that do not fit
/// together (wrong lengths, an unsupported block size, a quant map other than 16 values).
pub fn read(file: &SafetensorsFile<'_>, prefix: &str) -> Result<Bnb4bit, Error> {
    let name = format!("{prefix}.weight");
    let (qs_name, quant_type) = [QuantType::Nf4, QuantType::Fp4]
        .into_iter()
        .map(|qt| (format!("{name}.quant_state.bitsandbytes__{}", qt.name()), qt))
        .find(|(n, _)| file.contains(n))
        .ok_or_else(|| Error::Missing(format!("{name}.quant_state.bitsandbytes__nf4 (or __fp4)")))?;
    let qs: Value =
        serde_json::from_slice(file.view(&qs_name)?.bytes).map_err(|e| Error::Json(format!("{qs_name}: {e}")))?;
    if qs.get("quant_type").and_then(Value::as_str) != Some(quant_type.name()) {
        return Err(Error::Json(format!(
            "{qs_name}: `quant_type` is not {:?}",
            quant_type.name()
        )));
    }
    let blocksize = json_usize(&qs, "blocksize")?;
    let dtype = qs
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Json(format!("{qs_name}: no `dtype`")))?
        .to_string();
    let shape: Vec<usize> = qs
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
        .ok_or_else(|| Error::Json(format!("{qs_name}: `shape` is not a list of integers")))?;
    let n = numel(&name, &shape)?;
    let blocks = if blocksize == 0 { 0 } else { n.div_ceil(blocksize) };

    let w = file.view(&name)?;
    if w.bytes.len() != n.div_ceil(2) {
        return Err(Error::tensor(
            &name,
            format!("{} bytes for {n} packed 4-bit codes", w.bytes.len()),
        ));
    }
    let quant_map = f32_vec(file, &format!("{name}.quant_map"), 16)?;
    let absmax_name = format!("{name}.absmax");
    let (absmax, nested_quant_map) = if file.contains(&format!("{name}.nested_absmax")) {
        let codes = file.view(&absmax_name)?;
        if codes.dtype != Dtype::U8 || codes.numel() != blocks {
            return Err(Error::tensor(
                &absmax_name,
                format!("expected {blocks} U8 codes, found {:?} {:?}", codes.dtype, codes.shape),
            ));
        }
        let b2 = json_usize(&qs, "nested_blocksize")?;
        let absmax2 = f32_vec(
            file,
            &format!("{name}.nested_absmax"),
            if b2 == 0 { 0 } else { blocks.div_ceil(b2) },
        )?;
        let map2 = f32_vec(file, &format!("{name}.nested_quant_map"), 256)?;
        let offset = qs
            .get("nested_offset")
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::Json(format!("{qs_name}: `nested_offset` is not a number")))?;
        let dq = DoubleQuant::from_parts(codes.bytes.to_vec(), absmax2, offset as f32, b2)
            .map_err(Error::quant(&absmax_name))?;
        (Absmax::Double(dq), Some(map2))
    } else {
        (Absmax::Plain(f32_vec(file, &absmax_name, blocks)?), None)
    };
    let state = QuantState::new(absmax, blocksize, quant_type, n).map_err(Error::quant(&name))?;
    Ok(Bnb4bit {
        shape,
        dtype,
        packed: w.bytes.to_vec(),
        state,
        quant_map,
        nested_quant_map,
    })
}

/// What goes into transformers' `BitsAndBytesConfig` for a 4-bit checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// NF4 or FP4 (`bnb_4bit_quant_type`).
    pub quant_type: QuantType,
    /// Double quantization (`bnb_4bit_use_double_quant`).
    pub double_quant: bool,
    /// The dtype the 4-bit layers compute in (`bnb_4bit_compute_dtype`): F32, F16 or BF16.
    pub compute_dtype: Dtype,
    /// Modules kept in high precision (`llm_int8_skip_modules`, e.g. `["lm_head"]`); `None`
    /// lets transformers choose (it keeps the output head).
    pub skip_modules: Option<Vec<String>>,
}

impl Config {
    /// A configuration with the given type, double quantization and compute dtype, and no
    /// skip list.
    pub fn new(quant_type: QuantType, double_quant: bool, compute_dtype: Dtype) -> Self {
        Self {
            quant_type,
            double_quant,
            compute_dtype,
            skip_modules: None,
        }
    }
}

/// The `quantization_config` entry of `config.json` for a checkpoint written with [`tensors`],
/// as transformers 5's `BitsAndBytesConfig(load_in_4bit=True, ...).to_dict()` writes it
/// (every key, `quant_method: "bitsandbytes"`, storage `uint8`).
pub fn quantization_config(config: &Config) -> Value {
    let compute = torch_name("bnb_4bit_compute_dtype", config.compute_dtype).unwrap_or("float32");
    json!({
        "_load_in_4bit": true,
        "_load_in_8bit": false,
        "bnb_4bit_compute_dtype": compute,
        "bnb_4bit_quant_storage": "uint8",
        "bnb_4bit_quant_type": config.quant_type.name(),
        "bnb_4bit_use_double_quant": config.double_quant,
        "llm_int8_enable_fp32_cpu_offload": false,
        "llm_int8_has_fp16_weight": false,
        "llm_int8_skip_modules": config.skip_modules,
        "llm_int8_threshold": 6.0,
        "load_in_4bit": true,
        "load_in_8bit": false,
        "quant_method": "bitsandbytes",
    })
}
