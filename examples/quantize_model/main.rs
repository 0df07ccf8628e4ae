//! Quantize every 2-D weight of a safetensors checkpoint with a PTQ recipe, print the per-layer
//! report, and optionally write the quantized tensors (with their scales) back as safetensors.
//!
//! ```text
//! cargo run --release --features safetensors --example quantize_model -- model.safetensors \
//!     [--recipe int8|int4|nf4|e4m3|mxfp8|mxfp6|mxfp4|mxint8|nvfp4] [--out quantized.safetensors] [--activations DIR]
//! ```
//!
//! Recipes:
//! - `int8`: symmetric int8, one f32 scale per output channel (row);
//! - `int4`: symmetric int4, one f32 scale per block of 32;
//! - `nf4`: NF4, blocks of 64, double quantization of the absmax (bitsandbytes' QLoRA layout);
//! - `e4m3`: FP8 E4M3 with one f32 scale per tensor (`amax / 448`).
//!
//! `--activations DIR` also calibrates the inputs of layer 0's query, FFN-up and FFN-down
//! Linear layers from `DIR/minilm_L0_{query,ffn_up,ffn_down}_in.npz` (each an f16 array `x` of
//! rows × features, captured from the model): int8 symmetric, histogram percentile 99.99,
//! calibrated on the first half of the rows and measured on the second half.
//!
//! With `--out`, a 2-D weight `W` becomes `W.codes` (U8, packed codes, MSB first as
//! `lowbit::quant` packs them), `W.scales` (F32) and `W.zero_points` (U8, affine only) for the
//! integer recipes; `W.codes` (U8, two codes a byte, first in the high nibble as bitsandbytes),
//! `W.absmax` (U8 codes of the double-quantized block scales), `W.nested_absmax` (F32, per 256
//! blocks) and `W.nested_offset` (F32) for `nf4`; `W` (F8_E4M3) and `W.scale` (F32) for `e4m3`.
//! The metadata holds each weight's shape and scheme. Other tensors are copied unchanged.

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

use lowbit::compat::bnb::QuantType;
use lowbit::format::Format;
use lowbit::io::safetensors::lowbit::weight_tensors;
use lowbit::quant::mx::{MxElement, ScaleRule, TensorScale};
use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, Recipe, Report, WeightGranularity, WeightScheme};
use lowbit::{Bf16, FloatFormat, Fp16};
use safetensors::{Dtype, SafeTensors};

mod activations;
use activations::{calibrate_activations, w8a8_sqnr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecipeName {
    Int8,
    Int4,
    Nf4,
    E4M3,
    MxFp8,
    MxFp6,
    MxFp4,
    MxInt8,
    Nvfp4,
}

#[derive(Debug)]
struct Args {
    model: PathBuf,
    recipe: RecipeName,
    out: Option<PathBuf>,
    activations: Option<PathBuf>,
}

const USAGE: &str =
    "usage: quantize_model MODEL.safetensors [--recipe int8|int4|nf4|e4m3|mxfp8|mxfp6|mxfp4|mxint8|nvfp4] [--out OUT.safetensors] [--activations DIR]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let mut model = None;
    let mut recipe = RecipeName::Int8;
    let mut out = None;
    let mut activations = None;
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match a.as_str() {
            "--recipe" => {
                recipe = match value("--recipe")?.as_str() {
                    "int8" => RecipeName::Int8,
                    "int4" => RecipeName::Int4,
                    "nf4" => RecipeName::Nf4,
                    "e4m3" => RecipeName::E4M3,
                    "mxfp8" => RecipeName::MxFp8,
                    "mxfp6" => RecipeName::MxFp6,
                    "mxfp4" => RecipeName::MxFp4,
                    "mxint8" => RecipeName::MxInt8,
                    "nvfp4" => RecipeName::Nvfp4,
                    other => return Err(format!("unknown recipe {other:?}\n{USAGE}")),
                }
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--activations" => activations = Some(PathBuf::from(value("--activations")?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if model.is_none() && !a.starts_with("--") => model = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        model: model.ok_or(USAGE)?,
        recipe,
        out,
        activations,
    })
}

