//! `lowbit`: quantize, inspect and calibrate model checkpoints.
//!
//! ```text
//! lowbit                                      the embedded MiniLM layer, every main recipe
//! lowbit quantize IN.safetensors --recipe R [--format safetensors|bnb|compressed-tensors] [-o OUT] [--json]
//! lowbit quantize IN.gguf --recipe q4_k_m|q5_k_m|...|q8_0|f16|bf16 [--imatrix F] [-o OUT.gguf] [--json]
//! lowbit quantize IN.safetensors --format gguf --recipe q4_k_m|...|bf16 [-o OUT.gguf] [--json]
//! lowbit inspect FILE.safetensors|FILE.gguf
//! lowbit calibrate ACT.npy|ACT.npz... [--method M] [--bits B] [--per-array] [--state-out F] [--merge F]... [--json]
//! ```
//!
//! Errors are one line naming the file and tensor, with a non-zero exit code.

mod calibrate;
mod demo;
mod gguf;
mod quantize;
mod runtime;
mod tensors;

use std::process::ExitCode;

const USAGE: &str = "usage:
  lowbit                                   quantize the embedded MiniLM layer with every main recipe
  lowbit quantize IN.safetensors --recipe RECIPE [--format safetensors|bnb|compressed-tensors]
                  [-o OUT.safetensors] [--json]
  lowbit quantize IN.gguf --recipe GGUF_TYPE [--imatrix FILE [--include-weights P]...
                  [--exclude-weights P]...] [-o OUT.gguf] [--json]
  lowbit quantize IN.safetensors --format gguf --recipe GGUF_TYPE [-o OUT.gguf]
  lowbit inspect FILE.safetensors|FILE.gguf
  lowbit calibrate ACT.npy|ACT.npz... [--method minmax|percentile[=P]|entropy|mse] [--bits B]
                   [--per-array] [--state-out STATE] [--merge STATE]... [--json]
  --per-array: one range per array (per .npz member), not one for all
recipes: int8 int4 nf4 fp8 bf16 f16 mxfp8 mxfp6 mxfp4 mxint8 nvfp4
  --format bnb: nf4 fp4; --format compressed-tensors: fp8 int8 int4 nvfp4 mxfp4 mxfp8
  (both also write OUT.quantization_config.json for the model's config.json)
  a GGUF input is re-quantized as llama-quantize does; GGUF_TYPE is one of its file types, in
  either case: q4_k_m q4_k_s q5_k_m q5_k_s q3_k_s q3_k_m q3_k_l q2_k q6_k (q3_k q4_k q5_k:
  the _m mixes) q4_0 q4_1 q5_0 q5_1 q8_0 f16 bf16
  --imatrix: llama-imatrix's file (GGUF or legacy .dat), used as llama-quantize uses it
  --format gguf from safetensors: the same, tensor names kept (for gguf-py, candle; for
  llama.cpp convert with convert_hf_to_gguf.py first)";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        None => demo::run(),
        Some("quantize") => quantize::run(&args[1..]),
        Some("inspect") => tensors::inspect(&args[1..]),
        Some("calibrate") => calibrate::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}").into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lowbit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(len as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}
