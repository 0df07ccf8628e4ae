//! Other tools' byte layouts and algorithms, reproduced bit for bit, for users who need the same
//! numbers as before.
//!
//! | module | reproduces |
//! |---|---|
//! | [`bnb`] | bitsandbytes 0.50.2: 4-bit NF4/FP4 with double quantization, 8-bit blockwise |
//! | [`ggml`] | llama.cpp's blocks: `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0` and the K-quants `Q2_K`–`Q8_K`, with and without an importance matrix |
//! | [`modelopt`] | NVIDIA modelopt 0.47 `HistogramCalibrator` (`torch_hist=True`) |
//! | [`ort`] | ONNX Runtime 1.32 `HistogramCollector` and its QDQ `compute_scale_zp` / `quantize_nparray` |
//!
//! Block structs are `#[repr(C)]` [`bytemuck::Pod`] types, so a slice of blocks casts to the
//! exact bytes the other tool loads; their errors are the quantization module's
//! ([`crate::QuantError`]). The calibrator reproductions keep the tools' dependence on the
//! order of the calibration batches; the order-independent calibrator is
//! [`crate::calib::HistogramCalibrator`].

pub mod bnb;
pub mod ggml;
pub mod modelopt;
mod numpy;
pub mod ort;
