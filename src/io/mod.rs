//! Model files in and out, each format behind its own Cargo feature; without one this module
//! is empty and the crate does no I/O.
//!
//! | feature | module | what |
//! |---|---|---|
//! | `safetensors` | `safetensors` | safetensors files: float tensors in, BF16/F16 casts and the quantized layouts of bitsandbytes and compressed-tensors out, and back in |
//! | `gguf` | `gguf` | GGUF v3 (llama.cpp) read and write, and re-quantization as `llama-quantize` does |

#[cfg(feature = "safetensors")]
#[cfg_attr(docsrs, doc(cfg(feature = "safetensors")))]
pub mod safetensors;

#[cfg(feature = "gguf")]
#[cfg_attr(docsrs, doc(cfg(feature = "gguf")))]
pub mod gguf;
