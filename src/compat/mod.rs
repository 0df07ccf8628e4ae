//! Reproductions of other tools' algorithms, for users who need the same numbers as before.
//!
//! | module | reproduces |
//! |---|---|
//! | [`modelopt`] | NVIDIA modelopt 0.47 `HistogramCalibrator` (`torch_hist=True`) |
//! | [`ort`] | ONNX Runtime 1.32 `HistogramCollector` |
//!
//! Both reproduce the tools' dependence on the order of the calibration batches; the
//! order-independent calibrator is [`crate::calib::HistogramCalibrator`].

pub mod modelopt;
mod numpy;
pub mod ort;
