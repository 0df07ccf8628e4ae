//! `lowbit calibrate`: activation ranges from `.npy` / `.npz` batches, with states that merge
//! across machines: one range for all the arrays, or (`--per-array`) one per array, through a
//! `lowbit::scheme::ptq::Calibration`.

use lowbit::calib::{Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, Range};
use lowbit::scheme::ptq::{ActivationScheme, CalibratorKind, Recipe};

use crate::Result;

/// A calibrator chosen on the command line.
pub enum Any {
    MinMax(MinMaxCalibrator),
    Histogram(Box<HistogramCalibrator>),
}

/// The histogram method of a `--method` value (`None` for `minmax`): `percentile[=P]`
/// (default 99.99), `entropy`, `mse`, with `bits` for entropy and MSE.
fn method_of(method: &str, bits: u32) -> Result<Option<Method>> {
    Ok(Some(match method {
        "minmax" => return Ok(None),
        "entropy" => Method::Entropy { bits },
        "mse" => Method::Mse { bits },
        "percentile" => Method::Percentile(99.99),
        p => match p.strip_prefix("percentile=").map(str::parse::<f64>) {
            Some(Ok(v)) => Method::Percentile(v),
            _ => return Err(format!("unknown method {p:?} (minmax, percentile[=P], entropy, mse)").into()),
        },
    }))
}

/// The recipe of `--per-array`: every array (`*`) calibrated with the method, symmetric as the
/// single calibrator is.
fn per_array_recipe(method: &str, bits: u32) -> Result<Recipe> {
    let kind = match method_of(method, bits)? {
        None => CalibratorKind::MinMax,
        Some(m) => CalibratorKind::Histogram(m),
    };
    Ok(Recipe::new().activations("*", ActivationScheme::new(kind, bits, true)?))
}

impl Any {
    /// The calibrator of a `--method` value (see [`method_of`]).
    pub fn new(method: &str, bits: u32) -> Result<Any> {
        Ok(match method_of(method, bits)? {
            None => Any::MinMax(MinMaxCalibrator::new()),
            Some(m) => Any::Histogram(Box::new(HistogramCalibrator::new(m)?)),
        })
    }

    pub fn observe(&mut self, batch: &[f32]) -> Result<()> {
        match self {
            Any::MinMax(c) => c.observe(batch)?,
            Any::Histogram(c) => c.observe(batch)?,
        }
        Ok(())
    }

    pub fn range(&self) -> Result<Range> {
        Ok(match self {
            Any::MinMax(c) => c.range()?,
            Any::Histogram(c) => c.range()?,
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Any::MinMax(c) => c.to_bytes(),
            Any::Histogram(c) => c.to_bytes(),
        }
    }

    fn merge_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Any::MinMax(c) => c.merge(&MinMaxCalibrator::from_bytes(bytes)?)?,
            Any::Histogram(c) => c.merge(&HistogramCalibrator::from_bytes(bytes)?)?,
        }
        Ok(())
    }
}

/// The `f32` values of an `.npy` array (f32, f16 or f64).
fn npy_values<R: std::io::Read>(r: R, what: &str) -> Result<Vec<f32>> {
    let arr = npyz::NpyFile::new(r).map_err(|e| format!("{what}: {e}"))?;
    let descr = arr.dtype().descr();
    let v: Vec<f32> = if descr.contains("f4") {
        arr.into_vec::<f32>()?
    } else if descr.contains("f2") {
        arr.into_vec::<npyz::half::f16>()?.into_iter().map(f32::from).collect()
    } else if descr.contains("f8") {
        arr.into_vec::<f64>()?.into_iter().map(|x| x as f32).collect()
    } else {
        return Err(format!("{what}: dtype {descr} is not a float array").into());
    };
    Ok(v)
}

