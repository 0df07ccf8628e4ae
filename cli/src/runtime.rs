//! `lowbit quantize --format bnb|compressed-tensors`: the layouts transformers and vLLM load.

use std::collections::HashMap;

use lowbit::compat::bnb::QuantType;
use lowbit::io::safetensors::{self as st, bnb, compressed, Dtype, SafetensorsFile};
use lowbit::scheme::ptq::{LayerReport, Report, TensorKind};

use crate::tensors::Tensor;
use crate::Result;

/// The layout of `format` for `recipe`.
enum Layout {
    Bnb(QuantType),
    Compressed(compressed::Scheme),
}

fn layout(format: &str, recipe: &str) -> Result<Layout> {
    use compressed::{Activations, Scheme, Strategy};
    Ok(match (format, recipe) {
        ("bnb", "nf4") => Layout::Bnb(QuantType::Nf4),
        ("bnb", "fp4") => Layout::Bnb(QuantType::Fp4),
        ("compressed-tensors", "fp8") => Layout::Compressed(Scheme::Fp8 {
            strategy: Strategy::Channel,
            activations: Activations::DynamicPerToken,
        }),
        ("compressed-tensors", "int8") => Layout::Compressed(Scheme::Int {
            bits: 8,
            symmetric: true,
            strategy: Strategy::Channel,
            packed: false,
        }),
        ("compressed-tensors", "int4") => Layout::Compressed(Scheme::Int {
            bits: 4,
            symmetric: true,
            strategy: Strategy::Group(128),
            packed: true,
        }),
        ("compressed-tensors", "nvfp4") => Layout::Compressed(Scheme::Nvfp4),
        ("compressed-tensors", "mxfp4") => Layout::Compressed(Scheme::Mxfp4),
        ("compressed-tensors", "mxfp8") => Layout::Compressed(Scheme::Mxfp8),
        (f, r) => {
            return Err(format!(
                "recipe {r} has no {f} layout (bnb: nf4 fp4; compressed-tensors: fp8 int8 int4 nvfp4 mxfp4 mxfp8)"
            )
            .into())
        }
    })
}

/// Quantize every 2-D `*.weight` of `tensors` into the runtime's layout, write `path` and
/// `path` with `.quantization_config.json`, and report each layer from the written bytes read
/// back (what the runtime will see).
pub fn run(tensors: &[Tensor], format: &str, recipe: &str, path: Option<&str>, what: &str) -> Result<Report> {
    let layout = layout(format, recipe)?;
    let mut out = Vec::new();
    let mut report = Report::default();
    let mut quantized = Vec::new();
    let bar = crate::progress(tensors.len(), "quantizing");
    for t in tensors {
        bar.set_message(t.name.clone());
        bar.inc(1);
        let prefix = t.name.strip_suffix(".weight");
        let (Some(prefix), true) = (prefix, t.shape.len() == 2 && crate::quantize::is_weight(t)) else {
            out.push(st::Tensor::raw(
                t.name.clone(),
                t.shape.clone(),
                t.dtype,
                t.data.clone(),
            )?);
            continue;
        };
        let w = t
            .values()
            .ok_or_else(|| format!("{what}: {}: not a float tensor", t.name))?;
        let err = |e: st::Error| format!("{what}: {}: {e}", t.name);
        let layer = match &layout {
            Layout::Bnb(qt) => bnb::quantize(prefix, &t.shape, &w, *qt, 64, true, t.dtype).map_err(err)?,
            Layout::Compressed(s) => compressed::quantize(prefix, &t.shape, &w, s).map_err(err)?,
        };
        let bytes = st::to_bytes(&layer, None).map_err(err)?;
        let file = SafetensorsFile::parse(&bytes).map_err(err)?;
        let y = match &layout {
            Layout::Bnb(_) => bnb::read(&file, prefix).and_then(|b| b.dequantize()),
            Layout::Compressed(s) => compressed::read(&file, prefix, s).and_then(|p| p.dequantize()),
        }
        .map_err(err)?;
        report.layers.push(row(
            &t.name,
            recipe,
            &w,
            &y,
            layer.iter().map(|l| l.bytes().len()).sum(),
        ));
        quantized.push(prefix.to_string());
        out.extend(layer);
    }
    bar.finish_and_clear();
    if let Some(path) = path {
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let file = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
        st::write(&out, Some(&meta), std::io::BufWriter::new(file)).map_err(|e| format!("{path}: {e}"))?;
        let config = match &layout {
            Layout::Bnb(qt) => bnb::quantization_config(&bnb::Config::new(*qt, true, Dtype::BF16)),
            Layout::Compressed(s) => compressed::quantization_config(&[(*s, vec!["Linear".to_string()])], &[]),
        };
        let cpath = format!("{path}.quantization_config.json");
        let json = serde_json::to_string_pretty(&config)?;
        std::fs::write(&cpath, json).map_err(|e| format!("{cpath}: {e}"))?;
    }
    Ok(report)
}

/// A report row from the weight and its values as the runtime reads them.
fn row(name: &str, scheme: &str, w: &[f32], y: &[f32], bytes_after: usize) -> LayerReport {
    let (mut signal, mut noise, mut max) = (0f64, 0f64, 0f32);
    for (&a, &b) in w.iter().zip(y) {
        signal += f64::from(a) * f64::from(a);
        noise += (f64::from(a) - f64::from(b)).powi(2);
        max = max.max((a - b).abs());
    }
    let n = w.len().max(1) as f64;
    LayerReport {
        name: name.to_string(),
        kind: TensorKind::Weight,
        scheme: scheme.to_string(),
        elements: w.len(),
        bytes_before: 4 * w.len(),
        bytes_after,
        bits_per_element: 8.0 * bytes_after as f64 / n,
        mse: noise / n,
        signal_power: signal / n,
        sqnr_db: 10.0 * (signal / noise).log10(),
        max_abs_error: max,
        range: None,
        clipped_fraction: None,
    }
}
