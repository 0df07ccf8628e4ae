//! Other tools' layouts and algorithms, bit for bit: what lowbit writes loads there, and users
//! migrating get the same numbers as before.
//!
//! | module | reproduces | errors |
//! |---|---|---|
//! | [`bnb`] | bitsandbytes 0.50.2: 4-bit NF4/FP4 (with double quantization), 8-bit blockwise | [`crate::QuantError`] |
//! | [`ggml`] | llama.cpp's `Q8_0`, `Q4_0` and `Q4_1` (32-element blocks, f16 scales) | [`crate::QuantError`] |
//! | [`modelopt`] | NVIDIA modelopt 0.47 `HistogramCalibrator` (`torch_hist=True`) | [`crate::CalibError`] |
//! | [`ort`] | ONNX Runtime 1.32 `HistogramCollector` | [`crate::CalibError`] |
//!
//! Block structs are `#[repr(C)]` [`bytemuck::Pod`] types where the library has them, so a
//! slice of blocks casts to the exact bytes the other tool loads. The two calibrators
//! reproduce the tools' dependence on the order of the calibration batches; the
//! order-independent calibrator is [`crate::calib::HistogramCalibrator`].

pub mod bnb;
pub mod ggml;
pub mod modelopt;
mod numpy;
pub mod ort;