/// Every array of an `.npy` or `.npz` file, as `(name, values)`.
pub fn load(path: &str) -> Result<Vec<(String, Vec<f32>)>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    if path.ends_with(".npz") {
        let mut z = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| format!("{path}: {e}"))?;
        let names: Vec<String> = z.file_names().map(str::to_owned).collect();
        names
            .into_iter()
            .filter(|n| n.ends_with(".npy"))
            .map(|n| {
                let f = z.by_name(&n).map_err(|e| format!("{path}: {n}: {e}"))?;
                let v = npy_values(f, &format!("{path}: {n}"))?;
                Ok((n.trim_end_matches(".npy").to_string(), v))
            })
            .collect()
    } else {
        Ok(vec![(
            path.to_string(),
            npy_values(std::io::BufReader::new(file), path)?,
        )])
    }
}

/// `lowbit calibrate ...`.
pub fn run(args: &[String]) -> Result<()> {
    let (mut method, mut bits) = ("entropy".to_string(), 8u32);
    let (mut inputs, mut merges) = (Vec::new(), Vec::new());
    let (mut state_out, mut as_json, mut per_array) = (None, false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--method" => method = value("--method")?,
            "--bits" => bits = value("--bits")?.parse().map_err(|e| format!("--bits: {e}"))?,
            "--state-out" => state_out = Some(value("--state-out")?),
            "--merge" => merges.push(value("--merge")?),
            "--json" => as_json = true,
            "--per-array" => per_array = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", crate::USAGE).into()),
            s => inputs.push(s.to_string()),
        }
    }
    if inputs.is_empty() && merges.is_empty() {
        return Err(format!("calibrate needs activation files or --merge states\n{}", crate::USAGE).into());
    }
    if per_array {
        return run_per_array(&method, bits, &inputs, &merges, state_out.as_deref(), as_json);
    }
    let mut cal = Any::new(&method, bits)?;
    let bar = crate::progress(inputs.len(), "calibrating");
    for path in &inputs {
        for (name, v) in load(path)? {
            bar.set_message(name.clone());
            // Batches of 64 Ki values: the state, not the data, decides the result.
            for batch in v.chunks(1 << 16) {
                cal.observe(batch).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for path in &merges {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        cal.merge_bytes(&bytes).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = &state_out {
        std::fs::write(path, cal.to_bytes()).map_err(|e| format!("{path}: {e}"))?;
    }
    let r = cal.range()?;
    if as_json {
        println!(
            "{}",
            serde_json::json!({"method": method, "bits": bits, "min": r.min, "max": r.max, "amax": r.amax()})
        );
    } else {
        println!("{method}: range [{}, {}], amax {}", r.min, r.max, r.amax());
    }
    Ok(())
}

/// `lowbit calibrate --per-array ...`: one range per array (the name of an `.npz` member, the
/// path of an `.npy`), the state a whole `Calibration`.
fn run_per_array(
    method: &str,
    bits: u32,
    inputs: &[String],
    merges: &[String],
    state_out: Option<&str>,
    as_json: bool,
) -> Result<()> {
    let recipe = per_array_recipe(method, bits)?;
    let mut cal = recipe.calibration();
    let bar = crate::progress(inputs.len(), "calibrating");
    for path in inputs {
        for (name, v) in load(path)? {
            bar.set_message(name.clone());
            for batch in v.chunks(1 << 16) {
                cal.observe(&name, batch).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for path in merges {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let other = recipe
            .calibration_from_bytes(&bytes)
            .map_err(|e| format!("{path}: {e}"))?;
        cal.merge(&other).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = state_out {
        std::fs::write(path, cal.to_bytes()?).map_err(|e| format!("{path}: {e}"))?;
    }
    let mut layers = serde_json::Map::new();
    for name in cal.layers() {
        let r = cal.range(name).map_err(|e| format!("{name}: {e}"))?;
        if as_json {
            layers.insert(
                name.to_string(),
                serde_json::json!({"min": r.min, "max": r.max, "amax": r.amax()}),
            );
        } else {
            println!("{name}: {method}: range [{}, {}], amax {}", r.min, r.max, r.amax());
        }
    }
    if as_json {
        println!(
            "{}",
            serde_json::json!({"method": method, "bits": bits, "layers": layers})
        );
    }
    Ok(())
}