fn recipe(name: RecipeName) -> Result<Recipe, Box<dyn Error>> {
    let weights = match name {
        RecipeName::Int8 => WeightScheme::int(8, WeightGranularity::PerChannel)?,
        RecipeName::Int4 => WeightScheme::int(4, WeightGranularity::PerBlock(32))?,
        RecipeName::E4M3 => WeightScheme::Float {
            format: Format::E4M3,
            scaled: true,
        },
        RecipeName::Nf4 => WeightScheme::Bnb4 {
            quant_type: QuantType::Nf4,
            block: 64,
            double_quant: true,
        },
        RecipeName::MxFp8 => mx(MxElement::E4M3),
        RecipeName::MxFp6 => mx(MxElement::E2M3),
        RecipeName::MxFp4 => mx(MxElement::E2M1),
        RecipeName::MxInt8 => mx(MxElement::Int8),
        RecipeName::Nvfp4 => WeightScheme::Nvfp4 {
            tensor_scale: TensorScale::FromAmax,
        },
    };
    Ok(Recipe::new().weights("*", weights).activations(
        "*",
        ActivationScheme::new(
            CalibratorKind::Histogram(lowbit::calib::Method::Percentile(99.99)),
            8,
            true,
        )?,
    ))
}

/// An OCP MX recipe with the spec's scale rule.
fn mx(element: MxElement) -> WeightScheme {
    WeightScheme::Mx {
        element,
        rule: ScaleRule::Floor,
    }
}

/// A tensor's values as f32 (F32, F16 and BF16 checkpoints).
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            data.chunks_exact(2)
                .map(|b| Fp16::decode_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        ),
        Dtype::BF16 => Some(
            data.chunks_exact(2)
                .map(|b| Bf16::decode_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        ),
        _ => None,
    }
}

/// An owned tensor to write.
struct OutTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// What [`run`] measured, for the tests (the binary prints the log).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Summary {
    report: Report,
    file_bytes_before: usize,
    file_bytes_after: usize,
    quantized: usize,
    kept: usize,
}

