//! Model files in and out.
//!
//! | module | feature | what |
//! |---|---|---|
//! | [`safetensors`] | `safetensors` | safetensors files: float tensors in, BF16/F16 casts and the quantized layouts of bitsandbytes and compressed-tensors out, and back in |

#[cfg(feature = "safetensors")]
#[cfg_attr(docsrs, doc(cfg(feature = "safetensors")))]
pub mod safetensors;
