//! Model files in and out, each format behind its own Cargo feature; without one this module
//! is empty and the crate does no I/O.
//!
//! | feature | module | what |
//! |---|---|---|
//! | `gguf` | `gguf` | GGUF v3 (llama.cpp) read and write, and re-quantization as `llama-quantize` does |

#[cfg(feature = "gguf")]
#[cfg_attr(docsrs, doc(cfg(feature = "gguf")))]
pub mod gguf;