fn run(args: &Args, log: &mut String) -> Result<Summary, Box<dyn Error>> {
    let recipe = recipe(args.recipe)?;
    let bytes = std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let st = SafeTensors::deserialize(&bytes)?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();

    let mut report = Report::default();
    let mut outputs: Vec<OutTensor> = Vec::new();
    let mut meta: HashMap<String, String> = HashMap::new();
    let (mut before, mut after, mut quantized, mut kept) = (0usize, 0usize, 0usize, 0usize);
    for name in &names {
        let view = st.tensor(name)?;
        let shape = view.shape().to_vec();
        before += view.data().len();
        let values = if shape.len() == 2 {
            to_f32(view.dtype(), view.data())
        } else {
            None
        };
        let Some(values) = values else {
            kept += 1;
            after += view.data().len();
            outputs.push(OutTensor {
                name: name.clone(),
                dtype: view.dtype(),
                shape,
                data: view.data().to_vec(),
            });
            continue;
        };
        let (q, row) = recipe.quantize_weight(name, &values, &shape)?;
        quantized += 1;
        after += row.bytes_after;
        meta.insert(format!("lowbit.{name}"), format!("{} shape={:?}", row.scheme, shape));
        report.layers.push(row);
        // lowbit's own layout: NAME.codes, NAME.scales, ... (see `lowbit::io::safetensors::lowbit`).
        for t in weight_tensors(name, &shape, &q)? {
            outputs.push(OutTensor {
                dtype: t.dtype(),
                data: t.bytes().into_owned(),
                shape: t.shape,
                name: t.name,
            });
        }
    }

    let mut smooth_rows = Vec::new();
    if let Some(dir) = &args.activations {
        for c in calibrate_activations(&recipe, dir, &mut report)? {
            // W8A8 on 512 held-out rows, with and without SmoothQuant, when the layer exists.
            let Ok(view) = st.tensor(&format!("{}.weight", c.layer)) else {
                continue;
            };
            let Some(w) = to_f32(view.dtype(), view.data()) else {
                continue;
            };
            let eval = &c.x[c.split..(c.split + 512 * c.cols).min(c.x.len())];
            let plain = w8a8_sqnr(&c.x[..c.split], eval, &w, c.cols, None)?;
            let smoothed = w8a8_sqnr(&c.x[..c.split], eval, &w, c.cols, Some(0.5))?;
            smooth_rows.push((c.layer, plain, smoothed));
        }
    }

    writeln!(log, "{report}")?;
    if !smooth_rows.is_empty() {
        writeln!(
            log,
            "W8A8 output SQNR on 512 held-out rows (int8 per-tensor static activations, int8 per-channel weights):"
        )?;
        writeln!(
            log,
            "{:<40}  {:>10}  {:>22}",
            "layer", "W8A8 dB", "W8A8 + SmoothQuant dB"
        )?;
        for (layer, a, b) in &smooth_rows {
            writeln!(log, "{layer:<40}  {a:>10.2}  {b:>22.2}")?;
        }
        writeln!(log)?;
    }
    writeln!(
        log,
        "{}: {} tensors, {} quantized ({} scheme), {} kept as they were",
        args.model.display(),
        names.len(),
        quantized,
        recipe.weight_scheme("*")?.describe(),
        kept
    )?;
    writeln!(
        log,
        "checkpoint tensor data: {:.2} MB -> {:.2} MB ({:.2}x smaller); 2-D weights {:.2} MB -> {:.2} MB, SQNR {:.2} dB",
        before as f64 / 1e6,
        after as f64 / 1e6,
        before as f64 / after.max(1) as f64,
        report.weight_bytes_before() as f64 / 1e6,
        report.weight_bytes_after() as f64 / 1e6,
        report.weight_sqnr_db()
    )?;

    if let Some(out) = &args.out {
        meta.insert("lowbit.recipe".into(), format!("{:?}", args.recipe));
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = outputs
            .iter()
            .map(|t| {
                Ok((
                    t.name.clone(),
                    safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data)?,
                ))
            })
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        let buf = safetensors::serialize(views, Some(meta))?;
        std::fs::write(out, &buf).map_err(|e| format!("{}: {e}", out.display()))?;
        writeln!(log, "wrote {} ({} bytes)", out.display(), buf.len())?;
    }
    Ok(Summary {
        report,
        file_bytes_before: before,
        file_bytes_after: after,
        quantized,
        kept,
    })
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut log = String::new();
    match run(&args, &mut log) {
        Ok(_) => print!("{log}"),
        Err(e) => {
            print!("{log}");
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A small checkpoint: two Linear weights, a bias, an f16 embedding and an i64 buffer.
    fn write_checkpoint(path: &Path) -> (Vec<f32>, Vec<f32>) {
        let w1: Vec<f32> = (0..48 * 64).map(|i| ((i * 37 % 101) as f32 - 50.0) / 97.0).collect();
        let mut w2: Vec<f32> = (0..16 * 48).map(|i| ((i * 13 % 29) as f32 - 14.0) / 300.0).collect();
        w2[5] = 0.9; // an outlier
        let bias: Vec<f32> = (0..48).map(|i| i as f32 * 0.01).collect();
        let emb: Vec<u16> = (0..10 * 64).map(|i| Fp16::encode_f32((i as f32 * 0.1).sin())).collect();
        let ids: Vec<i64> = (0..8).collect();
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            ("l1.weight", Dtype::F32, vec![48, 64], le(&w1)),
            ("l2.weight", Dtype::F32, vec![16, 48], le(&w2)),
            ("l1.bias", Dtype::F32, vec![48], le(&bias)),
            (
                "emb.weight",
                Dtype::F16,
                vec![10, 64],
                emb.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                "ids",
                Dtype::I64,
                vec![1, 8],
                ids.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ];
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.to_string(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
        (w1, w2)
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lowbit-quantize-model-{}-{name}", std::process::id()))
    }

    #[test]
    fn int8_per_channel_round_trips_through_the_written_file() {
        let model = tmp("int8.safetensors");
        let out = tmp("int8-out.safetensors");
        let (w1, _) = write_checkpoint(&model);
        let args = parse_args(
            [
                model.to_str().unwrap(),
                "--recipe",
                "int8",
                "--out",
                out.to_str().unwrap(),
            ]
            .map(String::from),
        )
        .unwrap();
        let mut log = String::new();
        let s = run(&args, &mut log).unwrap();
        assert_eq!((s.quantized, s.kept), (3, 2)); // l1, l2, emb; bias and ids kept
        let names: Vec<&str> = s.report.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["emb.weight", "l1.weight", "l2.weight"]);
        let l1 = &s.report.layers[1];
        assert_eq!(l1.bytes_before, 48 * 64 * 4);
        assert_eq!(l1.bytes_after, 48 * 64 + 48 * 4);
        assert!(l1.sqnr_db > 35.0, "{}", l1.sqnr_db);
        assert!(log.contains("l1.weight") && log.contains("total (weights)"));
        // f16 embedding: 2 bytes per element before.
        assert_eq!(s.report.layers[0].bytes_before, 10 * 64 * 4);
        assert!(s.file_bytes_after < s.file_bytes_before);

        // Read the file back and dequantize l1 by hand: code (two's complement) × row scale.
        let bytes = std::fs::read(&out).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let codes = st.tensor("l1.weight.codes").unwrap();
        let scales = to_f32(Dtype::F32, st.tensor("l1.weight.scales").unwrap().data()).unwrap();
        assert_eq!(scales.len(), 48);
        for (i, (&c, &x)) in codes.data().iter().zip(&w1).enumerate() {
            let y = f32::from(c as i8) * scales[i / 64];
            assert!((y - x).abs() <= scales[i / 64] / 2.0 * 1.0001, "{i}: {x} -> {y}");
        }
        assert_eq!(st.tensor("ids").unwrap().dtype(), Dtype::I64);
        assert_eq!(st.tensor("l1.bias").unwrap().data().len(), 48 * 4);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let m = meta.metadata().as_ref().unwrap();
        assert_eq!(m["lowbit.l1.weight"], "int8 sym per-channel shape=[48, 64]");
        let _ = std::fs::remove_file(model);
        let _ = std::fs::remove_file(out);
    }

    #[test]
    fn int4_and_e4m3_sizes_and_errors() {
        let model = tmp("int4.safetensors");
        let (_, w2) = write_checkpoint(&model);
        let m = model.to_str().unwrap();
        let mut log = String::new();
        let s = run(
            &parse_args([m, "--recipe", "int4"].map(String::from)).unwrap(),
            &mut log,
        )
        .unwrap();
        let l1 = &s.report.layers[1];
        assert_eq!(l1.bytes_after, 48 * 64 / 2 + 48 * 64 / 32 * 4);
        assert_eq!(l1.bits_per_element, 5.0);

        let out = tmp("e4m3-out.safetensors");
        let s = run(
            &parse_args([m, "--recipe", "e4m3", "--out", out.to_str().unwrap()].map(String::from)).unwrap(),
            &mut log,
        )
        .unwrap();
        let l2 = &s.report.layers[2];
        assert_eq!(l2.bytes_after, 16 * 48 + 4);
        let bytes = std::fs::read(&out).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("l2.weight").unwrap();
        assert_eq!(t.dtype(), Dtype::F8_E4M3);
        let scale = to_f32(Dtype::F32, st.tensor("l2.weight.scale").unwrap().data()).unwrap()[0];
        assert_eq!(scale, (f64::from(0.9f32) / 448.0) as f32);
        // The outlier is the tensor's amax: it maps to E4M3's 448 and back.
        assert_eq!(lowbit::E4M3::decode_f32(t.data()[5]) * scale, 448.0 * scale);
        assert!((lowbit::E4M3::decode_f32(t.data()[5]) * scale - w2[5]).abs() < 1e-6);

        // NF4 block 64 with double quantization: 4 bits + 8 bits per 64 + an f32 per 256 blocks.
        let out4 = tmp("nf4-out.safetensors");
        let s = run(
            &parse_args([m, "--recipe", "nf4", "--out", out4.to_str().unwrap()].map(String::from)).unwrap(),
            &mut log,
        )
        .unwrap();
        let l1 = &s.report.layers[1];
        assert_eq!(l1.bytes_after, 48 * 64 / 2 + 48 + 4 + 4);
        assert!(l1.sqnr_db > 15.0, "{}", l1.sqnr_db);
        let bytes = std::fs::read(&out4).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("l1.weight.codes").unwrap().data().len(), 48 * 32);
        assert_eq!(st.tensor("l1.weight.absmax").unwrap().dtype(), Dtype::U8);
        assert_eq!(st.tensor("l1.weight.nested_absmax").unwrap().shape(), &[1]);
        let _ = std::fs::remove_file(out4);
        // An f32 weight whose size is not a multiple of the NF4 block still works (short last block).
        let odd = tmp("odd.safetensors");
        let w: Vec<u8> = (0..3 * 30).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
        let views = vec![(
            "w",
            safetensors::tensor::TensorView::new(Dtype::F32, vec![3, 30], &w).unwrap(),
        )];
        std::fs::write(&odd, safetensors::serialize(views, None).unwrap()).unwrap();
        let o = odd.to_str().unwrap();
        assert!(run(&parse_args([o, "--recipe", "nf4"].map(String::from)).unwrap(), &mut log).is_ok());
        let _ = std::fs::remove_file(odd);
        assert!(parse_args(["--recipe", "int3"].map(String::from)).is_err());
        assert!(run(&parse_args(["/nonexistent.safetensors".to_string()]).unwrap(), &mut log).is_err());
        let _ = std::fs::remove_file(model);
        let _ = std::fs::remove_file(out);
    }
}
