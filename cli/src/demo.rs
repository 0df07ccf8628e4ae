//! `lowbit` with no arguments: the embedded real default, quantized with every main recipe.

use lowbit::scheme::ptq::Recipe;

use crate::calibrate::Any;
use crate::quantize::{self, is_weight};
use crate::tensors;
use crate::Result;

/// all-MiniLM-L6-v2's layer 0 (attention query and FFN-up weights with their biases and a
/// LayerNorm, F32 rounded to F16) and 1024 captured FFN-up input rows; see `cli/data/README.md`.
const EMBEDDED: &[u8] = include_bytes!("../data/minilm_L0.safetensors");
const ACTIVATIONS: &str = "activations.encoder.layer.0.intermediate.dense.input";

pub fn run() -> Result<()> {
    let (all, _) = tensors::read(EMBEDDED, "embedded MiniLM layer")?;
    let (acts, model): (Vec<_>, Vec<_>) = all.into_iter().partition(|t| t.name == ACTIVATIONS);
    let weights: Vec<_> = model.iter().filter(|t| is_weight(t)).collect();
    println!(
        "all-MiniLM-L6-v2 layer 0 (embedded): {} tensors, {} weights, {} values",
        model.len(),
        weights.len(),
        weights.iter().map(|t| t.shape.iter().product::<usize>()).sum::<usize>()
    );
    for t in &model {
        println!("  {:<52} {:?} {:?}", t.name, t.dtype, t.shape);
    }
    println!();
    println!(
        "{:<8} {:>12} {:>12} {:>9} {:>10} {:>12}",
        "recipe", "f32 bytes", "stored", "bits/el", "SQNR dB", "max |error|"
    );
    for name in quantize::RECIPES {
        let recipe = Recipe::new().weights("*", quantize::scheme(name)?);
        let (report, _) = quantize::quantize(&model, &recipe, "embedded")?;
        let max = report.layers.iter().map(|l| l.max_abs_error).fold(0f32, f32::max);
        let n: usize = report.layers.iter().map(|l| l.elements).sum();
        println!(
            "{:<8} {:>12} {:>12} {:>9.3} {:>10.2} {:>12.3e}",
            name,
            report.weight_bytes_before(),
            report.weight_bytes_after(),
            8.0 * report.weight_bytes_after() as f64 / n as f64,
            report.weight_sqnr_db(),
            max
        );
    }
    if let Some(a) = acts.first() {
        let x = a.values().ok_or("embedded activations are not float")?;
        println!();
        println!("activation ranges of {} ({:?}), 8 bits:", a.name, a.shape);
        for method in ["minmax", "percentile", "entropy", "mse"] {
            let mut cal = Any::new(method, 8)?;
            for batch in x.chunks(64 * 384) {
                cal.observe(batch)?;
            }
            let r = cal.range()?;
            println!("  {method:<11} [{:>9.4}, {:>9.4}]", r.min, r.max);
        }
    }
    println!();
    println!("Next: lowbit quantize MODEL.safetensors --recipe nf4 -o OUT.safetensors (lowbit --help)");
    Ok(())
}
