//! The `--activations` part of the example: calibrating layer 0's real MiniLM activations, and
//! the W8A8 output error with and without SmoothQuant.

use std::error::Error;
use std::path::Path;

use lowbit::scheme::ptq::{Recipe, Report};

/// One layer's captured input: all rows, where the held-out half starts, and the row length.
pub struct Captured {
    pub layer: &'static str,
    pub x: Vec<f32>,
    pub split: usize,
    pub cols: usize,
}

/// The real MiniLM activations: calibrate on the first half of the rows, measure on the rest.
pub fn calibrate_activations(
    recipe: &Recipe,
    dir: &Path,
    report: &mut Report,
) -> Result<Vec<Captured>, Box<dyn Error>> {
    let layers = [
        ("minilm_L0_query_in.npz", "encoder.layer.0.attention.self.query"),
        ("minilm_L0_ffn_up_in.npz", "encoder.layer.0.intermediate.dense"),
        ("minilm_L0_ffn_down_in.npz", "encoder.layer.0.output.dense"),
    ];
    let mut data = Vec::new();
    let mut cal = recipe.calibration();
    for (file, layer) in layers {
        let path = dir.join(file);
        // An .npz is a zip of .npy files.
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut npz =
            zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| format!("{}: {e}", path.display()))?;
        let arr = match npz.by_name("x.npy") {
            Ok(f) => npyz::NpyFile::new(f)?,
            Err(zip::result::ZipError::FileNotFound) => return Err(format!("{}: no array x", path.display()).into()),
            Err(e) => return Err(format!("{}: {e}", path.display()).into()),
        };
        let shape = arr.shape().to_vec();
        let x: Vec<f32> = arr.into_vec::<npyz::half::f16>()?.into_iter().map(f32::from).collect();
        let cols = *shape.last().unwrap_or(&1) as usize;
        let rows = x.len() / cols.max(1);
        let split = rows / 2 * cols;
        for batch in x[..split].chunks(64 * cols) {
            cal.observe(layer, batch)?;
        }
        data.push(Captured { layer, x, split, cols });
    }
    let mut acts = cal.finish()?;
    for c in &data {
        let a = acts.get_mut(c.layer).ok_or("calibrated layer missing")?;
        a.evaluate(&c.x[c.split..])?;
        report.layers.push(a.report());
    }
    Ok(data)
}

/// `Y = X·Wᵀ` for row-major `x` (`[n, k]`) and `w` (`[m, k]`).
fn matmul_t(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len() / k * (w.len() / k));
    for xr in x.chunks_exact(k) {
        for wr in w.chunks_exact(k) {
            let mut acc = [0f32; 8];
            let (xc, wc) = (xr.chunks_exact(8), wr.chunks_exact(8));
            let tail: f32 = xc.remainder().iter().zip(wc.remainder()).map(|(a, b)| a * b).sum();
            for (a, b) in xc.zip(wc) {
                for ((s, a), b) in acc.iter_mut().zip(a).zip(b) {
                    *s += a * b;
                }
            }
            y.push(acc.iter().sum::<f32>() + tail);
        }
    }
    y
}

/// SQNR (dB) of the W8A8 output `Q(X)·Q(W)ᵀ` against `X·Wᵀ` on held-out rows: int8 per-tensor
/// static activations (range = max|X| of the calibration rows), int8 per-channel weights;
/// with `alpha`, SmoothQuant first (`X / s`, `W · s`, `s` from the calibration rows).
pub fn w8a8_sqnr(
    x_cal: &[f32],
    x_eval: &[f32],
    w: &[f32],
    cols: usize,
    alpha: Option<f32>,
) -> Result<f64, Box<dyn Error>> {
    use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer};
    use lowbit::scheme::{fake_quant, smooth};
    let reference = matmul_t(x_eval, w, cols);
    let (mut xc, mut xe, mut ws) = (x_cal.to_vec(), x_eval.to_vec(), w.to_vec());
    if let Some(a) = alpha {
        let s = smooth::SmoothQuant::new(a)?.scales(&smooth::column_absmax(x_cal, cols)?, w)?;
        smooth::smooth_activations(&mut xc, &s)?;
        smooth::smooth_activations(&mut xe, &s)?;
        smooth::smooth_weights(&mut ws, &s)?;
    }
    let amax = xc.iter().fold(0f32, |m, v| m.max(v.abs()));
    let p = fake_quant::IntParams::symmetric(8, amax / 127.0)?;
    let mut xq = vec![0f32; xe.len()];
    fake_quant::forward(&xe, &p, &mut xq)?;
    let wquant = AbsmaxQuantizer::new(8, Granularity::PerRow { cols })?;
    let wq = wquant.dequantize(&wquant.quantize(&ws)?)?;
    let y = matmul_t(&xq, &wq, cols);
    let (mut sig, mut noise) = (0f64, 0f64);
    for (&a, &b) in reference.iter().zip(&y) {
        sig += f64::from(a) * f64::from(a);
        noise += (f64::from(a) - f64::from(b)).powi(2);
    }
    Ok(10.0 * (sig / noise).log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothquant_helps_w8a8_with_an_outlier_channel() {
        let cols = 16;
        let x: Vec<f32> = (0..256 * cols)
            .map(|i| {
                let v = ((i * 7919) % 997) as f32 / 498.5 - 1.0;
                if i % cols == 3 {
                    v * 80.0
                } else {
                    v
                }
            })
            .collect();
        let w: Vec<f32> = (0..8 * cols).map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5).collect();
        let (cal, eval) = x.split_at(128 * cols);
        let plain = w8a8_sqnr(cal, eval, &w, cols, None).unwrap();
        let smoothed = w8a8_sqnr(cal, eval, &w, cols, Some(0.5)).unwrap();
        assert!(smoothed > plain + 3.0, "{plain} -> {smoothed}");
        // Without quantization noise the product is unchanged: matmul_t against f64.
        let y = matmul_t(&x[..cols], &w, cols);
        for (j, wr) in w.chunks(cols).enumerate() {
            let exact: f64 = x[..cols]
                .iter()
                .zip(wr)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            assert!((f64::from(y[j]) - exact).abs() < 1e-4 * (1.0 + exact.abs()));
        }
    }
}
