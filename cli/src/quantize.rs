//! `lowbit quantize`: a PTQ recipe over every 2-D weight of a checkpoint.

use std::collections::HashMap;

use lowbit::compat::bnb::QuantType;
use lowbit::format::Format;
use lowbit::quant::mx::{MxElement, ScaleRule, TensorScale};
use lowbit::scheme::ptq::{LayerReport, QuantizedWeight, Recipe, Report, WeightGranularity, WeightScheme};
use safetensors::Dtype;

use crate::tensors::{self, Tensor};
use crate::Result;

/// The recipes by name.
pub const RECIPES: &[&str] = &[
    "int8", "int4", "nf4", "fp8", "bf16", "f16", "mxfp8", "mxfp6", "mxfp4", "mxint8", "nvfp4",
];

/// The weight scheme of a recipe name.
pub fn scheme(name: &str) -> Result<WeightScheme> {
    let mx = |element| WeightScheme::Mx {
        element,
        rule: ScaleRule::Floor,
    };
    Ok(match name {
        "int8" => WeightScheme::int(8, WeightGranularity::PerChannel)?,
        "int4" => WeightScheme::int(4, WeightGranularity::PerBlock(32))?,
        "nf4" => WeightScheme::Bnb4 {
            quant_type: QuantType::Nf4,
            block: 64,
            double_quant: true,
        },
        "fp8" => WeightScheme::Float {
            format: Format::E4M3,
            scaled: true,
        },
        "bf16" => WeightScheme::Float {
            format: Format::Bf16,
            scaled: false,
        },
        "f16" => WeightScheme::Float {
            format: Format::Fp16,
            scaled: false,
        },
        "mxfp8" => mx(MxElement::E4M3),
        "mxfp6" => mx(MxElement::E2M3),
        "mxfp4" => mx(MxElement::E2M1),
        "mxint8" => mx(MxElement::Int8),
        "nvfp4" => WeightScheme::Nvfp4 {
            tensor_scale: TensorScale::FromAmax,
        },
        other => return Err(format!("unknown recipe {other:?} (recipes: {})", RECIPES.join(" ")).into()),
    })
}

/// Whether a tensor is a weight the recipes quantize: a float matrix (or higher).
pub fn is_weight(t: &Tensor) -> bool {
    t.shape.len() >= 2 && matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// Quantize every weight of `tensors` with `recipe`; the report and the tensors to write.
pub fn quantize(tensors: &[Tensor], recipe: &Recipe, what: &str) -> Result<(Report, Vec<Tensor>)> {
    let mut report = Report::default();
    let mut out = Vec::new();
    let weights = tensors.iter().filter(|t| is_weight(t)).count();
    let bar = crate::progress(weights, "quantizing");
    for t in tensors {
        if !is_weight(t) {
            out.push(Tensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                data: t.data.clone(),
            });
            continue;
        }
        bar.set_message(t.name.clone());
        let values = t
            .values()
            .ok_or_else(|| format!("{what}: {}: not a float tensor", t.name))?;
        let (q, row) = recipe
            .quantize_weight(&t.name, &values, &t.shape)
            .map_err(|e| format!("{what}: {}: {e}", t.name))?;
        write_weight(&t.name, &t.shape, q, &mut out)?;
        report.layers.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((report, out))
}

/// The stored tensors of one quantized weight, in lowbit's safetensors layout
/// ([`lowbit::io::safetensors::lowbit`]).
fn write_weight(name: &str, shape: &[usize], q: QuantizedWeight, out: &mut Vec<Tensor>) -> Result<()> {
    for t in lowbit::io::safetensors::lowbit::weight_tensors(name, shape, &q).map_err(|e| e.to_string())? {
        out.push(Tensor {
            dtype: t.dtype(),
            data: t.bytes().into_owned(),
            shape: t.shape,
            name: t.name,
        });
    }
    Ok(())
}

/// Write tensors as a safetensors file.
pub fn write(path: &str, tensors: &[Tensor], metadata: HashMap<String, String>) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format!("{path}: {}: {e}", t.name))
        })
        .collect::<std::result::Result<_, _>>()?;
    safetensors::serialize_to_file(views, Some(metadata), std::path::Path::new(path))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(())
}

