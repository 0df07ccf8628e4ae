//! All integration tests, built into one binary.

mod bnb;
mod calib_compat;
mod calib_props;
mod codebook;
mod common;
mod exhaustive;
mod fuzz;
mod generic;
mod ggml;
mod ggml_kquants;
#[cfg(feature = "gguf")]
mod gguf;
#[cfg(feature = "gguf")]
mod gguf_mixes;
#[cfg(feature = "safetensors")]
mod io_safetensors;
mod mx;
mod ort_qparams;
mod props;
mod ptq;
mod ptq_state;
mod quant;
mod reference;
mod scheme;
mod simd_parity;
mod torch;
mod torch_casts;
