//! `lowbit quantize` and `lowbit inspect` on GGUF files: re-quantization as `llama-quantize`
//! does it, for its file types that lowbit writes (the K-quant mixes `q4_k_m`, ... included).

use lowbit::io::gguf::{GgmlType, Gguf, Imatrix, RequantizeOptions, Target, Tensor};
use safetensors::Dtype;

use crate::tensors::Metadata;
use crate::Result;

/// The GGUF target of a recipe name: a `llama-quantize` file type name in any case
/// (`q4_k_m`, `Q4_K_M`; `q3_k`, `q4_k`, `q5_k` are its aliases of the `_M` mixes).
fn target(recipe: &str) -> Result<Target> {
    Target::from_name(recipe).ok_or_else(|| {
        let names: Vec<String> = Target::ALL.iter().map(|t| t.name().to_lowercase()).collect();
        format!("recipe {recipe} has no GGUF file type ({})", names.join(" ")).into()
    })
}

/// Whether a file is GGUF (its magic).
pub fn is_gguf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"GGUF")
}

/// `lowbit quantize IN.gguf --recipe q4_k_m|q5_k_m|...|q8_0|f16|bf16 [-o OUT.gguf] [--json]`.
pub fn quantize(
    bytes: &[u8],
    input: &str,
    recipe: &str,
    output: Option<&str>,
    as_json: bool,
    opts: &RequantizeOptions,
) -> Result<()> {
    let g = Gguf::read(bytes).map_err(|e| format!("{input}: {e}"))?;
    requantize(&g, input, recipe, output, as_json, opts)
}

/// `--imatrix FILE [--include-weights P]... [--exclude-weights P]...`, as llama-quantize
/// takes them (the two filters are plain substrings and cannot be combined).
pub fn options(imatrix: Option<&str>, include: &[String], exclude: &[String]) -> Result<RequantizeOptions> {
    let Some(path) = imatrix else {
        if !include.is_empty() || !exclude.is_empty() {
            return Err("--include-weights and --exclude-weights need --imatrix".into());
        }
        return Ok(RequantizeOptions::default());
    };
    if !include.is_empty() && !exclude.is_empty() {
        return Err("--include-weights and --exclude-weights cannot be used together".into());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut m = Imatrix::read(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let include: Vec<&str> = include.iter().map(String::as_str).collect();
    let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
    if !include.is_empty() {
        m.include(&include);
    }
    m.exclude(&exclude);
    Ok(RequantizeOptions::default().with_imatrix(path, m))
}

/// `lowbit quantize IN.safetensors --format gguf --recipe q4_k_m|q8_0|... [-o OUT.gguf]`: the
/// checkpoint's tensors as a GGUF file (names and values kept, dims in ggml's order, float
/// tensors at their own precision, F64 as F32), then re-quantized as `llama-quantize` would.
/// Tensor names are not mapped to llama.cpp's (`blk.N.attn_q.weight`, ...) and no
/// architecture metadata is written: that is `convert_hf_to_gguf.py`'s job, which needs the
/// model's config. The file is for GGUF readers that take tensors by name (gguf-py, candle);
/// for llama.cpp, convert with its script to F16 first and re-quantize that GGUF.
pub fn from_safetensors(
    tensors: &[crate::tensors::Tensor],
    metadata: &Metadata,
    input: &str,
    recipe: &str,
    output: Option<&str>,
    as_json: bool,
    opts: &RequantizeOptions,
) -> Result<()> {
    let mut g = Gguf::new();
    let stem = std::path::Path::new(input)
        .file_stem()
        .map_or_else(|| input.to_string(), |s| s.to_string_lossy().into_owned());
    g.metadata.insert("general.name", stem.as_str());
    for (k, v) in metadata {
        g.metadata.insert(format!("safetensors.{k}"), v.as_str());
    }
    for t in tensors {
        let mut dims: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
        if dims.is_empty() {
            dims.push(1);
        }
        let (ty, data) = match t.dtype {
            Dtype::F32 => (GgmlType::F32, t.data.clone()),
            Dtype::F16 => (GgmlType::F16, t.data.clone()),
            Dtype::BF16 => (GgmlType::BF16, t.data.clone()),
            Dtype::F64 => (
                GgmlType::F32,
                t.values()
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            Dtype::I8 => (GgmlType::I8, t.data.clone()),
            Dtype::I16 => (GgmlType::I16, t.data.clone()),
            Dtype::I32 => (GgmlType::I32, t.data.clone()),
            Dtype::I64 => (GgmlType::I64, t.data.clone()),
            d => return Err(format!("{input}: {}: dtype {d:?} has no GGUF type", t.name).into()),
        };
        g.tensors
            .push(Tensor::new(t.name.clone(), dims, ty, data).map_err(|e| format!("{input}: {}: {e}", t.name))?);
    }
    requantize(&g, input, recipe, output, as_json, opts)
}

fn requantize(
    g: &Gguf<'_>,
    input: &str,
    recipe: &str,
    output: Option<&str>,
    as_json: bool,
    opts: &RequantizeOptions,
) -> Result<()> {
    let t = target(recipe)?;
    let (out, report) = g.requantize(t, opts).map_err(|e| format!("{input}: {e}"))?;
    if let Some(path) = output {
        let file = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
        out.write(std::io::BufWriter::new(file))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    if as_json {
        let rows: Vec<_> = report
            .tensors
            .iter()
            .map(|r| {
                serde_json::json!({"name": r.name, "type_in": format!("{:?}", r.type_in),
                    "type_out": format!("{:?}", r.type_out), "bytes_in": r.bytes_in, "bytes_out": r.bytes_out})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"recipe": t.name(), "file_type": report.file_type, "tensors": rows,
                "bytes_in": report.bytes_in(), "bytes_out": report.bytes_out()})
        );
    } else {
        println!(
            "{:<48} {:>8} {:>8} {:>12} {:>12}",
            "tensor", "in", "out", "bytes in", "bytes out"
        );
        for r in &report.tensors {
            println!(
                "{:<48} {:>8} {:>8} {:>12} {:>12}",
                r.name,
                format!("{:?}", r.type_in),
                format!("{:?}", r.type_out),
                r.bytes_in,
                r.bytes_out
            );
        }
        println!(
            "{t}: {} -> {} bytes of tensor data, general.file_type {}{}",
            report.bytes_in(),
            report.bytes_out(),
            report.file_type,
            output.map(|p| format!(", written to {p}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// `lowbit inspect FILE.gguf`.
pub fn inspect(bytes: &[u8], path: &str) -> Result<()> {
    let g = Gguf::read(bytes).map_err(|e| format!("{path}: {e}"))?;
    println!(
        "GGUF v{}, {} metadata keys, {} tensors",
        g.version,
        g.metadata.len(),
        g.tensors.len()
    );
    for (k, v) in g.metadata.iter() {
        let v = format!("{v:?}");
        let v = if v.chars().count() > 80 {
            format!("{}…", v.chars().take(80).collect::<String>())
        } else {
            v
        };
        println!("  {k} = {v}");
    }
    println!(
        "{:<48} {:>8} {:>20} {:>12} {:>8}",
        "tensor", "type", "dims", "bytes", "bits/el"
    );
    for t in &g.tensors {
        let n = t.info.n_elements().max(1);
        println!(
            "{:<48} {:>8} {:>20} {:>12} {:>8.3}",
            t.info.name,
            t.info.ty.to_string(),
            format!("{:?}", t.info.dims),
            t.data.len(),
            8.0 * t.data.len() as f64 / n as f64
        );
    }
    Ok(())
}