/// The report as JSON.
pub fn json(report: &Report) -> serde_json::Value {
    let row = |l: &LayerReport| {
        serde_json::json!({
            "name": l.name, "scheme": l.scheme, "elements": l.elements,
            "bytes_before": l.bytes_before, "bytes_after": l.bytes_after,
            "bits_per_element": l.bits_per_element, "sqnr_db": finite(l.sqnr_db),
            "mse": l.mse, "max_abs_error": l.max_abs_error,
        })
    };
    serde_json::json!({
        "layers": report.layers.iter().map(row).collect::<Vec<_>>(),
        "weight_bytes_before": report.weight_bytes_before(),
        "weight_bytes_after": report.weight_bytes_after(),
        "weight_sqnr_db": finite(report.weight_sqnr_db()),
    })
}

/// JSON has no infinity: an exact reconstruction's SQNR is `null`.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `lowbit quantize IN --recipe R [-o OUT] [--json]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut input = None;
    let mut recipe_name = None;
    let mut output = None;
    let mut as_json = false;
    let mut format = "safetensors".to_string();
    let mut imatrix = None;
    let (mut include, mut exclude) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--recipe" => recipe_name = Some(value("--recipe")?),
            "-o" | "--out" => output = Some(value("-o")?),
            "--format" => format = value("--format")?,
            "--json" => as_json = true,
            "--imatrix" => imatrix = Some(value("--imatrix")?),
            "--include-weights" => include.push(value("--include-weights")?),
            "--exclude-weights" => exclude.push(value("--exclude-weights")?),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", crate::USAGE).into()),
            s => input = Some(s.to_string()),
        }
    }
    let input = input.ok_or(format!("quantize needs an input file\n{}", crate::USAGE))?;
    let recipe_name = recipe_name.ok_or("quantize needs --recipe")?;
    let bytes = std::fs::read(&input).map_err(|e| format!("{input}: {e}"))?;
    let gguf_out = crate::gguf::is_gguf(&bytes) || format == "gguf";
    if !gguf_out && (imatrix.is_some() || !include.is_empty() || !exclude.is_empty()) {
        return Err("--imatrix, --include-weights and --exclude-weights apply to GGUF output".into());
    }
    let opts = crate::gguf::options(imatrix.as_deref(), &include, &exclude)?;
    if crate::gguf::is_gguf(&bytes) {
        return crate::gguf::quantize(&bytes, &input, &recipe_name, output.as_deref(), as_json, &opts);
    }
    if format == "safetensors" {
        scheme(&recipe_name)?;
    }
    let (tensors, metadata) = tensors::read(&bytes, &input)?;
    if format == "gguf" {
        return crate::gguf::from_safetensors(
            &tensors,
            &metadata,
            &input,
            &recipe_name,
            output.as_deref(),
            as_json,
            &opts,
        );
    }
    let report = match format.as_str() {
        "safetensors" => {
            let recipe = Recipe::new().weights("*", scheme(&recipe_name)?);
            let (report, out) = quantize(&tensors, &recipe, &input)?;
            if let Some(path) = &output {
                let mut meta = HashMap::new();
                meta.insert("lowbit.recipe".to_string(), recipe_name.clone());
                for l in &report.layers {
                    meta.insert(format!("lowbit.{}", l.name), l.scheme.clone());
                }
                write(path, &out, meta)?;
            }
            report
        }
        "bnb" | "compressed-tensors" => {
            crate::runtime::run(&tensors, &format, &recipe_name, output.as_deref(), &input)?
        }
        f => return Err(format!("unknown --format {f} (safetensors, bnb, compressed-tensors, gguf)").into()),
    };
    if as_json {
        println!("{}", json(&report));
    } else {
        print!("{report}");
        println!(
            "{recipe_name}: 2-D weights {:.2} MB -> {:.2} MB, SQNR {:.2} dB{}",
            report.weight_bytes_before() as f64 / 1e6,
            report.weight_bytes_after() as f64 / 1e6,
            report.weight_sqnr_db(),
            output.map(|p| format!(", written to {p}")).unwrap_or_default()
        );
    }
    Ok(())
}
